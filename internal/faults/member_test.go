package faults

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// TestConnectedMemberKilled kills the member that two holders are connected to. Their clients
// move to another member with their sessions (Suspended, then Reconnected), and the holds follow
// the error policy: the holder under SessionErrorPolicy keeps its locks (a mutex, a write lock, a
// semaphore mutex) and its leadership, the one under StandardErrorPolicy loses its locks at
// Suspended (a waiter on another member gets them) and its leadership until it is back. No two
// holders ever hold at once.
func TestConnectedMemberKilled(t *testing.T) {
	e := startEnsemble(t)
	admin := newSession(t, e, "admin", direct)
	ctx := testContext(t, 2*time.Minute)
	leader, err := e.Leader()
	if err != nil {
		t.Fatal(err)
	}
	victim := (leader + 1) % e.Size() // a follower: this is not an election
	other := (leader + 2) % e.Size()
	on := func(m int) clientConfig { cfg := proxied; cfg.member = m; return cfg }

	keeper := newSession(t, e, "keeper", on(victim).with(framework.SessionErrorPolicy))
	loser := newSession(t, e, "loser", on(victim).with(framework.StandardErrorPolicy))
	third := newSession(t, e, "waiter", on(other))
	for _, s := range []*session{keeper, loser} {
		if m := s.member(t, e); m != victim {
			t.Fatalf("%s is on member %d; want member %d", s.name, m, victim)
		}
	}

	// Each holder holds a mutex, a write lock and a semaphore mutex, and the waiter waits for
	// each of them.
	mon := newMonitor()
	var g grants
	type heldLock struct {
		path  string
		lease *recipes.Lease
		hold  *holding
		w     *waiter
	}
	holdAll := func(s *session) []*heldLock {
		var out []*heldLock
		for _, kind := range []lockKind{mutexKind, writeKind, semaphoreMutexKind} {
			path := "/member-killed/" + s.name + "/" + strings.ReplaceAll(kind.name, " ", "-")
			l, err := kind.acquire(s.c, path)(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n, err := nodesUnder(ctx, admin.c, path, "leases", "locks")
			if err != nil {
				t.Fatal(err)
			}
			w := startWaiter(ctx, "waiter on "+path, third, kind, path, mon, &g, holdFor(50*time.Millisecond))
			eventually(t, waitTimeout, w.name+" queued", func() bool {
				m, _ := nodesUnder(ctx, admin.c, path, "leases", "locks")
				return len(m) > len(n)
			})
			out = append(out, &heldLock{path, l, mon.enter(path, s.name, kind.acc, kind.limit, l), w})
		}
		return out
	}
	kept := holdAll(keeper)
	lost := holdAll(loser)

	// Two leader latches on the victim, one per policy, each with a rival on another member.
	latch := func(s *session, path string) *recipes.LeaderLatch {
		l := recipes.NewLeaderLatch(s.c, path, recipes.WithParticipantID(s.name))
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	keptLatch := latch(keeper, "/member-killed/kept-latch")
	if err := keptLatch.Await(ctx); err != nil {
		t.Fatal(err)
	}
	lostLatch := latch(loser, "/member-killed/lost-latch")
	if err := lostLatch.Await(ctx); err != nil {
		t.Fatal(err)
	}
	rivalKept := latch(third, "/member-killed/kept-latch")
	rivalLost := latch(third, "/member-killed/lost-latch")
	eventually(t, waitTimeout, "the rival latches queued", func() bool {
		return rivalKept.OurPath() != "" && rivalLost.OurPath() != ""
	})
	twice := watchLeaders(t, []*recipes.LeaderLatch{keptLatch, rivalKept})
	twiceLost := watchLeaders(t, []*recipes.LeaderLatch{lostLatch, rivalLost})
	keptTerm := keptLatch.LeadershipContext()
	lostTerm := lostLatch.LeadershipContext()

	movers := []*session{keeper, loser}
	ids, ms := sessionIDs(movers), marks(movers)
	begin := time.Now()
	if err := e.Kill(victim); err != nil {
		t.Fatal(err)
	}
	waitStates(t, movers, ms, framework.Suspended, framework.Reconnected)
	t.Logf("killed member %d; the clients were back %v later", victim, time.Since(begin).Round(time.Millisecond))
	for i, s := range movers {
		if s.c.SessionID() != ids[i] {
			t.Errorf("%s: session 0x%x; want 0x%x", s.name, s.c.SessionID(), ids[i])
		}
		if m := s.member(t, e); m == victim {
			t.Errorf("%s still on the killed member %d", s.name, victim)
		}
	}

	// SessionErrorPolicy: the locks and the leadership are kept.
	if keptTerm.Err() != nil || !keptLatch.HasLeadership() {
		t.Errorf("keeper: leadership %v, HasLeadership %v; want it kept", keptTerm.Err(), keptLatch.HasLeadership())
	}
	for _, h := range kept {
		if h.lease.Err() != nil {
			t.Errorf("keeper: %s: lease ended with %v; want it kept", h.path, h.lease.Err())
		}
		if ok, _, err := admin.c.Exists(ctx, h.lease.Node()); err != nil || !ok {
			t.Errorf("keeper: %s: Exists(%s) = %v, %v", h.path, h.lease.Node(), ok, err)
		}
	}
	// StandardErrorPolicy: the locks went at Suspended and the waiter got them once the loser's
	// nodes were deleted; the leadership ended and came back, the node having stayed first.
	for _, h := range lost {
		if !errors.Is(h.lease.Err(), recipes.ErrLockLost) {
			t.Errorf("loser: %s: lease ended with %v; want ErrLockLost", h.path, h.lease.Err())
		}
		mon.leave(h.path, h.hold)
		select {
		case <-h.w.done:
			if h.w.err != nil {
				t.Errorf("%s: %v", h.w.name, h.w.err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("%s did not get the lock the loser lost", h.w.name)
		}
		if err := h.lease.Release(); !errors.Is(err, recipes.ErrLockLost) {
			t.Errorf("loser: %s: Release = %v; want ErrLockLost", h.path, err)
		}
	}
	if lostTerm.Err() == nil {
		t.Errorf("loser's leadership did not end at Suspended")
	}
	eventually(t, waitTimeout, "the loser's latch leading again", lostLatch.HasLeadership)
	if rivalKept.HasLeadership() || rivalLost.HasLeadership() {
		t.Errorf("a rival latch leads")
	}
	for _, h := range kept {
		if h.w.finished() {
			t.Fatalf("%s got the lock the keeper kept (err %v)", h.w.name, h.w.err)
		}
	}

	// The keeper lets go: the waiter gets those locks too.
	for _, h := range kept {
		mon.leave(h.path, h.hold)
		if err := h.lease.Release(); err != nil {
			t.Errorf("keeper: %s: Release: %v", h.path, err)
		}
		select {
		case <-h.w.done:
			if h.w.err != nil {
				t.Errorf("%s: %v", h.w.name, h.w.err)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("%s did not get the lock the keeper released", h.w.name)
		}
	}
	if n := twice() + twiceLost(); n > 0 {
		t.Errorf("two latches led at once (%d samples)", n)
	}
	mon.check(t)
	noPendingDeletes(t, waitTimeout, keeper, loser, third)
	paths := []string{"/member-killed/kept-latch", "/member-killed/lost-latch"}
	for _, l := range []*recipes.LeaderLatch{keptLatch, lostLatch, rivalKept, rivalLost} {
		if err := l.Close(); err != nil {
			t.Errorf("latch %s: Close: %v", l.ID(), err)
		}
	}
	for _, h := range append(kept, lost...) {
		paths = append(paths, h.path)
	}
	noNodesLeft(t, admin.c, waitTimeout, paths...)
	restartAll(t, e)
}
