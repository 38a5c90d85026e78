package recipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/retry"
	"github.com/gocurator/curator/zktest"
)

// guardedHold is a hold of some recipe, with its guard and a way to let it go.
type guardedHold struct {
	guard   Guard
	node    string       // the holder's own node (the first, for a MultiLock)
	err     func() error // the hold's local state: nil while held
	release func() error
	lost    error // what the guard's failed check wraps
}

// guardedRecipes take a hold of each recipe, and of each election's leadership, with c under path.
var guardedRecipes = []struct {
	name string
	take func(t *testing.T, c *framework.Client, path string) guardedHold
}{
	{"InterProcessMutex", leaseHold(func(c *framework.Client, path string) func(context.Context) (*Lease, error) {
		return NewInterProcessMutex(c, path).Acquire
	})},
	{"SemaphoreMutex", leaseHold(func(c *framework.Client, path string) func(context.Context) (*Lease, error) {
		return NewSemaphoreMutex(c, path).Acquire
	})},
	{"Semaphore", leaseHold(func(c *framework.Client, path string) func(context.Context) (*Lease, error) {
		return func(ctx context.Context) (*Lease, error) {
			ls, err := NewSemaphore(c, path, 2).Acquire(ctx, 1)
			if err != nil {
				return nil, err
			}
			return ls[0], nil
		}
	})},
	{"ReadLock", leaseHold(func(c *framework.Client, path string) func(context.Context) (*Lease, error) {
		return NewReadWriteLock(c, path).ReadLock().Acquire
	})},
	{"WriteLock", leaseHold(func(c *framework.Client, path string) func(context.Context) (*Lease, error) {
		return NewReadWriteLock(c, path).WriteLock().Acquire
	})},
	{"MultiLock", leaseHold(func(c *framework.Client, path string) func(context.Context) (*Lease, error) {
		return NewMultiLockPaths(c, path+"/a", path+"/b").Acquire
	})},
	{"LeaderLatch", func(t *testing.T, c *framework.Client, path string) guardedHold {
		l := NewLeaderLatch(c, path)
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		if err := l.Await(testContext(t, 20*time.Second)); err != nil {
			t.Fatal(err)
		}
		g, err := l.Guard()
		if err != nil {
			t.Fatal(err)
		}
		lg, ok := LeadershipGuard(l.LeadershipContext())
		if !ok || !slices.Equal(lg.nodes, g.nodes) {
			t.Fatalf("LeadershipGuard(LeadershipContext()) = %v, %v; want the latch's guard %v", lg.nodes, ok, g.nodes)
		}
		ctx := l.LeadershipContext()
		return guardedHold{guard: g, node: l.OurPath(), err: func() error { return context.Cause(ctx) }, release: l.Close, lost: ErrNotLeader}
	}},
	{"LeaderSelector", func(t *testing.T, c *framework.Client, path string) guardedHold {
		leading := make(chan context.Context)
		s := NewLeaderSelector(c, path, func(ctx context.Context) error {
			leading <- ctx
			<-ctx.Done()
			return nil
		})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		ctx := <-leading
		g, ok := LeadershipGuard(ctx)
		if !ok {
			t.Fatal("no guard in the selector's leadership context")
		}
		return guardedHold{guard: g, node: g.nodes[0], err: func() error { return context.Cause(ctx) }, release: s.Close, lost: ErrNotLeader}
	}},
}

