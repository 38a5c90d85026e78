package recipes

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
)

var (
	leaseNodeName        = regexp.MustCompile(`^_c_[0-9a-f-]{36}-lease-\d{10}$`)
	semaphoreLockNodeRes = regexp.MustCompile(`^_c_[0-9a-f-]{36}-lock-\d{10}$`)
)

// leaseNodes lists the names under a semaphore's leases node.
func leaseNodes(t testing.TB, c *framework.Client, path string) []string {
	t.Helper()
	return children(t, c, path+"/leases")
}

// lockNodes lists the names under a semaphore's internal mutex node.
func lockNodes(t testing.TB, c *framework.Client, path string) []string {
	t.Helper()
	return children(t, c, path+"/locks")
}

// nodePaths returns the full paths of leases' nodes.
func nodePaths(leases []*Lease) []string {
	out := make([]string, len(leases))
	for i, l := range leases {
		out[i] = l.Node()
	}
	return out
}

// sameNodes reports whether the names under parent are exactly the full paths want, in any order.
func sameNodes(parent string, names, want []string) bool {
	got := make([]string, len(names))
	for i, n := range names {
		got[i] = parent + "/" + n
	}
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	return slices.Equal(got, want)
}

func releaseAll(t testing.TB, leases []*Lease) {
	t.Helper()
	for _, l := range leases {
		if err := l.Release(); err != nil {
			t.Errorf("release %s: %v", l.Node(), err)
		}
	}
}

func TestSemaphoreNeverAboveMaxLeases(t *testing.T) {
	const maxLeases, clients, rounds = 3, 8, 4
	path := testPath(t, "sem")
	admin := newClient(t)
	ctx := testContext(t, 2*time.Minute)
	var (
		inside, maxInside atomic.Int32
		maxNodes          atomic.Int32
		wg                sync.WaitGroup
	)
	for i := 0; i < clients; i++ {
		c := newClient(t)
		s := NewSemaphore(c, path, maxLeases)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				qty := 1 + (i+r)%2
				leases, err := s.Acquire(ctx, qty)
				if err != nil {
					t.Error(err)
					return
				}
				if len(leases) != qty {
					t.Errorf("Acquire(%d) returned %d leases", qty, len(leases))
				}
				n := inside.Add(int32(qty))
				for {
					old := maxInside.Load()
					if n <= old || maxInside.CompareAndSwap(old, n) {
						break
					}
				}
				// Only the acquirer with the internal mutex has a lease node that does not hold.
				names, _, err := c.Children(ctx, path+"/leases")
				if err != nil {
					t.Error(err)
				}
				nodes := int32(len(names))
				for {
					old := maxNodes.Load()
					if nodes <= old || maxNodes.CompareAndSwap(old, nodes) {
						break
					}
				}
				time.Sleep(15 * time.Millisecond) // hold the leases a while, so that holders overlap
				inside.Add(-int32(qty))
				releaseAll(t, leases)
			}
		}()
	}
	wg.Wait()
	if got := maxInside.Load(); got != maxLeases {
		t.Errorf("at most %d leases were held at once, want exactly %d", got, maxLeases)
	}
	if got := maxNodes.Load(); got > maxLeases+1 {
		t.Errorf("%d lease nodes at once, want at most %d (the holders and one waiter)", got, maxLeases+1)
	}
	noSemaphoreNodesLeft(t, admin, path)
}

// noSemaphoreNodesLeft fails the test if the semaphore (or semaphore mutex) at path has lease
// nodes or internal mutex nodes left, as c sees them.
func noSemaphoreNodesLeft(t testing.TB, c *framework.Client, path string) {
	t.Helper()
	if names := leaseNodes(t, c, path); len(names) != 0 {
		t.Errorf("lease nodes left: %v", names)
	}
	if names := lockNodes(t, c, path); len(names) != 0 {
		t.Errorf("internal mutex nodes left: %v", names)
	}
}

