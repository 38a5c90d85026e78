package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/recipes"
)

// TestSessionExpiryWakesOnlyNextWaiter expires the session of a holder in front of a queue of 10
// waiting sessions. The next waiter, and only it, gets the lock; the other waiters are not even
// woken (they send no request; for a semaphore, whose waiters queue for an internal mutex first,
// the second waiter moves up to wait for the lease, and only it). The waiters then get the lock
// one after another, in order.
func TestSessionExpiryWakesOnlyNextWaiter(t *testing.T) {
	e := startEnsemble(t)
	admin := newSession(t, e, "admin", direct)
	const waiters = 10
	for _, tc := range []struct {
		kind  lockKind
		woken int // waiters that may send requests when the holder's session expires
	}{
		{mutexKind, 1},
		{writeKind, 1},
		{semaphoreMutexKind, 2},
	} {
		t.Run(tc.kind.name, func(t *testing.T) {
			path := "/expiry/" + strings.ReplaceAll(tc.kind.name, " ", "-")
			ctx := testContext(t, 2*time.Minute)
			mon := newMonitor()
			var g grants
			holder := newSession(t, e, "holder", proxied)
			var queue []*session
			var kinds []lockKind
			var holds []func(*recipes.Lease)
			first := make(chan struct{}) // waiter 1 holds until it is closed
			for i := range waiters {
				queue = append(queue, newSession(t, e, fmt.Sprintf("waiter %d", i+1), direct))
				kinds = append(kinds, tc.kind)
				holds = append(holds, holdFor(50*time.Millisecond))
			}
			holds[0] = holdUntil(first)
			lease, err := tc.kind.acquire(holder.c, path)(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h := mon.enter(path, holder.name, tc.kind.acc, tc.kind.limit, lease)
			ws := queueWaiters(t, ctx, admin, queue, kinds, path, mon, &g, holds)
			before := quietCounts(t, queue)

			begin := time.Now()
			if err := holder.ep.ExpireSession(ctx, holder.c.SessionID()); err != nil {
				t.Fatal(err)
			}
			eventually(t, waitTimeout, "waiter 1 granted after the holder's session expired", func() bool {
				return len(g.list()) > 0
			})
			t.Logf("waiter 1 granted %v after the expiry began", time.Since(begin).Round(time.Millisecond))
			if got := g.list(); len(got) != 1 || got[0] != "waiter 1" {
				t.Errorf("granted %v; want waiter 1 only", got)
			}
			// Give a wrongly woken waiter time to show itself.
			pause(ctx, 500*time.Millisecond)
			for i := tc.woken; i < waiters; i++ {
				if n := queue[i].c.RequestCount() - before[i]; n > 0 {
					t.Errorf("%s sent %d requests when the holder's session expired; want it left asleep", queue[i].name, n)
				}
			}
			if got := g.list(); len(got) != 1 {
				t.Errorf("granted %v while waiter 1 held; want waiter 1 only", got)
			}
			mon.leave(path, h)
			select {
			case <-lease.Done():
			case <-time.After(waitTimeout):
				t.Errorf("the expired holder's lease did not end")
			}
			close(first)

			for _, w := range ws {
				select {
				case <-w.done:
				case <-time.After(waitTimeout):
					t.Fatalf("%s not granted; grants so far %v", w.name, g.list())
				}
				if w.err != nil || w.rel != nil {
					t.Errorf("%s: Acquire: %v; Release: %v", w.name, w.err, w.rel)
				}
			}
			var want [][]string
			for i := range waiters {
				want = append(want, []string{fmt.Sprint(i + 1)})
			}
			checkGroups(t, g.list(), want)
			mon.check(t)
			lease.Release()
			noNodesLeft(t, admin.c, waitTimeout, path)
		})
	}
	t.Run("leader latch", func(t *testing.T) {
		path := "/expiry/latch"
		ctx := testContext(t, 2*time.Minute)
		holder := newSession(t, e, "holder", proxied)
		lead := recipes.NewLeaderLatch(holder.c, path, recipes.WithParticipantID("holder"))
		if err := lead.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lead.Close() })
		if err := lead.Await(ctx); err != nil {
			t.Fatal(err)
		}
		var queue []*session
		var latches []*recipes.LeaderLatch
		for i := range waiters {
			s := newSession(t, e, fmt.Sprintf("latch %d", i+1), direct)
			l := recipes.NewLeaderLatch(s.c, path, recipes.WithParticipantID(s.name))
			if err := l.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			eventually(t, waitTimeout, s.name+" queued", func() bool { return l.OurPath() != "" })
			queue = append(queue, s)
			latches = append(latches, l)
		}
		twice := watchLeaders(t, append([]*recipes.LeaderLatch{lead}, latches...))
		before := quietCounts(t, queue)

		if err := holder.ep.ExpireSession(ctx, holder.c.SessionID()); err != nil {
			t.Fatal(err)
		}
		actx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		if err := latches[0].Await(actx); err != nil {
			t.Fatalf("latch 1 did not lead after the leader's session expired: %v", err)
		}
		pause(ctx, 500*time.Millisecond)
		for i := 1; i < waiters; i++ {
			if n := queue[i].c.RequestCount() - before[i]; n > 0 {
				t.Errorf("%s sent %d requests when the leader's session expired; want it left asleep", queue[i].name, n)
			}
			if latches[i].HasLeadership() {
				t.Errorf("%s leads", queue[i].name)
			}
		}
		// Leadership passes down the queue as the leaders leave.
		for i := range waiters - 1 {
			if err := latches[i].Close(); err != nil {
				t.Errorf("latch %d: Close: %v", i+1, err)
			}
			if err := latches[i+1].Await(actx); err != nil {
				t.Fatalf("latch %d did not lead after latch %d left: %v", i+2, i+1, err)
			}
		}
		latches[waiters-1].Close()
		lead.Close()
		if n := twice(); n > 0 {
			t.Errorf("two latches led at once (%d samples)", n)
		}
		noNodesLeft(t, admin.c, waitTimeout, path)
	})
}

// quietCounts waits until the sessions have sent no request for a while (their waits are set
// up), and returns their request counts.
func quietCounts(t *testing.T, sessions []*session) []uint64 {
	t.Helper()
	counts := func() []uint64 {
		var n []uint64
		for _, s := range sessions {
			n = append(n, s.c.RequestCount())
		}
		return n
	}
	prev := counts()
	eventually(t, waitTimeout, "the waiters settled", func() bool {
		time.Sleep(200 * time.Millisecond)
		now := counts()
		same := fmt.Sprint(now) == fmt.Sprint(prev)
		prev = now
		return same
	})
	return prev
}
