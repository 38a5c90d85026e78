package recipes

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
)

// dataNode creates, through c, the persistent node path+"-data" (and its parents) holding data,
// the node a test's guarded writes go to, and returns its path.
func dataNode(t testing.TB, c *framework.Client, path string, data []byte) string {
	t.Helper()
	node := path + "-data"
	if _, err := c.Create(testContext(t, 10*time.Second), node, data, framework.Persistent, framework.WithParents()); err != nil {
		t.Fatal(err)
	}
	return node
}

// startLeading starts a leader latch of c on path and waits, until ctx is done at most, until it
// leads; the test closes it.
func startLeading(t testing.TB, ctx context.Context, c *framework.Client, path string) *LeaderLatch {
	t.Helper()
	l := NewLeaderLatch(c, path)
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if err := l.Await(ctx); err != nil {
		_ = l.Close()
		t.Fatal(err)
	}
	return l
}

// A latch term that ended here (the connection dropped: Suspended under StandardErrorPolicy) is
// refused without a round trip, by latch.Guard and by LeadershipGuard of its context alike.
func TestLeadershipGuardOfEndedLatchTermRefusesLocally(t *testing.T) {
	t.Parallel()
	c, proxy := newProxiedClient(t)
	admin := newClient(t)
	path := testPath(t, "latch")
	data := dataNode(t, admin, path, []byte("0"))
	l := startLeading(t, testContext(t, 20*time.Second), c, path)
	defer l.Close()
	lctx := l.LeadershipContext()
	lg, ok := LeadershipGuard(lctx)
	if !ok {
		t.Fatal("no leadership guard")
	}
	g, err := l.Guard()
	if err != nil {
		t.Fatal(err)
	}

	proxy.CloseConnections()
	within(t, lctx.Done(), 10*time.Second, "the term did not end")
	t.Logf("term ended: %v; HasLeadership=%v", context.Cause(lctx), l.HasLeadership())

	before := c.RequestCount()
	_, err = g.Set(testContext(t, 10*time.Second), data, []byte("latch.Guard"), framework.AnyVersion)
	t.Logf("latch.Guard().Set after the term ended: %v (requests sent: %d)", err, c.RequestCount()-before)

	before = c.RequestCount()
	st, err := lg.Set(testContext(t, 10*time.Second), data, []byte("LeadershipGuard"), framework.AnyVersion)
	sent := c.RequestCount() - before
	t.Logf("LeadershipGuard(ctx).Set after the term ended: %v, %v (requests sent: %d)", st, err, sent)
	if err == nil || sent != 0 || !errors.Is(err, ErrNotLeader) {
		t.Errorf("LeadershipGuard of an ended term: err=%v, sent %d requests; want ErrNotLeader and nothing sent", err, sent)
	}
	if got, _, _ := admin.Get(testContext(t, 10*time.Second), data); string(got) != "0" {
		t.Errorf("data = %q: a write guarded by an ended term committed", got)
	}
}