func TestSemaphoreBadInput(t *testing.T) {
	c := newClient(t)
	good := testPath(t, "sem")
	for _, tc := range []struct {
		name      string
		c         *framework.Client
		path      string
		maxLeases int
		qty       int
		want      string // in the error's text
	}{
		{"nil client", nil, good, 2, 1, "client is nil"},
		{"empty path", c, "", 2, 1, `path ""`},
		{"relative path", c, "sem/a", 2, 1, `"sem/a"`},
		{"trailing slash", c, "/sem/a/", 2, 1, `"/sem/a/"`},
		{"empty element", c, "/sem//a", 2, 1, `"/sem//a"`},
		{"root", c, "/", 2, 1, `"/"`},
		{"maxLeases 0", c, good, 0, 1, "maxLeases 0"},
		{"maxLeases below 0", c, good, -2, 1, "maxLeases -2"},
		{"qty 0", c, good, 2, 0, "qty 0"},
		{"qty below 0", c, good, 2, -1, "qty -1"},
		{"qty above maxLeases", c, good, 2, 3, "qty 3 is above maxLeases 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A wait would end with this deadline instead of the error wanted.
			ctx := testContext(t, 5*time.Second)
			s := NewSemaphore(tc.c, tc.path, tc.maxLeases)
			for _, call := range []struct {
				name string
				f    func(context.Context, int) ([]*Lease, error)
			}{{"Acquire", s.Acquire}, {"TryAcquire", s.TryAcquire}} {
				leases, err := call.f(ctx, tc.qty)
				if !errors.Is(err, ErrInvalidArgument) || leases != nil {
					t.Errorf("%s: %v, %v; want ErrInvalidArgument", call.name, leases, err)
				} else if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: error %q does not name %s", call.name, err, tc.want)
				}
			}
			if strings.HasPrefix(tc.name, "qty") {
				return // the semaphore itself is fine
			}
			if _, err := s.ParticipantNodes(ctx); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("ParticipantNodes: %v, want ErrInvalidArgument", err)
			}
			if tc.maxLeases < 1 {
				return
			}
			m := NewSemaphoreMutex(tc.c, tc.path)
			if _, err := m.Acquire(ctx); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("SemaphoreMutex.Acquire: %v, want ErrInvalidArgument", err)
			}
			if _, err := m.TryAcquire(ctx); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("SemaphoreMutex.TryAcquire: %v, want ErrInvalidArgument", err)
			}
			if _, err := m.ParticipantNodes(ctx); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("SemaphoreMutex.ParticipantNodes: %v, want ErrInvalidArgument", err)
			}
		})
	}
	if ok, _, err := c.Exists(testContext(t, 5*time.Second), good); err != nil || ok {
		t.Errorf("bad input created the semaphore's path (exists %v, %v)", ok, err)
	}
}

func TestSemaphoreAllOrNone(t *testing.T) {
	path := testPath(t, "sem")
	a, b := newClient(t), newClient(t)
	ctx := testContext(t, 30*time.Second)
	held, err := NewSemaphore(a, path, 3).Acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	sb := NewSemaphore(b, path, 3)
	wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		leases, err := sb.Acquire(wctx, 2)
		if err == nil {
			releaseAll(t, leases)
		}
		done <- err
	}()
	// b takes the third lease, then waits for a fourth with its second node.
	eventually(t, 10*time.Second, "b's lease and its waiting node", func() bool { return len(leaseNodes(t, a, path)) == 4 })
	if got := sb.held(); got != 1 {
		t.Errorf("b holds %d leases while it waits, want 1", got)
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire(2) with 1 lease free: %v, want DeadlineExceeded", err)
	}
	if got := sb.held(); got != 0 {
		t.Errorf("b still holds %d leases after a failed Acquire", got)
	}
	if names := leaseNodes(t, a, path); !sameNodes(path+"/leases", names, nodePaths(held)) {
		t.Errorf("lease nodes after a failed Acquire(2): %v, want only a's %v", names, nodePaths(held))
	}
	if names := lockNodes(t, a, path); len(names) != 0 {
		t.Errorf("internal mutex nodes after a failed Acquire(2): %v", names)
	}
	// With one of a's leases back, b gets both.
	if err := held[0].Release(); err != nil {
		t.Fatal(err)
	}
	leases, err := sb.Acquire(ctx, 2)
	if err != nil {
		t.Fatalf("Acquire(2) with 2 leases free: %v", err)
	}
	if leases[0].Node() == leases[1].Node() {
		t.Errorf("two leases on one node %s", leases[0].Node())
	}
	releaseAll(t, leases)
	releaseAll(t, held[1:])
}