func leaseHold(acquirer func(c *framework.Client, path string) func(context.Context) (*Lease, error)) func(*testing.T, *framework.Client, string) guardedHold {
	return func(t *testing.T, c *framework.Client, path string) guardedHold {
		l, err := acquirer(c, path)(testContext(t, 20*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return guardedHold{guard: l.Guard(), node: l.Node(), err: l.Err, release: l.Release, lost: ErrLockLost}
	}
}

// A guarded write commits while the hold stands; once the holder's node is gone on the server
// (deleted by another client here, so the holder has not been told) it is refused by the server
// with ErrNoNode, and nothing of the transaction is applied; once the hold is let go, it fails
// before anything is sent.
func TestGuardedWrite(t *testing.T) {
	t.Parallel()
	for _, rc := range guardedRecipes {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			c, admin := newClient(t), newClient(t)
			path := testPath(t, "lock")
			data := dataNode(t, admin, path, []byte("0"))
			ctx := testContext(t, 20*time.Second)

			h := rc.take(t, c, path)
			if ops, err := h.guard.Ops(); err != nil || len(ops) == 0 || (rc.name == "MultiLock") != (len(ops) == 2) {
				t.Errorf("guard's check ops: %v, %v", ops, err)
			}
			st, err := h.guard.Set(ctx, data, []byte("1"), 0)
			if err != nil || st.Version != 1 {
				t.Fatalf("guarded Set while held = %v, %v", st, err)
			}
			res, err := h.guard.Multi(ctx, framework.SetOp(data, []byte("2"), 1), framework.CreateOp(data+"-made", nil, framework.Persistent))
			if err != nil || len(res) != 2 || res[1].Path != data+"-made" {
				t.Fatalf("guarded Multi while held = %+v, %v; want the two ops' results", res, err)
			}
			// A failing op of the caller's: the error counts in the caller's ops.
			_, err = h.guard.Multi(ctx, framework.CheckOp(data, 2), framework.SetOp(data, []byte("x"), 99))
			var me *framework.MultiError
			if !errors.As(err, &me) || me.Index != 1 || !errors.Is(err, zk.ErrBadVersion) || errors.Is(err, h.lost) {
				t.Errorf("guarded Multi with a bad version = %v; want a MultiError at op 1, ErrBadVersion", err)
			}

			// The holder's node deleted under it: the server refuses.
			if err := admin.Delete(ctx, h.node, framework.AnyVersion); err != nil {
				t.Fatal(err)
			}
			if h.err() != nil {
				t.Logf("the holder was told already: %v", h.err()) // a latch or selector watches its node
			}
			before := c.RequestCount()
			_, err = h.guard.Set(ctx, data, []byte("stale"), framework.AnyVersion)
			if h.err() == nil || c.RequestCount() > before {
				// Refused by the server; or, for a latch or a selector, which watch their node,
				// the term may end while the write is in flight: its outcome is then unknown.
				if !errors.Is(err, h.lost) || !(errors.Is(err, zk.ErrNoNode) || errors.Is(err, framework.ErrUnknownOutcome)) {
					t.Errorf("guarded Set after the holder's node was deleted = %v; want %v and zk.ErrNoNode (or ErrUnknownOutcome)", err, h.lost)
				}
			} else if !errors.Is(err, h.lost) {
				t.Errorf("guarded Set after the holder was told = %v; want %v", err, h.lost)
			}
			if got, _, _ := admin.Get(ctx, data); string(got) != "2" {
				t.Errorf("data = %q after a refused guarded write, want 2", got)
			}

			// Let go: refused locally, nothing sent.
			h.release()
			before = c.RequestCount()
			if _, err := h.guard.Set(ctx, data, []byte("after"), framework.AnyVersion); err == nil {
				t.Error("guarded Set after release committed")
			}
			if n := c.RequestCount() - before; n != 0 {
				t.Errorf("guarded Set after release sent %d requests", n)
			}
		})
	}
}

// The zero Guard, and a nil lease's, refuse every write.
func TestZeroGuard(t *testing.T) {
	var l *Lease
	for _, g := range []Guard{{}, l.Guard(), (&Lease{}).Guard()} {
		if _, err := g.Set(context.Background(), "/x", nil, framework.AnyVersion); !errors.Is(err, ErrNotHeld) {
			t.Errorf("Set of a zero guard = %v, want ErrNotHeld", err)
		}
		if ops, err := g.Ops(); !errors.Is(err, ErrNotHeld) || len(ops) != 0 {
			t.Errorf("zero guard's Ops() = %v, %v; want ErrNotHeld", ops, err)
		}
	}
	if _, ok := LeadershipGuard(context.Background()); ok {
		t.Error("LeadershipGuard of a plain context is ok")
	}
}