// A write through LeadershipGuard of a closed latch's term, while the connection is down (Close
// left the node to the background deleter), never commits.
func TestLeadershipGuardAfterLatchCloseNeverCommits(t *testing.T) {
	t.Parallel()
	// A short connection timeout makes the order deterministic: the write is queued in
	// go-zookeeper before the reconnect, so it goes out before the background delete.
	c, proxy := newProxiedClient(t, framework.WithConnectionTimeout(300*time.Millisecond))
	admin := newClient(t)
	path := testPath(t, "latch")
	data := dataNode(t, admin, path, []byte("0"))
	l := startLeading(t, testContext(t, 20*time.Second), c, path)
	lctx := l.LeadershipContext()
	lg, _ := LeadershipGuard(lctx)

	states := make(chan framework.State, 16)
	defer c.Listen(func(s framework.State) { states <- s })()
	proxy.CloseConnections()
	waitState(t, states, framework.Suspended)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	closedAt := time.Now()
	st, err := lg.Set(testContext(t, 10*time.Second), data, []byte("after close"), framework.AnyVersion)
	t.Logf("LeadershipGuard.Set after latch.Close returned: stat=%v err=%v (%v after Close)", st != nil, err, time.Since(closedAt))
	if err == nil {
		t.Errorf("a write guarded by the leadership of a latch closed %v earlier committed (mzxid %d)", time.Since(closedAt).Round(time.Millisecond), st.Mzxid)
	}
	// The next leader comes only after that.
	l2 := NewLeaderLatch(admin, path)
	if err := l2.Start(); err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if err := l2.Await(testContext(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	tok, _ := LeadershipToken(l2.LeadershipContext())
	if st != nil {
		t.Logf("next leader's token %d > stale write's mzxid %d: %v", tok, st.Mzxid, tok > st.Mzxid)
	}
}

// A guarded write waiting for a connection (SessionErrorPolicy: a Suspended hold stands) when
// Release runs in another goroutine is not sent after Release returned: it gives up, naming the
// release. With the library's default connection timeout (15s) the waiting write and the
// background delete would race at the reconnect, so that case runs several rounds.
func TestGuardedWriteWaitingForConnectionStopsAtRelease(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		timeout time.Duration // the client's connection timeout
		rounds  int
	}{
		{"short connection timeout", 300 * time.Millisecond, 1},
		{"default connection timeout", framework.DefaultConnectionTimeout, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for i := range tt.rounds {
				c, proxy := newProxiedClient(t, framework.WithErrorPolicy(framework.SessionErrorPolicy),
					framework.WithSessionTimeout(4*time.Second), framework.WithConnectionTimeout(tt.timeout))
				admin := newClient(t)
				path := testPath(t, "lock")
				data := dataNode(t, admin, path, []byte("0"))
				l, err := NewInterProcessMutex(c, path).Acquire(testContext(t, 10*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				g := l.Guard()
				states := make(chan framework.State, 16)
				stop := c.Listen(func(s framework.State) { states <- s })
				proxy.Blackhole(true) // no reconnect until the release
				proxy.CloseConnections()
				waitState(t, states, framework.Suspended)
				stop()
				done := make(chan error, 1)
				go func() {
					_, err := g.Set(testContext(t, 20*time.Second), data, []byte("stale"), framework.AnyVersion)
					done <- err
				}()
				time.Sleep(50 * time.Millisecond) // let the Set pass its local check and wait for a connection
				mustRelease(t, l)
				proxy.Blackhole(false)
				if err := <-done; err == nil {
					t.Fatalf("round %d: a guarded write committed after its hold's Release had returned", i)
				} else if !errors.Is(err, ErrReleased) {
					t.Errorf("round %d: guarded write stopped by Release = %v; want ErrReleased", i, err)
				}
				if got, _, _ := admin.Get(testContext(t, 10*time.Second), data); string(got) != "0" {
					t.Errorf("round %d: data = %q after the release", i, got)
				}
			}
		})
	}
}

// Nil contexts are refused with ErrInvalidArgument (or ok false), not a panic.
func TestGuardNilContext(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	l, err := NewInterProcessMutex(c, testPath(t, "lock")).Acquire(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	for name, f := range map[string]func(){
		"Guard.Set(nil ctx)": func() {
			_, err := l.Guard().Set(nil, l.Node(), nil, framework.AnyVersion) //nolint:staticcheck
			t.Logf("Guard.Set(nil): %v", err)
		},
		"LeadershipGuard(nil)": func() { LeadershipGuard(nil) }, //nolint:staticcheck
		"LeadershipToken(nil)": func() { LeadershipToken(nil) }, //nolint:staticcheck
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s panicked: %v", name, r)
				}
			}()
			f()
		}()
	}
}

