package recipes

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
)

func TestMutexExclusionAcrossSessions(t *testing.T) {
	const sessions, rounds = 5, 10
	path := testPath(t, "lock")
	admin, holds := exclusionRun(t, sessions, rounds, func(i int, c *framework.Client, k counter) testkit.Contender {
		return contender(i, k, c, testkit.Exclusive(NewInterProcessMutex(c, path).Acquire))
	})
	if len(holds) != sessions*rounds {
		t.Errorf("%d holds, want %d", len(holds), sessions*rounds)
	}
	if names := children(t, admin, path); len(names) != 0 {
		t.Errorf("nodes left under the lock path: %v", names)
	}
}

func TestMutexGoroutinesShareOneValue(t *testing.T) {
	const goroutines, rounds = 6, 5
	c := newClient(t)
	m := NewInterProcessMutex(c, testPath(t, "lock"))
	k := newCounter(t, c, testPath(t, "counter"))
	ctx := testContext(t, time.Minute)
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				l, err := m.Acquire(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				for {
					old := maxInside.Load()
					if n <= old || maxInside.CompareAndSwap(old, n) {
						break
					}
				}
				if err := k.increment(ctx, c, time.Millisecond); err != nil {
					t.Error(err)
				}
				inside.Add(-1)
				if err := l.Release(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if maxInside.Load() != 1 {
		t.Errorf("%d goroutines held the mutex at once", maxInside.Load())
	}
	if got := k.value(t); got != goroutines*rounds {
		t.Errorf("counter = %d, want %d", got, goroutines*rounds)
	}
}

func TestMutexReentryThroughLeaseContext(t *testing.T) {
	c := newClient(t)
	path := testPath(t, "lock")
	m := NewInterProcessMutex(c, path)
	ctx := testContext(t, 30*time.Second)

	outer := acquired(t, ctx, m.Acquire)
	type key struct{}
	derived := context.WithValue(outer.Context(), key{}, "v")
	inner1 := acquired(t, derived, m.Acquire)
	inner2, err := m.Acquire(inner1.Context())
	if err != nil {
		t.Fatal(err)
	}
	if inner1.Node() != outer.Node() || inner2.Node() != outer.Node() || inner2.Token() != outer.Token() {
		t.Errorf("re-entry made a new hold: %s %s %s", outer.Node(), inner1.Node(), inner2.Node())
	}
	if inner1.Context().Value(key{}) != "v" {
		t.Error("lease context lost the acquiring context's values")
	}
	if n := len(children(t, c, path)); n != 1 {
		t.Fatalf("%d nodes after re-entry, want 1", n)
	}
	// Another value on the same path does not re-enter with our context: it must wait.
	other := NewInterProcessMutex(c, path)
	if _, err := other.TryAcquire(outer.Context()); !errors.Is(err, ErrLocked) {
		t.Fatalf("other mutex value with our lease context: %v, want ErrLocked", err)
	}

	for i, l := range []*Lease{inner2, inner1} {
		if err := l.Release(); err != nil {
			t.Fatalf("release %d: %v", i, err)
		}
		if !errors.Is(l.Err(), ErrReleased) || !errors.Is(context.Cause(l.Context()), ErrReleased) {
			t.Errorf("released inner lease: Err %v, context cause %v", l.Err(), context.Cause(l.Context()))
		}
		if outer.Err() != nil || !m.IsAcquiredInThisProcess() {
			t.Fatalf("releasing an inner lease ended the hold: %v", outer.Err())
		}
		if n := len(children(t, c, path)); n != 1 {
			t.Fatalf("inner release deleted the node")
		}
	}
	if err := inner1.Release(); !errors.Is(err, ErrNotHeld) {
		t.Errorf("second release: %v, want ErrNotHeld", err)
	}
	mustRelease(t, outer)
	select {
	case <-outer.Done():
	default:
		t.Error("Done not closed after the last release")
	}
	if m.IsAcquiredInThisProcess() {
		t.Error("IsAcquiredInThisProcess after the last release")
	}
	if names := children(t, c, path); len(names) != 0 {
		t.Errorf("nodes left after the last release: %v", names)
	}
	// A released lease's context can no longer re-enter.
	if _, err := m.Acquire(outer.Context()); err == nil {
		t.Error("re-entry through a released lease's context succeeded")
	}
}

func TestMutexAcquireDeadlineLeavesNoNode(t *testing.T) {
	path := testPath(t, "lock")
	a, b := newClient(t), newClient(t)
	held, err := NewInterProcessMutex(a, path).Acquire(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = NewInterProcessMutex(b, path).Acquire(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past its deadline: %v, want DeadlineExceeded", err)
	}
	eventually(t, 5*time.Second, "only the holder's node", func() bool {
		names := children(t, a, path)
		return len(names) == 1 && path+"/"+names[0] == held.Node() && b.PendingDeletes() == 0
	})
}

func TestMutexCancelWhileWaiting(t *testing.T) {
	path := testPath(t, "lock")
	a, b := newClient(t), newClient(t)
	if _, err := NewInterProcessMutex(a, path).Acquire(testContext(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := NewInterProcessMutex(b, path).Acquire(ctx)
		done <- err
	}()
	eventually(t, 10*time.Second, "the waiter's node", func() bool { return len(children(t, a, path)) == 2 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire: %v, want context.Canceled", err)
	}
	// The node goes at once, or, if the cancel caught its create in flight, as soon as the
	// create's reply is in.
	eventually(t, 5*time.Second, "the cancelled waiter's node to go", func() bool {
		return len(children(t, a, path)) == 1 && b.PendingDeletes() == 0
	})
}

// A waiter whose predecessor gives up while the holder still holds does not take the lock: woken
// by its predecessor's delete, it lists the queue again and waits on the holder. (Taking the
// wake-up as the grant would let two in.)
func TestWaiterWhosePredecessorGivesUpKeepsWaiting(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		lock func(c *framework.Client, path string) Locker
	}{
		{"InterProcessMutex", func(c *framework.Client, path string) Locker { return NewInterProcessMutex(c, path) }},
		{"WriteLock", func(c *framework.Client, path string) Locker { return NewReadWriteLock(c, path).WriteLock() }},
		// (A SemaphoreMutex's waiters queue on its internal mutex, whose holder waits on the
		// leases: TestSemaphore* cover it.)
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := testPath(t, "lock")
			a, b, c := newClient(t), newClient(t), newClient(t)
			held, err := tt.lock(a, path).Acquire(testContext(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			nodes := func() int { return len(allNodes(t, a, path)) }
			bctx, cancelB := context.WithCancel(context.Background())
			bDone := make(chan error, 1)
			go func() {
				_, err := tt.lock(b, path).Acquire(bctx)
				bDone <- err
			}()
			eventually(t, 10*time.Second, "b's node", func() bool { return nodes() == 2 })
			cDone := acquireAsync(t, testContext(t, 30*time.Second), tt.lock(c, path).Acquire)
			eventually(t, 10*time.Second, "c's node", func() bool { return nodes() == 3 })
			cancelB()
			if err := <-bDone; !errors.Is(err, context.Canceled) {
				t.Fatalf("b's cancelled Acquire: %v", err)
			}
			eventually(t, 10*time.Second, "b's node to go", func() bool { return nodes() == 2 })
			// c has seen b's delete; give it the round trips a wrong grant would take.
			select {
			case l := <-cDone:
				t.Fatalf("c was granted (token %d) while a holds (token %d)", l.Token(), held.Token())
			case <-time.After(500 * time.Millisecond):
			}
			mustRelease(t, held)
			l := <-cDone
			if l == nil {
				t.FailNow()
			}
			if l.Token() <= held.Token() {
				t.Errorf("c's token %d not above a's %d", l.Token(), held.Token())
			}
			l.Release()
		})
	}
}

func TestMutexTryAcquire(t *testing.T) {
	path := testPath(t, "lock")
	a, b := newClient(t), newClient(t)
	ctx := testContext(t, 10*time.Second)
	l, err := NewInterProcessMutex(a, path).TryAcquire(ctx)
	if err != nil {
		t.Fatalf("TryAcquire of a free lock: %v", err)
	}
	before := len(children(t, a, path))
	if _, err := NewInterProcessMutex(b, path).TryAcquire(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryAcquire of a held lock: %v, want ErrLocked", err)
	}
	if after := len(children(t, a, path)); after != before {
		t.Errorf("TryAcquire left a node: %d nodes, want %d", after, before)
	}
	// Another client sees the lock free once the release's delete is applied: ReleaseWait.
	if err := l.ReleaseWait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := NewInterProcessMutex(b, path).TryAcquire(ctx); err != nil {
		t.Errorf("TryAcquire after release: %v", err)
	}
}

func TestMutexHolderClientClosedWakesWaiter(t *testing.T) {
	path := testPath(t, "lock")
	a, b := newClient(t), newClient(t)
	held, err := NewInterProcessMutex(a, path).Acquire(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := acquireAsync(t, testContext(t, 30*time.Second), NewInterProcessMutex(b, path).Acquire)
	eventually(t, 10*time.Second, "the waiter's node", func() bool { return len(children(t, b, path)) == 2 })
	a.Close()
	within(t, held.Done(), 10*time.Second, "holder's lease not ended by its client's Close")
	if !errors.Is(held.Err(), ErrClosed) || !errors.Is(held.Err(), ErrLockLost) {
		t.Errorf("holder's Err after Close = %v, want ErrLockLost and ErrClosed", held.Err())
	}
	l := <-got
	if l == nil {
		t.Fatal("waiter did not get the lock")
	}
	if l.Token() <= held.Token() {
		t.Errorf("token %d not above the closed holder's %d", l.Token(), held.Token())
	}
	if err := held.Release(); !errors.Is(err, ErrLockLost) {
		t.Errorf("Release after Close: %v, want ErrLockLost", err)
	}
}

func TestMutexHolderSessionExpires(t *testing.T) {
	for _, policy := range []framework.ErrorPolicy{framework.StandardErrorPolicy, framework.SessionErrorPolicy} {
		t.Run(policy.String(), func(t *testing.T) {
			path := testPath(t, "lock")
			a, proxy := newProxiedClient(t, framework.WithErrorPolicy(policy))
			b := newClient(t)
			ctx := testContext(t, 30*time.Second)
			held := acquired(t, ctx, NewInterProcessMutex(a, path).Acquire)
			got := acquireAsync(t, ctx, NewInterProcessMutex(b, path).Acquire)
			eventually(t, 10*time.Second, "the waiter's node", func() bool { return len(children(t, b, path)) == 2 })
			oldSession := a.SessionID()
			expireHolder(t, ctx, proxy, oldSession, held, "holder not told its session expired")
			if !errors.Is(held.Err(), ErrLockLost) {
				t.Errorf("Err = %v, want ErrLockLost", held.Err())
			}
			if !errors.Is(context.Cause(held.Context()), ErrLockLost) {
				t.Errorf("lease context cause = %v, want ErrLockLost", context.Cause(held.Context()))
			}
			l := <-got
			if l == nil {
				t.Fatal("waiter did not get the lock")
			}
			// The old holder's Release must not touch the new holder's node.
			eventually(t, 10*time.Second, "a new session", func() bool { s := a.SessionID(); return s != 0 && s != oldSession })
			if err := held.Release(); !errors.Is(err, ErrLockLost) {
				t.Errorf("Release of a lost lease: %v, want ErrLockLost", err)
			}
			if names := children(t, b, path); len(names) != 1 || path+"/"+names[0] != l.Node() {
				t.Errorf("nodes after the old holder's release: %v, want only %s", names, l.Node())
			}
			if l.Err() != nil {
				t.Errorf("new holder's lease ended: %v", l.Err())
			}
			if l.Token() <= held.Token() {
				t.Errorf("token %d not above the expired holder's %d", l.Token(), held.Token())
			}
		})
	}
}

func TestMutexConnectionDropFollowsErrorPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy   framework.ErrorPolicy
		wantLost bool
	}{
		{framework.StandardErrorPolicy, true},
		{framework.SessionErrorPolicy, false},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			path := testPath(t, "lock")
			a, proxy := newProxiedClient(t, framework.WithErrorPolicy(tc.policy))
			states := make(chan framework.State, 16)
			defer a.Listen(func(s framework.State) { states <- s })()
			ctx := testContext(t, 30*time.Second)
			l := acquired(t, ctx, NewInterProcessMutex(a, path).Acquire)
			proxy.CloseConnections()
			waitState(t, states, framework.Suspended)
			waitState(t, states, framework.Reconnected)
			if !tc.wantLost {
				if l.Err() != nil {
					t.Fatalf("hold ended by a connection drop under %v: %v", tc.policy, l.Err())
				}
				if n := len(children(t, a, path)); n != 1 {
					t.Fatalf("%d nodes, want the holder's", n)
				}
				mustRelease(t, l)
				return
			}
			select {
			case <-l.Done():
			default:
				t.Fatal("hold not ended at Suspended")
			}
			if !errors.Is(l.Err(), ErrLockLost) {
				t.Errorf("Err = %v, want ErrLockLost", l.Err())
			}
			// Its node survived the drop; it is removed once connected again.
			eventually(t, 10*time.Second, "the lost hold's node to be removed", func() bool { return len(children(t, a, path)) == 0 })
		})
	}
}

func waitState(t *testing.T, states <-chan framework.State, want framework.State) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case s := <-states:
			if s == want {
				return
			}
		case <-timeout:
			t.Fatalf("state %v not reported", want)
		}
	}
}