// A holder whose session the server expires while it is cut off (SessionErrorPolicy: Suspended does
// not end its hold, and it is not told of the expiry until it reconnects) makes a guarded write
// meanwhile: the client sends it once it has a new
// session, and the server refuses it, the holder's node having gone with the old session. The new
// holder's guarded write commits.
func TestGuardedWriteAfterExpiryIsRefused(t *testing.T) {
	t.Parallel()
	for _, rc := range guardedRecipes {
		t.Run(rc.name, func(t *testing.T) {
			t.Parallel()
			path := testPath(t, "lock")
			admin := newClient(t)
			data := dataNode(t, admin, path, []byte("none"))
			a, proxy := newProxiedClient(t, framework.WithErrorPolicy(framework.SessionErrorPolicy),
				framework.WithSessionTimeout(4*time.Second),
				framework.WithRetryPolicy(retry.UntilElapsed(40*time.Second, 100*time.Millisecond)))
			states := make(chan framework.State, 16)
			defer a.Listen(func(s framework.State) { states <- s })()
			h := rc.take(t, a, path)
			// Cut off: the client is Suspended at once, and cannot reconnect.
			proxy.Blackhole(true)
			proxy.CloseConnections()
			waitState(t, states, framework.Suspended)
			if err := h.err(); err != nil {
				t.Fatalf("hold ended as the black hole began: %v", err)
			}
			// The write passes the local check (the hold has not been told of anything yet) and
			// waits for a connection.
			wrote := make(chan error, 1)
			go func() {
				_, err := h.guard.Set(context.Background(), data, []byte("a"), framework.AnyVersion)
				wrote <- err
			}()
			if err := proxy.ExpireSession(testContext(t, 30*time.Second), testServer, a.SessionID()); err != nil {
				t.Fatal(err)
			}
			b := rc.take(t, newClient(t), path)
			if _, err := b.guard.Set(testContext(t, 10*time.Second), data, []byte("b"), framework.AnyVersion); err != nil {
				t.Fatalf("the new holder's guarded write: %v", err)
			}
			var err error
			select {
			case err = <-wrote:
			case <-time.After(30 * time.Second):
				t.Fatal("the old holder's guarded write has not returned")
			}
			if err == nil {
				t.Fatal("the old holder's guarded write committed after its session expired")
			}
			if !errors.Is(err, h.lost) {
				t.Errorf("old holder's guarded write = %v; want %v", err, h.lost)
			}
			t.Logf("old holder's guarded write: %v", err)
			if got, _, _ := admin.Get(testContext(t, 10*time.Second), data); string(got) != "b" {
				t.Errorf("data = %q, want the new holder's b", got)
			}
		})
	}
}

// A guarded write racing its own hold's release commits before the release or fails; it never
// commits after the next holder's write.
func TestGuardedWriteRacingRelease(t *testing.T) {
	t.Parallel()
	c1, c2 := newClient(t), newClient(t)
	path := testPath(t, "lock")
	data := dataNode(t, c1, path, nil)
	m1, m2 := NewInterProcessMutex(c1, path), NewInterProcessMutex(c2, path)
	ctx := testContext(t, 60*time.Second)
	committed := 0
	for i := range 40 {
		l1 := acquired(t, ctx, m1.Acquire)
		next := make(chan *zk.Stat, 1)
		go func() {
			l2, err := m2.Acquire(ctx)
			if err != nil {
				t.Error(err)
				next <- nil
				return
			}
			defer l2.Release()
			st, err := l2.Guard().Set(ctx, data, fmt.Appendf(nil, "b%d", i), framework.AnyVersion)
			if err != nil {
				t.Error(err)
			}
			next <- st
		}()
		var wg sync.WaitGroup
		var st1 *zk.Stat
		var err1 error
		g := l1.Guard()
		wg.Go(func() { st1, err1 = g.Set(ctx, data, fmt.Appendf(nil, "a%d", i), framework.AnyVersion) })
		wg.Go(func() { l1.Release() })
		wg.Wait()
		st2 := <-next
		if st2 == nil {
			t.FailNow()
		}
		if err1 == nil {
			committed++
			if st1.Mzxid >= st2.Mzxid {
				t.Fatalf("round %d: the released holder's guarded write (zxid %d) committed after the next holder's (zxid %d)", i, st1.Mzxid, st2.Mzxid)
			}
		} else if !errors.Is(err1, ErrReleased) && !errors.Is(err1, ErrLockLost) {
			t.Errorf("round %d: guarded write racing release = %v", i, err1)
		}
	}
	t.Logf("%d of 40 guarded writes racing their release committed, each before the next holder's", committed)
}

// A latch's leadership context carries a fencing token that increases from one leader to the next.
func TestLeaderLatchToken(t *testing.T) {
	t.Parallel()
	path := testPath(t, "latch")
	var last int64
	for i := range 4 {
		l := NewLeaderLatch(newClient(t), path)
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		if err := l.Await(testContext(t, 20*time.Second)); err != nil {
			t.Fatal(err)
		}
		ctx := l.LeadershipContext()
		tok, ok := LeadershipToken(ctx)
		if !ok || tok <= last {
			t.Fatalf("leader %d: token %d, %v; want above %d", i, tok, ok, last)
		}
		last = tok
		l.Close()
		if _, ok := LeadershipToken(l.LeadershipContext()); ok {
			t.Error("a closed latch's LeadershipContext carries a token")
		}
		if tok2, ok := LeadershipToken(ctx); !ok || tok2 != tok {
			t.Errorf("the ended term's context says token %d, %v; want %d", tok2, ok, tok)
		}
	}
}

