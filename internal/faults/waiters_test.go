package faults

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// lockKind is a kind of lock a fault test takes: how to make its Acquire for a client and path,
// and what a hold of it excludes.
type lockKind struct {
	name    string
	acc     access
	limit   int
	acquire func(c *framework.Client, path string) func(context.Context) (*recipes.Lease, error)
}

func oneLease(leases []*recipes.Lease, err error) (*recipes.Lease, error) {
	if err != nil {
		return nil, err
	}
	return leases[0], nil
}

var (
	mutexKind = lockKind{"mutex", exclusive, 1, func(c *framework.Client, p string) func(context.Context) (*recipes.Lease, error) {
		return recipes.NewInterProcessMutex(c, p).Acquire
	}}
	writeKind = lockKind{"write lock", exclusive, 1, func(c *framework.Client, p string) func(context.Context) (*recipes.Lease, error) {
		return recipes.NewReadWriteLock(c, p).WriteLock().Acquire
	}}
	readKind = lockKind{"read lock", shared, 0, func(c *framework.Client, p string) func(context.Context) (*recipes.Lease, error) {
		return recipes.NewReadWriteLock(c, p).ReadLock().Acquire
	}}
	semaphoreMutexKind = lockKind{"semaphore mutex", exclusive, 1, func(c *framework.Client, p string) func(context.Context) (*recipes.Lease, error) {
		return recipes.NewSemaphoreMutex(c, p).Acquire
	}}
	semaphore2Kind = lockKind{"semaphore of 2", counted, 2, func(c *framework.Client, p string) func(context.Context) (*recipes.Lease, error) {
		s := recipes.NewSemaphore(c, p, 2)
		return func(ctx context.Context) (*recipes.Lease, error) { return oneLease(s.Acquire(ctx, 1)) }
	}}
)

// grants records the order in which waiters were granted their locks.
type grants struct {
	mu    sync.Mutex
	order []string
}

func (g *grants) add(who string) {
	g.mu.Lock()
	g.order = append(g.order, who)
	g.mu.Unlock()
}

func (g *grants) list() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.order)
}

// waiter is an Acquire running in the background: once granted, it checks in with the monitor,
// holds for a moment, and releases.
type waiter struct {
	name  string
	s     *session
	kind  lockKind
	path  string
	done  chan struct{} // closed when Acquire has returned and the hold (if any) is over
	ended time.Time     // when Acquire returned
	err   error         // Acquire's error
	rel   error         // Release's error
}

// holdFor returns a hold func that holds for d, or until the lease ends.
func holdFor(d time.Duration) func(*recipes.Lease) {
	return func(l *recipes.Lease) {
		select {
		case <-time.After(d):
		case <-l.Done():
		}
	}
}

// holdUntil returns a hold func that holds until ch is closed, or until the lease ends.
func holdUntil(ch <-chan struct{}) func(*recipes.Lease) {
	return func(l *recipes.Lease) {
		select {
		case <-ch:
		case <-l.Done():
		}
	}
}

// startWaiter starts an Acquire of kind on path by session s that gives up when ctx ends.
// Granted, it records itself in g, calls hold and releases.
func startWaiter(ctx context.Context, name string, s *session, kind lockKind, path string, mon *monitor, g *grants,
	hold func(*recipes.Lease)) *waiter {
	w := &waiter{name: name, s: s, kind: kind, path: path, done: make(chan struct{})}
	acquire := kind.acquire(s.c, path)
	go func() {
		defer close(w.done)
		lease, err := acquire(ctx)
		w.ended = time.Now()
		if err != nil {
			w.err = err
			return
		}
		g.add(name)
		h := mon.enter(path, name, kind.acc, kind.limit, lease)
		hold(lease)
		mon.leave(path, h)
		w.rel = lease.Release()
	}()
	return w
}

// finished reports whether the waiter's Acquire has returned and its hold is over.
func (w *waiter) finished() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// queueWaiters starts one waiter per session, in order, each once the one before has queued
// (its first node is under path), so that they queue in that order.
func queueWaiters(t *testing.T, ctx context.Context, admin *session, sessions []*session, kinds []lockKind, path string,
	mon *monitor, g *grants, hold []func(*recipes.Lease)) []*waiter {
	t.Helper()
	var ws []*waiter
	count := func() int {
		nodes, err := nodesUnder(ctx, admin.c, path, "leases", "locks")
		if err != nil {
			t.Fatal(err)
		}
		return len(nodes)
	}
	n := count()
	for i, s := range sessions {
		w := startWaiter(ctx, fmt.Sprintf("waiter %d", i+1), s, kinds[i], path, mon, g, hold[i])
		ws = append(ws, w)
		eventually(t, waitTimeout, w.name+" queued", func() bool { return count() > n })
		n = count()
	}
	return ws
}

// waitStates waits until every session has gone through the states want, in order, since the
// marks, and has no Lost among them (unless want has it).
func waitStates(t *testing.T, sessions []*session, marks []int, want ...framework.State) {
	t.Helper()
	for i, s := range sessions {
		ok := poll(waitTimeout, func() bool { return isSubsequence(want, s.states.since(marks[i])) })
		got := s.states.since(marks[i])
		if !ok {
			t.Errorf("%s: states %v; want %v", s.name, got, want)
			continue
		}
		if !slices.Contains(want, framework.Lost) && slices.Contains(got, framework.Lost) {
			t.Errorf("%s: states %v; the session was lost", s.name, got)
		}
	}
}

// isSubsequence reports whether want occurs in got in order (not necessarily adjacent).
func isSubsequence(want, got []framework.State) bool {
	i := 0
	for _, s := range got {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	return i == len(want)
}

// sessionIDs returns the sessions' ids.
func sessionIDs(sessions []*session) []int64 {
	ids := make([]int64, len(sessions))
	for i, s := range sessions {
		ids[i] = s.c.SessionID()
	}
	return ids
}

// marks returns the sessions' state marks.
func marks(sessions []*session) []int {
	m := make([]int, len(sessions))
	for i, s := range sessions {
		m[i] = s.states.mark()
	}
	return m
}

// killLeader kills the leader member and waits until another leads; it returns the killed
// member's index.
func killLeader(t *testing.T, e *zktest.Ensemble) int {
	t.Helper()
	leader, err := e.Leader()
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := e.Kill(leader); err != nil {
		t.Fatal(err)
	}
	next, err := e.WaitReady(testContext(t, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed leader member %d; member %d leads %v later", leader, next, time.Since(begin).Round(time.Millisecond))
	return leader
}