func TestMutexConnectionCutAfterCreate(t *testing.T) {
	path := testPath(t, "lock")
	a, proxy := newProxiedClient(t)
	ctx := testContext(t, 30*time.Second)
	// The lock path exists, so the next create is the lock node's own.
	if _, err := a.Create(ctx, path, []byte{}, framework.Persistent, framework.WithParents()); err != nil {
		t.Fatal(err)
	}
	cut := proxy.CutAfterNextCreate()
	l := acquired(t, ctx, NewInterProcessMutex(a, path).Acquire)
	select {
	case <-cut:
	default:
		t.Fatal("the proxy did not cut the connection after the create")
	}
	names := children(t, a, path)
	if len(names) != 1 || path+"/"+names[0] != l.Node() {
		t.Fatalf("nodes after a cut create: %v, want exactly ours (%s)", names, l.Node())
	}
	mustRelease(t, l)
	if names := children(t, a, path); len(names) != 0 {
		t.Errorf("nodes after release: %v", names)
	}
}

func TestMutexWaiterRequeuesAfterItsSessionExpires(t *testing.T) {
	path := testPath(t, "lock")
	a := newClient(t)
	b, proxy := newProxiedClient(t)
	ctx := testContext(t, 30*time.Second)
	held := acquired(t, ctx, NewInterProcessMutex(a, path).Acquire)
	got := acquireAsync(t, ctx, NewInterProcessMutex(b, path).Acquire)
	var first string
	eventually(t, 10*time.Second, "the waiter's node", func() bool {
		names := children(t, a, path)
		if len(names) == 2 {
			sortChildren(names, lockName)
			first = names[1]
		}
		return first != ""
	})
	if err := proxy.ExpireSession(ctx, testServer, b.SessionID()); err != nil {
		t.Fatal(err)
	}
	// The waiter queues again with a new node in its new session.
	eventually(t, 15*time.Second, "the waiter's new node", func() bool {
		names := children(t, a, path)
		return len(names) == 2 && names[0] != first && names[1] != first
	})
	mustRelease(t, held)
	l := <-got
	if l == nil {
		t.Fatal("waiter did not get the lock")
	}
	if l.Node() == path+"/"+first {
		t.Error("the waiter holds with its expired session's node")
	}
	mustRelease(t, l)
}

