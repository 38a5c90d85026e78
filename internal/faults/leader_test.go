package faults

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/recipes"
)

// TestLeaderKilledWhileHeld kills the ZooKeeper leader member while locks are held and waited
// for. Every session survives (it reconnects to another member within its timeout): under
// SessionErrorPolicy the holders keep their locks, under StandardErrorPolicy they lose them at
// Suspended; either way the waiters get the lock in the order they queued, and no two holders
// that exclude each other ever hold at once.
func TestLeaderKilledWhileHeld(t *testing.T) {
	e := startEnsemble(t)
	admin := newSession(t, e, "admin", direct)
	for _, tc := range []struct {
		name    string
		policy  framework.ErrorPolicy
		holder  lockKind
		holders int
		waiters []lockKind
		// groups lists the waiters' numbers in the order they must be granted; the waiters of
		// one group may be granted in any order among themselves.
		groups [][]string
	}{
		{"mutex/session policy", framework.SessionErrorPolicy, mutexKind, 1,
			[]lockKind{mutexKind, mutexKind, mutexKind}, [][]string{{"1"}, {"2"}, {"3"}}},
		{"mutex/standard policy", framework.StandardErrorPolicy, mutexKind, 1,
			[]lockKind{mutexKind, mutexKind, mutexKind}, [][]string{{"1"}, {"2"}, {"3"}}},
		{"read-write lock/session policy", framework.SessionErrorPolicy, writeKind, 1,
			[]lockKind{readKind, readKind, writeKind, readKind}, [][]string{{"1", "2"}, {"3"}, {"4"}}},
		{"semaphore mutex/session policy", framework.SessionErrorPolicy, semaphoreMutexKind, 1,
			[]lockKind{semaphoreMutexKind, semaphoreMutexKind, semaphoreMutexKind}, [][]string{{"1"}, {"2"}, {"3"}}},
		{"semaphore of 2/session policy", framework.SessionErrorPolicy, semaphore2Kind, 2,
			[]lockKind{semaphore2Kind, semaphore2Kind, semaphore2Kind}, [][]string{{"1"}, {"2"}, {"3"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/leader-killed/" + strings.NewReplacer(" ", "-", "/", "-").Replace(tc.name)
			ctx := testContext(t, 2*time.Minute)
			mon := newMonitor()
			var g grants
			cfg := direct.with(tc.policy)

			var holders []*session
			var leases []*recipes.Lease
			var hs []*holding
			for i := range tc.holders {
				s := newSession(t, e, fmt.Sprintf("holder %d", i), cfg)
				l, err := tc.holder.acquire(s.c, path)(ctx)
				if err != nil {
					t.Fatal(err)
				}
				holders = append(holders, s)
				leases = append(leases, l)
				hs = append(hs, mon.enter(path, s.name, tc.holder.acc, tc.holder.limit, l))
			}
			var waiting []*session
			for i := range tc.waiters {
				waiting = append(waiting, newSession(t, e, fmt.Sprintf("waiter %d", i+1), cfg))
			}
			var holds []func(*recipes.Lease)
			for range waiting {
				holds = append(holds, holdFor(100*time.Millisecond))
			}
			ws := queueWaiters(t, ctx, admin, waiting, tc.waiters, path, mon, &g, holds)
			all := append(slices.Clone(holders), waiting...)
			ids, ms := sessionIDs(all), marks(all)

			killed := killLeader(t, e)
			waitStates(t, all, ms, framework.Suspended, framework.Reconnected)
			if got := sessionIDs(all); !slices.Equal(got, ids) {
				t.Errorf("sessions %x after the leader was killed; want the same %x", got, ids)
			}

			switch tc.policy {
			case framework.SessionErrorPolicy:
				// The holds survive with their sessions: the nodes are there and no waiter
				// got in.
				for i, l := range leases {
					if l.Err() != nil {
						t.Errorf("%s: lease ended with %v; want it held under SessionErrorPolicy", holders[i].name, l.Err())
					}
					if ok, _, err := admin.c.Exists(ctx, l.Node()); err != nil || !ok {
						t.Errorf("%s: Exists(%s) = %v, %v; want the node of the live hold", holders[i].name, l.Node(), ok, err)
					}
				}
				if got := g.list(); len(got) > 0 {
					t.Fatalf("%v granted while the holders held", got)
				}
				for i, l := range leases {
					mon.leave(path, hs[i])
					if err := l.Release(); err != nil {
						t.Errorf("%s: Release: %v", holders[i].name, err)
					}
				}
			case framework.StandardErrorPolicy:
				// The holds ended at Suspended; the holders' nodes are deleted once they are
				// back, and the waiters get in.
				for i, l := range leases {
					select {
					case <-l.Done():
					case <-time.After(waitTimeout):
						t.Fatalf("%s: lease not ended after Suspended under StandardErrorPolicy", holders[i].name)
					}
					if !errors.Is(l.Err(), recipes.ErrLockLost) {
						t.Errorf("%s: lease ended with %v; want ErrLockLost", holders[i].name, l.Err())
					}
					mon.leave(path, hs[i])
					if err := l.Release(); !errors.Is(err, recipes.ErrLockLost) {
						t.Errorf("%s: Release of a lost lease = %v; want ErrLockLost", holders[i].name, err)
					}
				}
			}

			for _, w := range ws {
				select {
				case <-w.done:
				case <-time.After(waitTimeout):
					t.Fatalf("%s not granted %v after the holders released; granted: %v", w.name, waitTimeout, g.list())
				}
				if w.err != nil || w.rel != nil {
					t.Errorf("%s: Acquire: %v; Release: %v", w.name, w.err, w.rel)
				}
			}
			checkGroups(t, g.list(), tc.groups)
			mon.check(t)
			noPendingDeletes(t, waitTimeout, all...)
			noNodesLeft(t, admin.c, waitTimeout, path)
			restartAll(t, e)
			t.Logf("member %d back; grants %v", killed, g.list())
		})
	}
}

// checkGroups checks that the waiters were granted in the order of groups: every waiter of a
// group before any of the next ("waiter N" is named by its N).
func checkGroups(t *testing.T, got []string, groups [][]string) {
	t.Helper()
	var want []string
	i := 0
	for _, grp := range groups {
		if i+len(grp) > len(got) {
			t.Errorf("grants %v; want groups %v", got, groups)
			return
		}
		seen := got[i : i+len(grp)]
		for _, n := range grp {
			w := "waiter " + n
			want = append(want, w)
			if !slices.Contains(seen, w) {
				t.Errorf("grants %v; want groups %v", got, groups)
				return
			}
		}
		i += len(grp)
	}
	if len(got) != len(want) {
		t.Errorf("grants %v; want groups %v", got, groups)
	}
}

// TestLeaderKilledLatch kills the ZooKeeper leader member under a leader latch: under
// SessionErrorPolicy the leading latch keeps its leadership throughout; under
// StandardErrorPolicy it gives it up at Suspended and, its node being still first, leads again
// after the reconnect. No other latch leads meanwhile, and no two latches lead at once.
func TestLeaderKilledLatch(t *testing.T) {
	e := startEnsemble(t)
	admin := newSession(t, e, "admin", direct)
	for _, policy := range []framework.ErrorPolicy{framework.SessionErrorPolicy, framework.StandardErrorPolicy} {
		name := map[framework.ErrorPolicy]string{framework.SessionErrorPolicy: "session policy", framework.StandardErrorPolicy: "standard policy"}[policy]
		t.Run(name, func(t *testing.T) {
			path := "/leader-killed-latch/" + strings.ReplaceAll(name, " ", "-")
			ctx := testContext(t, 2*time.Minute)
			var (
				sessions []*session
				latches  []*recipes.LeaderLatch
				gained   []*atomic.Int32 // IsLeader calls, by latch
			)
			for i := range 3 {
				s := newSession(t, e, fmt.Sprintf("latch %d", i), direct.with(policy))
				l := recipes.NewLeaderLatch(s.c, path, recipes.WithParticipantID(s.name))
				n := &atomic.Int32{}
				gained = append(gained, n)
				l.AddListener(recipes.LeaderLatchListenerFuncs{OnIsLeader: func() { n.Add(1) }})
				if err := l.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				if i == 0 {
					if err := l.Await(ctx); err != nil {
						t.Fatal(err)
					}
				} else {
					eventually(t, waitTimeout, s.name+" queued", func() bool { return l.OurPath() != "" })
				}
				sessions = append(sessions, s)
				latches = append(latches, l)
			}
			ids, ms := sessionIDs(sessions), marks(sessions)
			termCtx := latches[0].LeadershipContext()
			twice := watchLeaders(t, latches)

			killLeader(t, e)
			waitStates(t, sessions, ms, framework.Suspended, framework.Reconnected)
			if got := sessionIDs(sessions); !slices.Equal(got, ids) {
				t.Errorf("sessions %x after the leader was killed; want the same %x", got, ids)
			}
			eventually(t, waitTimeout, "latch 0 leading", latches[0].HasLeadership)
			switch policy {
			case framework.SessionErrorPolicy:
				if termCtx.Err() != nil {
					t.Errorf("latch 0's leadership ended (%v); want it kept under SessionErrorPolicy", context.Cause(termCtx))
				}
				if n := gained[0].Load(); n != 1 {
					t.Errorf("latch 0 told IsLeader %d times; want once", n)
				}
			case framework.StandardErrorPolicy:
				if termCtx.Err() == nil {
					t.Errorf("latch 0's first leadership did not end at Suspended under StandardErrorPolicy")
				}
			}
			for i := 1; i < 3; i++ {
				if latches[i].HasLeadership() || gained[i].Load() > 0 {
					t.Errorf("latch %d led, though latch 0's node stayed first", i)
				}
			}
			// Leadership passes on in order as the leaders leave.
			for i := range 2 {
				if err := latches[i].Close(); err != nil {
					t.Errorf("latch %d: Close: %v", i, err)
				}
				if err := latches[i+1].Await(ctx); err != nil {
					t.Fatalf("latch %d: Await after latch %d left: %v", i+1, i, err)
				}
			}
			if err := latches[2].Close(); err != nil {
				t.Errorf("latch 2: Close: %v", err)
			}
			if n := twice(); n > 0 {
				t.Errorf("two latches led at once %d times", n)
			}
			noNodesLeft(t, admin.c, waitTimeout, path)
			restartAll(t, e)
		})
	}
}

// watchLeaders samples the latches' HasLeadership every 2ms (testkit.SampleLeaders) until the
// test ends, and returns a func that stops sampling and tells how many samples found two latches
// leading.
func watchLeaders(t *testing.T, latches []*recipes.LeaderLatch) func() int {
	s := testkit.SampleLeaders(t, 2*time.Millisecond, func() ([]int, error) { return testkit.Leading(latches), nil })
	return func() int {
		twice := 0
		for _, x := range s.Stop() {
			if len(x.Leaders) > 1 {
				twice++
			}
		}
		return twice
	}
}

// TestLeaderKillLoop kills the leader member round after round (-leaderkill.rounds, 20 by
// default) while sessions under both error policies take and release a mutex, a read-write lock
// and a semaphore, and checks that no two holders that exclude each other ever held at once.
func TestLeaderKillLoop(t *testing.T) {
	rounds := *leaderKillRounds
	seed := uint64(time.Now().UnixNano())
	e := startEnsemble(t)
	base := goleak.IgnoreCurrent()
	admin := newSession(t, e, "admin", direct)
	ld := newLoad("/leader-kill-loop", seed)
	if err := ld.setup(testContext(t, waitTimeout), admin.c); err != nil {
		t.Fatal(err)
	}
	var sessions []*session
	for i := range 6 {
		cfg := direct
		if i%2 == 1 {
			cfg = cfg.with(framework.SessionErrorPolicy)
		}
		s, err := openSession(e, fmt.Sprintf("s%d", i), cfg)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
		t.Cleanup(s.close)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	for i, s := range sessions {
		ld.start(ctx, i, s)
	}
	begin := time.Now()
	for r := 1; r <= rounds; r++ {
		// Let the workers make progress before every kill.
		before := ld.stats.total.Load()
		if !poll(waitTimeout, func() bool { return ld.stats.total.Load() >= before+10 }) {
			t.Fatalf("round %d: no progress in %v", r, waitTimeout)
		}
		leader, err := e.Leader()
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Kill(leader); err != nil {
			t.Fatal(err)
		}
		next, err := e.WaitReady(testContext(t, time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Restart(leader); err != nil {
			t.Fatal(err)
		}
		if _, err := e.WaitReady(testContext(t, time.Minute)); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed leader member %d, member %d took over; %d acquisitions so far, %d violations",
			r, leader, next, ld.stats.total.Load(), len(ld.mon.Violations()))
	}
	stop()
	if !ld.wait(time.Minute) {
		t.Errorf("workers still running a minute after the last round")
	}
	noPendingDeletes(t, waitTimeout, sessions...)
	noNodesLeft(t, admin.c, 3*sessionTimeout+20*time.Second, ld.lockPaths()...)
	for _, s := range sessions {
		s.close()
	}
	admin.close()
	if err := goleak.Find(append([]goleak.Option{base}, goleakOptions...)...); err != nil {
		t.Errorf("goroutines left: %v", err)
	}
	ld.mon.check(t)
	t.Logf("leader kill loop: %d rounds in %v; acquisitions %d (%s); holds lost %s; violations %d",
		rounds, time.Since(begin).Round(time.Second), ld.stats.total.Load(), ld.stats.summary(ld.stats.acquired),
		ld.stats.summary(ld.stats.lost), len(ld.mon.Violations()))
}
