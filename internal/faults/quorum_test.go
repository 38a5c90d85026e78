package faults

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// TestQuorumLost stops two of the three members, longer than a session timeout, while locks are
// held and waited for and new Acquires start, then starts them again. Every Acquire in flight
// returns, granted or with an error, before its context ends; no two holders hold at once; and
// once everything is released no znode is left under the lock paths.
func TestQuorumLost(t *testing.T) {
	e := startEnsemble(t)
	admin := newSession(t, e, "admin", direct)
	ctx := testContext(t, 3*time.Minute)
	mon := newMonitor()
	var g grants
	const mutexPath, semPath, rwPath = "/quorum/mutex", "/quorum/semaphore", "/quorum/rw"

	var sessions []*session
	for i := range 6 {
		cfg := direct
		if i%2 == 1 {
			cfg = cfg.with(framework.SessionErrorPolicy)
		}
		sessions = append(sessions, newSession(t, e, fmt.Sprintf("s%d", i), cfg))
	}
	// s0 holds the mutex, s1 and s2 wait for it; s3 holds the semaphore mutex, s4 waits.
	held, err := mutexKind.acquire(sessions[0].c, mutexPath)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	heldHold := mon.enter(mutexPath, "s0", exclusive, 1, held)
	semHeld, err := semaphoreMutexKind.acquire(sessions[3].c, semPath)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	semHold := mon.enter(semPath, "s3", exclusive, 1, semHeld)

	// Every Acquire gets a context that ends well after the quorum is back.
	const acquireFor = 40 * time.Second
	type inFlight struct {
		w        *waiter
		deadline time.Time
	}
	var flights []inFlight
	start := func(name string, s *session, kind lockKind, path string) {
		actx, cancel := context.WithTimeout(ctx, acquireFor)
		t.Cleanup(cancel)
		dl, _ := actx.Deadline()
		flights = append(flights, inFlight{startWaiter(actx, name, s, kind, path, mon, &g, holdFor(50*time.Millisecond)), dl})
	}
	start("s1 mutex", sessions[1], mutexKind, mutexPath)
	start("s2 mutex", sessions[2], mutexKind, mutexPath)
	start("s4 semaphore", sessions[4], semaphoreMutexKind, semPath)
	eventually(t, waitTimeout, "the waiters queued", func() bool {
		a, _ := nodesUnder(ctx, admin.c, mutexPath)
		b, _ := nodesUnder(ctx, admin.c, semPath, "leases", "locks")
		return len(a) == 3 && len(b) == 3
	})

	leader, err := e.Leader()
	if err != nil {
		t.Fatal(err)
	}
	stopped := []int{leader, (leader + 1) % e.Size()}
	ms := marks(sessions)
	for _, i := range stopped {
		if err := e.Stop(i); err != nil {
			t.Fatal(err)
		}
	}
	lostAt := time.Now()
	t.Logf("stopped members %v: no quorum", stopped)
	// New Acquires start while there is no quorum.
	for i, s := range sessions {
		start(fmt.Sprintf("s%d write lock", i), s, writeKind, rwPath)
		start(fmt.Sprintf("s%d read lock", i), s, readKind, rwPath)
	}
	// Past a session timeout without a quorum, every client gives its session up.
	waitStates(t, sessions, ms, framework.Suspended, framework.Lost)
	pause(ctx, time.Second)
	restartAll(t, e)
	t.Logf("quorum back %v after it was lost", time.Since(lostAt).Round(time.Millisecond))
	waitStates(t, sessions, ms, framework.Suspended, framework.Lost, framework.Reconnected)

	// The holds ended with the sessions.
	for name, l := range map[string]*recipes.Lease{"s0": held, "s3": semHeld} {
		if !errors.Is(l.Err(), recipes.ErrLockLost) {
			t.Errorf("%s: lease ended with %v; want ErrLockLost", name, l.Err())
		}
	}
	mon.leave(mutexPath, heldHold)
	mon.leave(semPath, semHold)
	for _, l := range []*recipes.Lease{held, semHeld} {
		if err := l.Release(); !errors.Is(err, recipes.ErrLockLost) {
			t.Errorf("Release of a lost lease = %v; want ErrLockLost", err)
		}
	}

	// Every Acquire returns in time, granted or not.
	granted, failed := 0, 0
	for _, f := range flights {
		select {
		case <-f.w.done:
		case <-time.After(time.Until(f.deadline) + hangSlack):
			t.Fatalf("%s: Acquire still running %v after its context ended", f.w.name, hangSlack)
		}
		if late := f.w.ended.Sub(f.deadline); late > hangSlack {
			t.Errorf("%s: Acquire returned %v after its context ended", f.w.name, late)
		}
		if f.w.err != nil {
			failed++
			t.Logf("%s: Acquire failed: %v", f.w.name, f.w.err)
			continue
		}
		granted++
		if f.w.rel != nil && !errors.Is(f.w.rel, recipes.ErrLockLost) {
			t.Errorf("%s: Release: %v", f.w.name, f.w.rel)
		}
	}
	t.Logf("%d Acquires granted, %d failed; grant order %v", granted, failed, g.list())
	if granted == 0 {
		t.Errorf("no Acquire in flight was granted after the quorum came back")
	}
	mon.check(t)
	noPendingDeletes(t, waitTimeout, sessions...)
	// The nodes of the sessions the clients gave up go when the ensemble expires those sessions.
	noNodesLeft(t, admin.c, 3*sessionTimeout+20*time.Second, mutexPath, semPath, rwPath)
}