func TestMutexFencingTokenSurvivesRecreatedParent(t *testing.T) {
	path := testPath(t, "lock")
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	m := NewInterProcessMutex(c, path)
	l1 := acquired(t, ctx, m.Acquire)
	mustRelease(t, l1)
	if err := c.Delete(ctx, path, -1); err != nil {
		t.Fatal(err)
	}
	l2 := acquired(t, ctx, m.Acquire)
	defer l2.Release()
	if l2.Token() <= l1.Token() {
		t.Errorf("token %d after re-creating the parent is not above %d", l2.Token(), l1.Token())
	}
	// The sequence number restarted, which is why it is no fencing token.
	if l2.Node()[len(l2.Node())-10:] != "0000000000" {
		t.Errorf("re-created parent's first node %s does not restart the sequence", l2.Node())
	}
}

var mutexNodeName = regexp.MustCompile(`^_c_[0-9a-f-]{36}-lock-\d{10}$`)

func TestMutexNodeNamesAndParticipants(t *testing.T) {
	path := testPath(t, "lock")
	a, b := newClient(t), newClient(t)
	ctx := testContext(t, 10*time.Second)
	ma := NewInterProcessMutex(a, path)
	held := acquired(t, ctx, ma.Acquire)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go NewInterProcessMutex(b, path).Acquire(wctx)
	eventually(t, 10*time.Second, "the waiter's node", func() bool { return len(children(t, a, path)) == 2 })
	nodes, err := ma.ParticipantNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0] != held.Node() {
		t.Fatalf("ParticipantNodes = %v, want the holder %s first", nodes, held.Node())
	}
	for _, n := range nodes {
		_, name := framework.SplitPath(n)
		if !mutexNodeName.MatchString(name) {
			t.Errorf("node name %q is not Curator's", name)
		}
	}
	data, _, err := a.Get(ctx, held.Node())
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != string(a.DefaultData()) {
		t.Errorf("node data %q, want the client's default data %q", data, a.DefaultData())
	}
	if got, _ := NewInterProcessMutex(a, testPath(t, "none")).ParticipantNodes(ctx); len(got) != 0 {
		t.Errorf("ParticipantNodes of a missing path = %v", got)
	}
}

