package recipes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
)

// failingLocker fails its Acquire with err, after calling seen.
type failingLocker struct {
	err  error
	seen func(ctx context.Context)
}

func (f failingLocker) Acquire(ctx context.Context) (*Lease, error) {
	if f.seen != nil {
		f.seen(ctx)
	}
	return nil, f.err
}

func TestMultiLockAllOrNone(t *testing.T) {
	pathA, pathB := testPath(t, "a"), testPath(t, "b")
	a, b := newClient(t), newClient(t)
	ctx := testContext(t, 30*time.Second)
	heldB := acquired(t, ctx, NewInterProcessMutex(b, pathB).Acquire)
	mA := NewInterProcessMutex(a, pathA)
	var nodesWhileB []string
	ml := NewMultiLock(mA,
		&observedLocker{NewInterProcessMutex(a, pathB), func() { nodesWhileB = children(t, a, pathA) }},
		failingLocker{
			err:  errors.New("not reached"),
			seen: func(context.Context) { t.Error("the lock after the failed one was tried") },
		})

	dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := ml.Acquire(dctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with B held elsewhere: %v, want DeadlineExceeded", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "locker 1") || !strings.Contains(msg, pathB) {
		t.Errorf("error %q does not name locker 1 (%s)", msg, pathB)
	}
	if len(nodesWhileB) != 1 {
		t.Errorf("A was not held while B was tried: nodes %v", nodesWhileB)
	}
	if names := children(t, a, pathA); len(names) != 0 {
		t.Errorf("A not rolled back: nodes %v", names)
	}
	if mA.IsAcquiredInThisProcess() {
		t.Error("A still held after the rollback")
	}
	if names := children(t, a, pathB); len(names) != 1 || pathB+"/"+names[0] != heldB.Node() {
		t.Errorf("nodes under B %v, want only the other session's", names)
	}

	// Once B is free, both are taken.
	mustRelease(t, heldB)
	l := acquired(t, ctx, NewMultiLockPaths(a, pathA, pathB).Acquire)
	if len(children(t, a, pathA)) != 1 || len(children(t, a, pathB)) != 1 {
		t.Error("MultiLock lease does not hold both paths")
	}
	mustRelease(t, l)
	if len(children(t, a, pathA))+len(children(t, a, pathB)) != 0 {
		t.Error("nodes left after Release")
	}
}

// observedLocker calls before, then the wrapped mutex.
type observedLocker struct {
	*InterProcessMutex
	before func()
}

func (o *observedLocker) Acquire(ctx context.Context) (*Lease, error) {
	o.before()
	return o.InterProcessMutex.Acquire(ctx)
}

func TestMultiLockSomeLocksFail(t *testing.T) {
	pathA := testPath(t, "a")
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	mA := NewInterProcessMutex(c, pathA)
	boom := errors.New("boom")
	heldA := false
	_, err := NewMultiLock(mA, failingLocker{err: boom, seen: func(lctx context.Context) {
		heldA = mA.IsAcquiredInThisProcess() && len(children(t, c, pathA)) == 1
		if holdFrom(lctx, mA) == nil {
			t.Error("the second lock was not given the first lock's hold")
		}
	}}).Acquire(ctx)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "locker 1") {
		t.Fatalf("Acquire: %v, want boom naming locker 1", err)
	}
	if !heldA {
		t.Error("the first lock was not held when the second was tried")
	}
	if mA.IsAcquiredInThisProcess() || len(children(t, c, pathA)) != 0 {
		t.Error("the first lock was not rolled back")
	}
}