// A downgrade's read guard commits after the write lock is released while a writer queued behind
// stays blocked; the write lease's guard is refused locally once released; the next writer's token
// is above the read guard's last commit.
func TestGuardOfDowngradedReadLock(t *testing.T) {
	t.Parallel()
	c1, c2 := newClient(t), newClient(t)
	path := testPath(t, "rw")
	ctx := testContext(t, 30*time.Second)
	data := dataNode(t, c1, path, []byte("0"))
	rw1, rw2 := NewReadWriteLock(c1, path), NewReadWriteLock(c2, path)
	w := acquired(t, ctx, rw1.WriteLock().Acquire)
	granted := acquireAsync(t, ctx, rw2.WriteLock().Acquire)
	eventually(t, 10*time.Second, "second writer queued", func() bool { return len(children(t, c1, path)) == 2 })
	r, err := rw1.ReadLock().Acquire(w.Context())
	if err != nil {
		t.Fatal(err)
	}
	wg := w.Guard()
	mustRelease(t, w)
	before := c1.RequestCount()
	if _, err := wg.Set(ctx, data, []byte("w"), framework.AnyVersion); !errors.Is(err, ErrReleased) || c1.RequestCount() != before {
		t.Errorf("released write lease's guard: %v", err)
	}
	st, err := r.Guard().Set(ctx, data, []byte("r"), framework.AnyVersion)
	if err != nil {
		t.Fatalf("downgraded read guard: %v", err)
	}
	select {
	case <-granted:
		t.Fatal("writer granted while the downgraded read lock is held")
	case <-time.After(500 * time.Millisecond):
	}
	r.Release()
	w2 := <-granted
	defer w2.Release()
	if w2.Token() <= st.Mzxid {
		t.Errorf("next writer's token %d <= read guard's commit %d", w2.Token(), st.Mzxid)
	}
}

// A latch whose node is deleted by hand and re-created leads again with a strictly larger token;
// the old term's guards are refused with ErrNotLeader.
func TestLatchResetNewTokenOldGuardRefused(t *testing.T) {
	t.Parallel()
	c, admin := newClient(t), newClient(t)
	path := testPath(t, "latch")
	ctx := testContext(t, 30*time.Second)
	data := dataNode(t, admin, path, []byte("0"))
	l := startLeading(t, ctx, c, path)
	defer l.Close()
	ctx1 := l.LeadershipContext()
	tok1, _ := LeadershipToken(ctx1)
	g1, _ := l.Guard()
	lg1, _ := LeadershipGuard(ctx1)
	node1 := l.OurPath()
	if err := admin.Delete(ctx, node1, framework.AnyVersion); err != nil {
		t.Fatal(err)
	}
	<-ctx1.Done()
	eventually(t, 10*time.Second, "latch leads again with a new node", func() bool {
		return l.HasLeadership() && l.OurPath() != node1 && l.OurPath() != ""
	})
	tok2, _ := LeadershipToken(l.LeadershipContext())
	if tok2 <= tok1 {
		t.Errorf("token after reset %d <= %d", tok2, tok1)
	}
	if _, err := g1.Set(ctx, data, []byte("g1"), framework.AnyVersion); !errors.Is(err, ErrNotLeader) {
		t.Errorf("old term's latch.Guard: %v", err)
	}
	if _, err := lg1.Set(ctx, data, []byte("lg1"), framework.AnyVersion); !errors.Is(err, ErrNotLeader) {
		t.Errorf("old term's LeadershipGuard: %v", err)
	}
	if got, _, _ := admin.Get(ctx, data); string(got) != "0" {
		t.Errorf("data %q", got)
	}
}