func TestMutexBadInput(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	for _, tc := range []struct {
		name string
		c    *framework.Client
		path string
	}{
		{"empty path", c, ""},
		{"relative path", c, "locks/a"},
		{"trailing slash", c, "/locks/a/"},
		{"empty element", c, "/locks//a"},
		{"dot element", c, "/locks/./a"},
		{"root", c, "/"},
		{"nil client", nil, "/locks/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewInterProcessMutex(tc.c, tc.path)
			if _, err := m.Acquire(ctx); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("Acquire: %v, want ErrInvalidArgument", err)
			}
			if _, err := m.TryAcquire(ctx); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("TryAcquire: %v, want ErrInvalidArgument", err)
			}
			if _, err := m.ParticipantNodes(ctx); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("ParticipantNodes: %v, want ErrInvalidArgument", err)
			}
		})
	}
	var nilLease *Lease
	if err := nilLease.Release(); !errors.Is(err, ErrNotHeld) {
		t.Errorf("Release of a nil lease: %v, want ErrNotHeld", err)
	}
}

func TestMutexUseAfterClose(t *testing.T) {
	c := startOwnClient(t)
	ctx := testContext(t, 10*time.Second)
	if err := c.BlockUntilConnected(ctx); err != nil {
		t.Fatal(err)
	}
	path := testPath(t, "lock")
	m := NewInterProcessMutex(c, path)
	l := acquired(t, ctx, m.Acquire)
	c.Close()
	<-l.Done()
	if !errors.Is(l.Err(), ErrClosed) {
		t.Errorf("lease Err after Close = %v, want ErrClosed", l.Err())
	}
	if _, err := m.Acquire(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Acquire after Close: %v, want ErrClosed", err)
	}
	if _, err := m.ParticipantNodes(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("ParticipantNodes after Close: %v, want ErrClosed", err)
	}
	if names := children(t, newClient(t), path); len(names) != 0 {
		t.Errorf("the closed session's node is still there: %v", names)
	}
}