func TestSemaphoreLeasesReleasedOneByOne(t *testing.T) {
	path := testPath(t, "sem")
	a, b := newClient(t), newClient(t)
	ctx := testContext(t, 30*time.Second)
	s := NewSemaphore(a, path, 3)
	leases, err := s.Acquire(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if names := leaseNodes(t, a, path); !sameNodes(path+"/leases", names, nodePaths(leases)) {
		t.Fatalf("lease nodes %v, want %v", names, nodePaths(leases))
	}
	if _, err := NewSemaphore(b, path, 3).TryAcquire(ctx, 1); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryAcquire with all leases held: %v, want ErrLocked", err)
	}
	if err := leases[1].Release(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(leases[1].Err(), ErrReleased) {
		t.Errorf("released lease Err = %v, want ErrReleased", leases[1].Err())
	}
	for _, l := range []*Lease{leases[0], leases[2]} {
		if l.Err() != nil {
			t.Errorf("releasing one lease ended another: %v", l.Err())
		}
	}
	if names := leaseNodes(t, a, path); !sameNodes(path+"/leases", names, []string{leases[0].Node(), leases[2].Node()}) {
		t.Errorf("lease nodes after one release: %v", names)
	}
	other, err := NewSemaphore(b, path, 3).TryAcquire(ctx, 1)
	if err != nil {
		t.Fatalf("TryAcquire of the released lease: %v", err)
	}
	if err := leases[1].Release(); !errors.Is(err, ErrNotHeld) {
		t.Errorf("second Release: %v, want ErrNotHeld", err)
	}
	releaseAll(t, other)
	releaseAll(t, []*Lease{leases[0], leases[2]})
	if names := leaseNodes(t, a, path); len(names) != 0 {
		t.Errorf("lease nodes after releasing all: %v", names)
	}
}

func TestSemaphoreHolderSessionExpires(t *testing.T) {
	for _, policy := range []framework.ErrorPolicy{framework.StandardErrorPolicy, framework.SessionErrorPolicy} {
		t.Run(policy.String(), func(t *testing.T) {
			path := testPath(t, "sem")
			a, proxy := newProxiedClient(t, framework.WithErrorPolicy(policy))
			b := newClient(t)
			ctx := testContext(t, 30*time.Second)
			held, err := NewSemaphore(a, path, 1).Acquire(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			got := acquireLeasesAsync(t, ctx, NewSemaphore(b, path, 1), 1)
			eventually(t, 10*time.Second, "b's waiting node", func() bool { return len(leaseNodes(t, b, path)) == 2 })
			oldSession := a.SessionID()
			expireHolder(t, ctx, proxy, oldSession, held[0], "holder not told its session expired")
			if !errors.Is(held[0].Err(), ErrLockLost) {
				t.Errorf("Err = %v, want ErrLockLost", held[0].Err())
			}
			leases := <-got
			if leases == nil {
				t.Fatal("b did not get the lease")
			}
			eventually(t, 10*time.Second, "a new session", func() bool { s := a.SessionID(); return s != 0 && s != oldSession })
			if err := held[0].Release(); !errors.Is(err, ErrLockLost) {
				t.Errorf("Release of a lost lease: %v, want ErrLockLost", err)
			}
			if names := leaseNodes(t, b, path); !sameNodes(path+"/leases", names, nodePaths(leases)) {
				t.Errorf("lease nodes after the old holder's release: %v, want only %s", names, leases[0].Node())
			}
			if leases[0].Err() != nil {
				t.Errorf("new holder's lease ended: %v", leases[0].Err())
			}
			if leases[0].Token() <= held[0].Token() {
				t.Errorf("token %d not above the expired holder's %d", leases[0].Token(), held[0].Token())
			}
			releaseAll(t, leases)
		})
	}
}

func TestSemaphoreWaiterSessionExpires(t *testing.T) {
	path := testPath(t, "sem")
	a := newClient(t)
	b, proxy := newProxiedClient(t)
	ctx := testContext(t, 30*time.Second)
	held, err := NewSemaphore(a, path, 1).Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := acquireLeasesAsync(t, ctx, NewSemaphore(b, path, 1), 1)
	var waiting, waitingLock []string
	eventually(t, 10*time.Second, "b's waiting nodes", func() bool {
		waiting, waitingLock = leaseNodes(t, a, path), lockNodes(t, a, path)
		return len(waiting) == 2 && len(waitingLock) == 1
	})
	oldSession := b.SessionID()
	if err := proxy.ExpireSession(ctx, testServer, oldSession); err != nil {
		t.Fatal(err)
	}
	// b waits again, with new nodes made in its new session.
	eventually(t, 15*time.Second, "b's new nodes", func() bool {
		leases, locks := leaseNodes(t, a, path), lockNodes(t, a, path)
		if len(leases) != 2 || len(locks) != 1 || locks[0] == waitingLock[0] {
			return false
		}
		for _, n := range leases {
			if path+"/leases/"+n != held[0].Node() && slices.Contains(waiting, n) {
				return false
			}
		}
		return true
	})
	if err := held[0].Release(); err != nil {
		t.Fatal(err)
	}
	leases := <-got
	if leases == nil {
		t.Fatal("b did not get the lease")
	}
	if slices.Contains(waiting, strings.TrimPrefix(leases[0].Node(), path+"/leases/")) {
		t.Error("b holds with its expired session's node")
	}
	if leases[0].h.sessionID != b.SessionID() || b.SessionID() == oldSession {
		t.Errorf("b's lease is of session 0x%x, want the live one 0x%x", leases[0].h.sessionID, b.SessionID())
	}
	releaseAll(t, leases)
	if names := leaseNodes(t, a, path); len(names) != 0 {
		t.Errorf("lease nodes left: %v", names)
	}
}

func TestSemaphoreConnectionCutAfterLeaseCreate(t *testing.T) {
	path := testPath(t, "sem")
	a, proxy := newProxiedClient(t)
	x := newClient(t)
	ctx := testContext(t, 30*time.Second)
	// x holds the internal mutex (it is an InterProcessMutex on <path>/locks), so that a's next
	// create after its own internal mutex node is its lease node.
	inner := acquired(t, ctx, NewInterProcessMutex(x, path+"/locks").Acquire)
	got := acquireLeasesAsync(t, ctx, NewSemaphore(a, path, 2), 1)
	eventually(t, 10*time.Second, "a's internal mutex node", func() bool { return len(lockNodes(t, x, path)) == 2 })
	cut := proxy.CutAfterNextCreate()
	mustRelease(t, inner)
	leases := <-got
	if leases == nil {
		t.Fatal("no lease")
	}
	select {
	case <-cut:
	default:
		t.Fatal("the proxy did not cut the connection after the lease create")
	}
	if names := leaseNodes(t, x, path); !sameNodes(path+"/leases", names, nodePaths(leases)) {
		t.Fatalf("lease nodes after a cut create: %v, want exactly ours (%s)", names, leases[0].Node())
	}
	releaseAll(t, leases)
	if names := leaseNodes(t, x, path); len(names) != 0 {
		t.Errorf("lease nodes after release: %v", names)
	}
	if names := lockNodes(t, x, path); len(names) != 0 {
		t.Errorf("internal mutex nodes after release: %v", names)
	}
}

func TestSemaphoreCancelWhileWaiting(t *testing.T) {
	path := testPath(t, "sem")
	a, b := newClient(t), newClient(t)
	held, err := NewSemaphore(a, path, 1).Acquire(testContext(t, 10*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	sb := NewSemaphore(b, path, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := sb.Acquire(ctx, 1)
		done <- err
	}()
	eventually(t, 10*time.Second, "b's waiting node", func() bool { return len(leaseNodes(t, a, path)) == 2 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v, want context.Canceled", err)
	}
	if names := leaseNodes(t, a, path); !sameNodes(path+"/leases", names, nodePaths(held)) {
		t.Errorf("lease nodes after a cancelled wait: %v, want only the holder's", names)
	}
	if names := lockNodes(t, a, path); len(names) != 0 {
		t.Errorf("internal mutex nodes after a cancelled wait: %v", names)
	}
	// Nothing is leaked: once the lease is back, b gets it.
	releaseAll(t, held)
	leases, err := sb.Acquire(testContext(t, 10*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	releaseAll(t, leases)
}

func TestSemaphoreWaitingNodeDeletedByOthers(t *testing.T) {
	path := testPath(t, "sem")
	a, b := newClient(t), newClient(t)
	ctx := testContext(t, 30*time.Second)
	held, err := NewSemaphore(a, path, 1).Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := acquireLeasesAsync(t, ctx, NewSemaphore(b, path, 1), 1)
	var waiting string
	eventually(t, 10*time.Second, "b's waiting node", func() bool {
		for _, n := range leaseNodes(t, a, path) {
			if path+"/leases/"+n != held[0].Node() {
				waiting = n
			}
		}
		return waiting != ""
	})
	if err := a.Delete(ctx, path+"/leases/"+waiting, -1); err != nil {
		t.Fatal(err)
	}
	// b makes a new node and waits on.
	eventually(t, 10*time.Second, "b's new waiting node", func() bool {
		names := leaseNodes(t, a, path)
		return len(names) == 2 && !slices.Contains(names, waiting)
	})
	releaseAll(t, held)
	leases := <-got
	if leases == nil {
		t.Fatal("b did not get the lease")
	}
	releaseAll(t, leases)
	if names := leaseNodes(t, a, path); len(names) != 0 {
		t.Errorf("lease nodes left: %v", names)
	}
}

func TestSemaphoreTryAcquire(t *testing.T) {
	path := testPath(t, "sem")
	a, b, x := newClient(t), newClient(t), newClient(t)
	ctx := testContext(t, 30*time.Second)
	sa, sb := NewSemaphore(a, path, 3), NewSemaphore(b, path, 3)
	held, err := sa.TryAcquire(ctx, 2)
	if err != nil {
		t.Fatalf("TryAcquire(2) of a free semaphore: %v", err)
	}
	if _, err := sb.TryAcquire(ctx, 2); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryAcquire(2) with 1 lease free: %v, want ErrLocked", err)
	}
	if names := leaseNodes(t, a, path); !sameNodes(path+"/leases", names, nodePaths(held)) {
		t.Errorf("TryAcquire(2) left lease nodes: %v", names)
	}
	if names := lockNodes(t, a, path); len(names) != 0 {
		t.Errorf("TryAcquire(2) left internal mutex nodes: %v", names)
	}

	t.Run("waits for the internal mutex while leases are free", func(t *testing.T) {
		inner := acquired(t, ctx, NewInterProcessMutex(x, path+"/locks").Acquire)
		type result struct {
			leases []*Lease
			err    error
		}
		got := make(chan result, 1)
		go func() {
			leases, err := sb.TryAcquire(ctx, 1)
			got <- result{leases, err}
		}()
		eventually(t, 10*time.Second, "b's internal mutex node", func() bool { return len(lockNodes(t, a, path)) == 2 })
		select {
		case r := <-got:
			t.Fatalf("TryAcquire did not wait for the internal mutex: %v", r.err)
		default:
		}
		mustRelease(t, inner)
		r := <-got
		if r.err != nil {
			t.Fatalf("TryAcquire with a lease free: %v", r.err)
		}
		releaseAll(t, r.leases)
	})

	t.Run("gives up once the leases fill up while it waits", func(t *testing.T) {
		inner := acquired(t, ctx, NewInterProcessMutex(x, path+"/locks").Acquire)
		defer inner.Release()
		got := make(chan error, 1)
		go func() {
			leases, err := sb.TryAcquire(ctx, 1)
			if err == nil {
				releaseAll(t, leases)
			}
			got <- err
		}()
		eventually(t, 10*time.Second, "b's internal mutex node", func() bool { return len(lockNodes(t, a, path)) == 2 })
		// Whoever has the internal mutex creates a lease node: no lease is free any more.
		created, err := x.Create(ctx, path+"/leases/lease-", nil, framework.EphemeralSequential, framework.WithProtection())
		if err != nil {
			t.Fatal(err)
		}
		defer x.Delete(ctx, created.Path, -1)
		if err := <-got; !errors.Is(err, ErrLocked) {
			t.Fatalf("TryAcquire with the leases full: %v, want ErrLocked", err)
		}
		if names := lockNodes(t, a, path); len(names) != 1 {
			t.Errorf("internal mutex nodes after TryAcquire gave up: %v, want only x's", names)
		}
	})

	t.Run("does not wait behind an acquirer that waits for a lease", func(t *testing.T) {
		c := newClient(t)
		wctx, cancel := context.WithCancel(ctx)
		blocked := make(chan error, 1)
		go func() {
			_, err := NewSemaphore(c, path, 3).Acquire(wctx, 3)
			blocked <- err
		}()
		defer func() {
			cancel()
			if err := <-blocked; !errors.Is(err, context.Canceled) {
				t.Errorf("blocked acquirer: %v, want context.Canceled", err)
			}
		}()
		// It holds one lease and waits for a second one, with the internal mutex.
		eventually(t, 10*time.Second, "a blocked acquirer", func() bool {
			return len(lockNodes(t, a, path)) == 1 && len(leaseNodes(t, a, path)) == 4
		})
		start := time.Now()
		if _, err := sb.TryAcquire(ctx, 1); !errors.Is(err, ErrLocked) {
			t.Fatalf("TryAcquire behind a blocked acquirer: %v, want ErrLocked", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("TryAcquire took %v", d)
		}
	})
	releaseAll(t, held)
}

func TestSemaphoreNodesAndParticipants(t *testing.T) {
	path := testPath(t, "sem")
	a, b := newClient(t), newClient(t)
	ctx := testContext(t, 30*time.Second)
	sa := NewSemaphore(a, path, 2)
	held, err := sa.Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	sa.SetNodeData([]byte("lease-data"))
	held2, err := sa.Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	waiter := make(chan struct{})
	go func() {
		defer close(waiter)
		NewSemaphore(b, path, 2).Acquire(wctx, 1)
	}()
	eventually(t, 10*time.Second, "b's waiting nodes", func() bool {
		return len(leaseNodes(t, a, path)) == 3 && len(lockNodes(t, a, path)) == 1
	})
	nodes, err := sa.ParticipantNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 || nodes[0] != held[0].Node() || nodes[1] != held2[0].Node() {
		t.Fatalf("ParticipantNodes = %v, want the holders %s, %s first", nodes, held[0].Node(), held2[0].Node())
	}
	for _, n := range nodes {
		parent, name := framework.SplitPath(n)
		if parent != path+"/leases" || !leaseNodeName.MatchString(name) {
			t.Errorf("lease node %q is not Curator's", n)
		}
	}
	for _, name := range lockNodes(t, a, path) {
		if !semaphoreLockNodeRes.MatchString(name) {
			t.Errorf("internal mutex node %q is not Curator's", name)
		}
	}
	for _, tc := range []struct {
		node string
		want []byte
	}{
		{held[0].Node(), a.DefaultData()},
		{held2[0].Node(), []byte("lease-data")},
		{nodes[2], b.DefaultData()},
	} {
		data, _, err := a.Get(ctx, tc.node)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != string(tc.want) {
			t.Errorf("data of %s = %q, want %q", tc.node, data, tc.want)
		}
	}
	cancel()
	<-waiter
	if got, err := NewSemaphore(a, testPath(t, "none"), 1).ParticipantNodes(ctx); err != nil || len(got) != 0 {
		t.Errorf("ParticipantNodes of a missing path = %v, %v", got, err)
	}
	releaseAll(t, held)
	releaseAll(t, held2)
}

func TestSemaphoreClientClose(t *testing.T) {
	path := testPath(t, "sem")
	a := startOwnClient(t)
	ctx := testContext(t, 30*time.Second)
	if err := a.BlockUntilConnected(ctx); err != nil {
		t.Fatal(err)
	}
	b := newClient(t)
	sa := NewSemaphore(a, path, 1)
	held, err := sa.Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := acquireLeasesAsync(t, ctx, NewSemaphore(b, path, 1), 1)
	eventually(t, 10*time.Second, "b's waiting node", func() bool { return len(leaseNodes(t, b, path)) == 2 })
	a.Close()
	select {
	case <-held[0].Done():
	case <-ctx.Done():
		t.Fatal("lease not ended by its client's Close")
	}
	if !errors.Is(held[0].Err(), ErrClosed) {
		t.Errorf("lease Err after Close = %v, want ErrClosed", held[0].Err())
	}
	if leases := <-got; leases == nil {
		t.Fatal("b did not get the lease freed by Close")
	} else {
		releaseAll(t, leases)
	}
	if _, err := sa.Acquire(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close: %v, want ErrClosed", err)
	}
	if _, err := sa.TryAcquire(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("TryAcquire after Close: %v, want ErrClosed", err)
	}
	if _, err := sa.ParticipantNodes(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("ParticipantNodes after Close: %v, want ErrClosed", err)
	}
	m := NewSemaphoreMutex(a, path)
	if _, err := m.Acquire(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("SemaphoreMutex.Acquire after Close: %v, want ErrClosed", err)
	}
	if err := held[0].Release(); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrLockLost) {
		t.Errorf("Release after Close: %v", err)
	}
}

func TestSemaphoreHoldOutlivesAcquireContext(t *testing.T) {
	c := newClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	leases, err := NewSemaphore(c, testPath(t, "sem"), 2).Acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for _, l := range leases {
		if l.Err() != nil || l.Context().Err() != nil {
			t.Fatalf("cancelling the acquire context ended a lease: %v", l.Err())
		}
	}
	releaseAll(t, leases)
}

// TestSemaphoreAfterSessionsLost is Curator's testAcquireAfterLostServer: every session is lost
// while acquirers are in the middle of acquiring; afterwards each client still gets the lease (no
// orphaned node blocks the semaphore).
func TestSemaphoreAfterSessionsLost(t *testing.T) {
	const clients = 3
	path := testPath(t, "sem")
	proxy := testServer.Proxy(t)
	ctx := testContext(t, time.Minute)
	var (
		stop  atomic.Bool
		wg    sync.WaitGroup
		after [clients]atomic.Int32 // leases each client got after the outage
		phase atomic.Int32          // 1 once the outage is over
	)
	for i := 0; i < clients; i++ {
		c := connect(t, proxy.Addr())
		s := NewSemaphoreMutex(c, path)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				l, err := s.Acquire(actx)
				cancel()
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					continue // lost with the session, or timed out: try again
				}
				if phase.Load() == 1 {
					after[i].Add(1)
				}
				time.Sleep(5 * time.Millisecond)
				l.Release()
			}
		}()
	}
	t.Cleanup(func() {
		stop.Store(true)
		wg.Wait()
	})
	admin := newClient(t)
	eventually(t, 10*time.Second, "acquirers at work", func() bool { return len(leaseNodes(t, admin, path)) > 0 })
	proxy.Blackhole(true)
	// Past the session timeout every session through the proxy is gone.
	eventually(t, 15*time.Second, "the sessions to expire", func() bool {
		return len(leaseNodes(t, admin, path)) == 0 && len(lockNodes(t, admin, path)) == 0
	})
	proxy.Blackhole(false)
	phase.Store(1)
	eventually(t, 30*time.Second, "every client to get the lease again", func() bool {
		for i := range after {
			if after[i].Load() == 0 {
				return false
			}
		}
		return true
	})
	stop.Store(true)
	wg.Wait()
	eventually(t, 10*time.Second, "no nodes left", func() bool {
		return len(leaseNodes(t, admin, path)) == 0 && len(lockNodes(t, admin, path)) == 0
	})
}

// Acquirers of several leases each take the internal mutex for all their leases, so two of them
// never end up each holding part of what the other waits for.
func TestSemaphoreMultiLeaseAcquirersDoNotDeadlock(t *testing.T) {
	const maxLeases, clients, rounds = 3, 4, 5
	path := testPath(t, "sem")
	ctx := testContext(t, 30*time.Second)
	var inside atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		s := NewSemaphore(newClient(t), path, maxLeases)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				qty := maxLeases - (i+r)%2
				leases, err := s.Acquire(ctx, qty)
				if err != nil {
					t.Errorf("Acquire(%d): %v", qty, err)
					return
				}
				if n := inside.Add(int32(qty)); n > maxLeases {
					t.Errorf("%d leases held at once", n)
				}
				time.Sleep(2 * time.Millisecond)
				inside.Add(-int32(qty))
				releaseAll(t, leases)
			}
		}()
	}
	wg.Wait()
}