// After InterruptLeadership (HasLeadership false, the leadership context cancelled), the term's
// guard is refused locally even while the leadership function still runs.
func TestSelectorGuardAfterInterruptRefusesLocally(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	path := testPath(t, "sel")
	ctx := testContext(t, 30*time.Second)
	data := dataNode(t, c, path, []byte("0"))
	leading := make(chan context.Context)
	proceed := make(chan struct{})
	s := NewLeaderSelector(c, path, func(lctx context.Context) error {
		leading <- lctx
		<-proceed
		return nil
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	lctx := <-leading
	if !s.InterruptLeadership() {
		t.Fatal("not leading")
	}
	g, _ := LeadershipGuard(lctx)
	_, err := g.Set(ctx, data, []byte("after interrupt"), framework.AnyVersion)
	t.Logf("HasLeadership=%v ctx cause=%v; guarded Set after InterruptLeadership: %v", s.HasLeadership(), context.Cause(lctx), err)
	close(proceed)
	if err == nil {
		t.Errorf("a write guarded by a selector's leadership committed after InterruptLeadership returned and HasLeadership turned false")
	}
}

// A bad op in a guarded Multi is named by its index in the caller's ops, not in the transaction
// the guard builds (its checks first).
func TestGuardBadOpNamedByCallersIndex(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	l, err := NewMultiLockPaths(c, testPath(t, "a"), testPath(t, "b")).Acquire(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	_, err = l.Guard().Multi(testContext(t, 10*time.Second), framework.SetOp("/ok", nil, framework.AnyVersion), framework.SetOp("relative", nil, framework.AnyVersion))
	t.Logf("guarded Multi with a bad op 1: %v", err)
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "op 1 ") {
		t.Errorf("error does not name the caller's op 1: %v", err)
	}
}

// Guards work in a namespaced client (check paths get the namespace), and a huge guarded Multi is
// refused before anything is sent.
func TestGuardNamespaceAndHugeTransaction(t *testing.T) {
	t.Parallel()
	base := testPath(t, "ns")
	admin := newClient(t)
	ctx := testContext(t, 20*time.Second)
	if _, err := admin.Create(ctx, base+"/data", []byte("0"), framework.Persistent, framework.WithParents()); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, framework.WithNamespace(strings.TrimPrefix(base, "/")))
	l := acquired(t, ctx, NewInterProcessMutex(c, "/lock").Acquire)
	defer l.Release()
	if _, err := l.Guard().Set(ctx, "/data", []byte("1"), framework.AnyVersion); err != nil {
		t.Fatalf("namespaced guarded Set: %v", err)
	}
	ops := make([]framework.Op, 100000)
	for i := range ops {
		ops[i] = framework.CheckOp("/data", framework.AnyVersion)
	}
	before := c.RequestCount()
	if _, err := l.Guard().Multi(ctx, ops...); !errors.Is(err, framework.ErrRequestTooLarge) || c.RequestCount() != before {
		t.Errorf("huge guarded Multi: %v", err)
	}
	if err := admin.Delete(ctx, base+l.Node(), framework.AnyVersion); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Guard().Set(ctx, "/data", []byte("2"), framework.AnyVersion); !errors.Is(err, ErrLockLost) || !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("namespaced guarded Set after node deleted: %v", err)
	}
}

// A MultiLock over two clients has no guard: its writes are refused with ErrInvalidArgument before
// anything is sent, by either client.
func TestMultiLockOverTwoClientsHasNoGuard(t *testing.T) {
	t.Parallel()
	c1, c2 := newClient(t), newClient(t)
	ctx := testContext(t, 20*time.Second)
	l := acquired(t, ctx, NewMultiLock(NewInterProcessMutex(c1, testPath(t, "a")), NewInterProcessMutex(c2, testPath(t, "b"))).Acquire)
	defer l.Release()
	b1, b2 := c1.RequestCount(), c2.RequestCount()
	_, err := l.Guard().Set(ctx, "/", nil, framework.AnyVersion)
	if !errors.Is(err, ErrInvalidArgument) || c1.RequestCount() != b1 || c2.RequestCount() != b2 {
		t.Errorf("two-client MultiLock guard: %v", err)
	}
	if ops, err := l.Guard().Ops(); !errors.Is(err, ErrInvalidArgument) || len(ops) != 0 {
		t.Errorf("two-client MultiLock guard's Ops() = %v, %v", ops, err)
	}
}