func TestMutexHoldOutlivesAcquireContext(t *testing.T) {
	c := newClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	l := acquired(t, ctx, NewInterProcessMutex(c, testPath(t, "lock")).Acquire)
	cancel()
	if l.Err() != nil || l.Context().Err() != nil {
		t.Fatalf("cancelling the acquire context ended the hold: %v", l.Err())
	}
	mustRelease(t, l)
}

func BenchmarkMutexUncontended(b *testing.B) {
	c := newClient(b)
	benchUncontended(b, c, NewInterProcessMutex(c, testPath(b, "lock")))
}

// benchUncontended measures one Acquire and Release of lk, a lock of client c that no one else
// takes, and reports the requests that c sends per pair (requests/op). A first pair, before the
// timer, creates the lock's parents.
func benchUncontended(b *testing.B, c *framework.Client, lk Locker) {
	ctx := context.Background()
	warm, err := lk.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	warm.Release()
	before := c.RequestCount()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l, err := lk.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.RequestCount()-before)/float64(b.N), "requests/op")
}

func BenchmarkMutexContended8(b *testing.B) {
	const sessions = 8
	path := testPath(b, "lock")
	clients := make([]*framework.Client, sessions)
	for i := range clients {
		clients[i] = newClient(b)
	}
	ctx := context.Background()
	var ops atomic.Int64
	var wg sync.WaitGroup
	before := uint64(0)
	for _, c := range clients {
		before += c.RequestCount()
	}
	b.ResetTimer()
	for _, c := range clients {
		m := NewInterProcessMutex(c, path)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ops.Add(1) <= int64(b.N) {
				l, err := m.Acquire(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				l.Release()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	after := uint64(0)
	for _, c := range clients {
		after += c.RequestCount()
	}
	b.ReportMetric(float64(after-before)/float64(b.N), "requests/op")
}