// A lease that Acquire took but lost (here at Suspended, under the standard error policy) before
// it had them all is replaced: Acquire returns only live leases.
func TestSemaphoreAcquireReplacesLostLease(t *testing.T) {
	path := testPath(t, "sem")
	x := newClient(t)
	a, proxy := newProxiedClient(t)
	ctx := testContext(t, 30*time.Second)
	others, err := NewSemaphore(x, path, 3).Acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	sa := NewSemaphore(a, path, 3)
	type result struct {
		leases []*Lease
		err    error
	}
	got := make(chan result, 1)
	go func() {
		leases, err := sa.Acquire(ctx, 2)
		got <- result{leases, err}
	}()
	var first string
	eventually(t, 10*time.Second, "a's first lease and its waiting node", func() bool {
		sa.holds.mu.Lock()
		for h := range sa.holds.holds {
			first = h.node
		}
		sa.holds.mu.Unlock()
		return first != "" && len(leaseNodes(t, x, path)) == 4
	})
	states := make(chan framework.State, 16)
	defer a.Listen(func(s framework.State) { states <- s })()
	proxy.CloseConnections()
	waitState(t, states, framework.Suspended)
	waitState(t, states, framework.Reconnected)
	// a's lost lease goes; its waiting one is granted; it waits for one more in its place.
	eventually(t, 10*time.Second, "a's lost lease to go", func() bool {
		names := leaseNodes(t, x, path)
		return len(names) == 4 && !slices.Contains(names, strings.TrimPrefix(first, path+"/leases/"))
	})
	releaseAll(t, others[:1])
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, l := range r.leases {
		if l.Err() != nil {
			t.Errorf("Acquire returned an ended lease %s: %v", l.Node(), l.Err())
		}
		if l.Node() == first {
			t.Errorf("Acquire returned the lost lease %s", first)
		}
	}
	want := append(nodePaths(r.leases), others[1].Node())
	if names := leaseNodes(t, x, path); !sameNodes(path+"/leases", names, want) {
		t.Errorf("lease nodes %v, want %v", names, want)
	}
	releaseAll(t, r.leases)
	releaseAll(t, others[1:])
}