func TestMultiLockLease(t *testing.T) {
	paths := []string{testPath(t, "a"), testPath(t, "b"), testPath(t, "c")}
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	// Persistent lock parents, so that their pzxid survives the release (containers would be
	// reaped) and tells the order in which the nodes were deleted.
	for _, p := range paths {
		if _, err := c.Create(ctx, p, nil, framework.Persistent, framework.WithParents()); err != nil {
			t.Fatal(err)
		}
	}
	mutexes := []*InterProcessMutex{NewInterProcessMutex(c, paths[0]), NewInterProcessMutex(c, paths[1]), NewInterProcessMutex(c, paths[2])}
	type key struct{}
	l, err := NewMultiLock(mutexes[0], mutexes[1], mutexes[2]).Acquire(context.WithValue(ctx, key{}, "v"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Context().Value(key{}) != "v" {
		t.Error("lease context lost the acquiring context's values")
	}
	var tokens []int64
	for i, m := range mutexes {
		if !m.IsAcquiredInThisProcess() {
			t.Fatalf("lock %d not held", i)
		}
		// Re-entry through the MultiLock lease's context: same node, no wait.
		part, err := m.TryAcquire(l.Context())
		if err != nil {
			t.Fatalf("re-entry of lock %d through the lease context: %v", i, err)
		}
		if i == 0 && part.Node() != l.Node() {
			t.Errorf("Node() = %s, want the first lock's %s", l.Node(), part.Node())
		}
		tokens = append(tokens, part.Token())
		mustRelease(t, part)
		if len(children(t, c, paths[i])) != 1 {
			t.Fatalf("releasing a re-entered part deleted lock %d's node", i)
		}
	}
	if tokens[0] == tokens[2] {
		t.Fatalf("parts have equal tokens %v; the test needs them different", tokens)
	}
	if want := max(tokens[0], tokens[1], tokens[2]); l.Token() != want {
		t.Errorf("Token() = %d, want the largest of the parts' %v", l.Token(), tokens)
	}

	mustRelease(t, l)
	select {
	case <-l.Done():
	default:
		t.Fatal("Done not closed after Release")
	}
	if !errors.Is(l.Err(), ErrReleased) || !errors.Is(context.Cause(l.Context()), ErrReleased) {
		t.Errorf("Err %v, context cause %v; want ErrReleased", l.Err(), context.Cause(l.Context()))
	}
	if err := l.Release(); !errors.Is(err, ErrNotHeld) {
		t.Errorf("second Release: %v, want ErrNotHeld", err)
	}
	var pzxids []int64
	for i, p := range paths {
		if m := mutexes[i]; m.IsAcquiredInThisProcess() {
			t.Errorf("lock %d still held", i)
		}
		ok, st, err := c.Exists(ctx, p)
		if err != nil || !ok {
			t.Fatalf("lock path %s: %v %v", p, ok, err)
		}
		if names := children(t, c, p); len(names) != 0 {
			t.Errorf("nodes left under %s: %v", p, names)
		}
		pzxids = append(pzxids, st.Pzxid)
	}
	// Each path's last child change was our node's delete: released in reverse order.
	if !(pzxids[2] < pzxids[1] && pzxids[1] < pzxids[0]) {
		t.Errorf("nodes deleted at zxids %v (locks 0, 1, 2), want the reverse order", pzxids)
	}
}

func TestMultiLockPartLost(t *testing.T) {
	pathA, pathB := testPath(t, "a"), testPath(t, "b")
	a, proxy := newProxiedClient(t)
	b := newClient(t)
	ctx := testContext(t, 30*time.Second)
	l := acquired(t, ctx, NewMultiLock(NewInterProcessMutex(b, pathA), NewInterProcessMutex(a, pathB)).Acquire)
	old := a.SessionID()
	expireHolder(t, ctx, proxy, old, l, "MultiLock lease not ended when a part's session expired")
	if err := l.Err(); !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "locker 1") ||
		!strings.Contains(err.Error(), pathB) {
		t.Errorf("Err = %v, want ErrLockLost naming locker 1 (%s)", err, pathB)
	}
	if !errors.Is(context.Cause(l.Context()), ErrLockLost) {
		t.Errorf("context cause %v, want ErrLockLost", context.Cause(l.Context()))
	}
	// Another session gets B.
	other := acquired(t, ctx, NewInterProcessMutex(newClient(t), pathB).Acquire)
	eventually(t, 10*time.Second, "a new session", func() bool { s := a.SessionID(); return s != 0 && s != old })
	err := l.Release()
	if !errors.Is(err, ErrLockLost) || !strings.Contains(err.Error(), "locker 1") {
		t.Errorf("Release: %v, want ErrLockLost naming locker 1", err)
	}
	if names := children(t, b, pathA); len(names) != 0 {
		t.Errorf("the healthy part was not released: %v", names)
	}
	if names := children(t, b, pathB); len(names) != 1 || pathB+"/"+names[0] != other.Node() {
		t.Errorf("nodes under B %v, want only the new holder's", names)
	}
}

func TestMultiLockPartLostWhileAcquiring(t *testing.T) {
	pathA, pathB := testPath(t, "a"), testPath(t, "b")
	a, proxy := newProxiedClient(t)
	b, holder := newClient(t), newClient(t)
	ctx := testContext(t, 30*time.Second)
	heldB := acquired(t, ctx, NewInterProcessMutex(holder, pathB).Acquire)
	ch := acquireInBackground(ctx, NewMultiLock(NewInterProcessMutex(a, pathA), NewInterProcessMutex(b, pathB)), nil)
	waitForNodes(t, b, pathB, 2)
	if err := proxy.ExpireSession(ctx, testServer, a.SessionID()); err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err == nil || !errors.Is(r.err, ErrLockLost) || !strings.Contains(r.err.Error(), "locker 0") {
		t.Fatalf("Acquire: %v, want ErrLockLost naming locker 0", r.err)
	}
	if ctx.Err() != nil {
		t.Fatal("Acquire waited for its context instead of giving up when a part was lost")
	}
	if names := children(t, b, pathB); len(names) != 1 || pathB+"/"+names[0] != heldB.Node() {
		t.Errorf("nodes under B %v, want only the holder's", names)
	}
	eventually(t, 10*time.Second, "the lost node's removal", func() bool { return len(children(t, b, pathA)) == 0 })
}

func TestMultiLockReleaseJoinsErrors(t *testing.T) {
	pathA, pathB := testPath(t, "a"), testPath(t, "b")
	a, proxy := newProxiedClient(t)
	ctx := testContext(t, 30*time.Second)
	l := acquired(t, ctx, NewMultiLockPaths(a, pathA, pathB).Acquire)
	if err := proxy.ExpireSession(ctx, testServer, a.SessionID()); err != nil {
		t.Fatal(err)
	}
	<-l.Done()
	err := l.Release()
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != 2 {
		t.Fatalf("Release: %v, want both parts' errors joined", err)
	}
	errs := joined.Unwrap()
	for i, want := range []string{"locker 1", "locker 0"} {
		if !errors.Is(errs[i], ErrLockLost) || !strings.Contains(errs[i].Error(), want) {
			t.Errorf("error %d: %v, want ErrLockLost naming %s (reverse order)", i, errs[i], want)
		}
	}
	if err := l.Release(); !errors.Is(err, ErrNotHeld) {
		t.Errorf("second Release: %v, want ErrNotHeld", err)
	}
}

func TestMultiLockExclusion(t *testing.T) {
	const rounds = 10
	pathA, pathB, pathC := testPath(t, "a"), testPath(t, "b"), testPath(t, "c")
	sessions := [][]string{{pathA, pathB}, {pathB, pathC}, {pathA, pathB}, {pathB, pathC}}
	admin, holds := exclusionRun(t, len(sessions), rounds, func(i int, c *framework.Client, k counter) testkit.Contender {
		ml := NewMultiLockPaths(c, sessions[i]...)
		// This test checks exclusion only, not the order of the MultiLock's tokens.
		return contender(i, k, c, testkit.WithoutToken(testkit.Exclusive(ml.Acquire)))
	})
	if len(holds) != 4*rounds {
		t.Errorf("%d holds, want %d", len(holds), 4*rounds)
	}
	for _, p := range []string{pathA, pathB, pathC} {
		if names := children(t, admin, p); len(names) != 0 {
			t.Errorf("nodes left under %s: %v", p, names)
		}
	}
}

func TestMultiLockHoldsPassedOn(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	t.Run("same mutex twice", func(t *testing.T) {
		path := testPath(t, "a")
		m := NewInterProcessMutex(c, path)
		l := acquired(t, ctx, NewMultiLock(m, m).Acquire)
		if n := len(children(t, c, path)); n != 1 {
			t.Errorf("%d nodes, want 1 (the second part re-enters the first)", n)
		}
		mustRelease(t, l)
		if m.IsAcquiredInThisProcess() || len(children(t, c, path)) != 0 {
			t.Error("not released")
		}
	})
	t.Run("write then read", func(t *testing.T) {
		path := testPath(t, "rw")
		rw := NewReadWriteLock(c, path)
		l := acquired(t, ctx, NewMultiLock(rw.WriteLock(), rw.ReadLock()).Acquire)
		names := rwNodes(t, c, path)
		if len(names) != 2 || nodeSeq(names[0]) != nodeSeq(names[1]) {
			t.Errorf("nodes %v, want the write node and its downgrade read node", names)
		}
		mustRelease(t, l)
		if names := children(t, c, path); len(names) != 0 {
			t.Errorf("nodes left: %v", names)
		}
	})
}

func TestMultiLockBadInput(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	good := NewInterProcessMutex(c, testPath(t, "good"))
	for _, tc := range []struct {
		name string
		ml   *MultiLock
		want string
	}{
		{"no lockers", NewMultiLock(), "no locks"},
		{"nil locker", NewMultiLock(good, nil), "locker 1 is nil"},
		{"nil mutex", NewMultiLock((*InterProcessMutex)(nil), good), "locker 0 is nil"},
		{"no paths", NewMultiLockPaths(c), "no locks"},
		{"nil client", NewMultiLockPaths(nil, "/a"), "client is nil"},
		{"relative path", NewMultiLockPaths(c, "/a", "b"), `locker 1 (b)`},
		{"empty path", NewMultiLockPaths(c, ""), `""`},
		{"root", NewMultiLockPaths(c, "/"), `"/"`},
		{"repeated path", NewMultiLockPaths(c, "/a", "/b", "/a"), `"/a" is given twice`},
		{"bad mutex", NewMultiLock(good, NewInterProcessMutex(c, "x")), `"x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tc.ml.Acquire(ctx)
			if l != nil || !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Acquire: %v, want ErrInvalidArgument naming %s", err, tc.want)
			}
		})
	}
	if good.IsAcquiredInThisProcess() {
		t.Error("a bad MultiLock left a good lock held")
	}
	var nilCtx context.Context
	if _, err := NewMultiLock(good).Acquire(nilCtx); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Acquire(nil): %v, want ErrInvalidArgument", err)
	}
}