// Holders of one mutex, each through a proxy of its own, increment a counter with guarded writes
// (read, a pause of 1 to 3s, then a guarded, version-checked write that also logs itself as a
// sequential node), while their connections are cut, black-holed past the session timeout (the
// holder in its pause, most often) and their sessions expired. The counter must equal the number
// of committed writes (the log), and no write may have committed after a later holder was
// granted: its hold had ended on the server by then. (A holder cut off in its pause writes once it
// has a new session, while the next holder is in its own pause: without the guard's check, that
// write would land, its version being still the one it read.)
func TestGuardedWritesUnderFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("faults for 20s")
	}
	path := testPath(t, "lock")
	counterPath, logPath := path+"-counter", path+"-log"
	admin := newClient(t)
	ctx := testContext(t, 2*time.Minute)
	for _, p := range []string{counterPath, logPath + "/x"} {
		if _, err := admin.Create(ctx, p, []byte("0"), framework.Persistent, framework.WithParents()); err != nil {
			t.Fatal(err)
		}
	}
	type worker struct {
		c     *framework.Client
		proxy *zktest.Proxy
	}
	var (
		mu      sync.Mutex
		grants  []int64                // every grant's token
		unknown int                    // writes whose outcome was unknown
		refused int                    // writes refused because the hold had ended
		pausing = make(chan worker, 1) // a holder in its pause
	)
	var workers []worker
	for i := range 3 {
		policy := framework.SessionErrorPolicy
		if i == 2 {
			policy = framework.StandardErrorPolicy
		}
		c, p := newProxiedClient(t, framework.WithErrorPolicy(policy), framework.WithSessionTimeout(2*time.Second),
			framework.WithRetryPolicy(retry.UntilElapsed(20*time.Second, 50*time.Millisecond)))
		workers = append(workers, worker{c, p})
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, w := range workers {
		m := NewInterProcessMutex(w.c, path)
		wg.Go(func() {
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				l, err := m.Acquire(actx)
				cancel()
				if err != nil {
					continue
				}
				mu.Lock()
				grants = append(grants, l.Token())
				mu.Unlock()
				wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				data, st, err := w.c.Get(wctx, counterPath)
				if err == nil {
					var v int
					fmt.Sscan(string(data), &v)
					select {
					case pausing <- w:
					default:
					}
					time.Sleep(time.Duration(1000+(n*7919+i*104729)%2000) * time.Millisecond)
					_, err = l.Guard().Multi(wctx,
						framework.SetOp(counterPath, fmt.Append(nil, v+1), st.Version),
						framework.CreateOp(logPath+"/w-", fmt.Appendf(nil, "%d %d", l.Token(), i), framework.PersistentSequential))
					mu.Lock()
					switch {
					case errors.Is(err, framework.ErrUnknownOutcome):
						unknown++
					case errors.Is(err, ErrLockLost):
						refused++
					}
					mu.Unlock()
				}
				cancel()
				l.Release()
			}
		})
	}
	// Faults, one at a time, for 20s: two in three strike a holder in its pause.
	faults := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for k := 0; time.Now().Before(deadline); k++ {
		w := workers[k%len(workers)]
		if k%3 != 2 {
			select {
			case w = <-pausing:
			case <-time.After(5 * time.Second):
			}
			// Cut off past the session timeout: the server expires the session, the next holder
			// is granted, and this one learns of it only once it reconnects.
			w.proxy.Blackhole(true)
			w.proxy.CloseConnections()
			time.Sleep(3 * time.Second)
			w.proxy.Blackhole(false)
			faults["holder cut off"]++
			continue
		}
		if k%2 == 0 {
			w.proxy.CloseConnections()
			faults["cut"]++
		} else if err := w.proxy.ExpireSession(ctx, testServer, w.c.SessionID()); err == nil {
			faults["expire"]++
		}
		time.Sleep(200 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	names := children(t, admin, logPath)
	var commits int
	for _, n := range names {
		if n == "x" {
			continue
		}
		commits++
		data, st, err := admin.Get(ctx, logPath+"/"+n)
		if err != nil {
			t.Fatal(err)
		}
		var tok int64
		var who int
		fmt.Sscan(string(data), &tok, &who)
		for _, g := range grants {
			if g > tok && g < st.Czxid {
				t.Errorf("write %s of worker %d's hold (token %d) committed at zxid %d, after a later holder was granted (token %d)",
					n, who, tok, st.Czxid, g)
			}
		}
	}
	data, _, err := admin.Get(ctx, counterPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data); got != fmt.Sprint(commits) {
		t.Errorf("counter = %s, committed writes = %d", got, commits)
	}
	if commits == 0 {
		t.Error("no write committed")
	}
	t.Logf("%d grants, %d committed guarded writes, %d refused as lost, %d of unknown outcome; faults %v",
		len(grants), commits, refused, unknown, faults)
}
