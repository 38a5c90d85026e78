package recipes

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
)

// returnsWithin runs f and fails the test if it does not return within d.
func returnsWithin(t *testing.T, what string, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
	}
	t.Logf("%s returned in %v", what, time.Since(start).Round(time.Millisecond))
}

// A downgrade issued while the connection is blackholed, whose write hold's session then expires
// while a writer of another session is granted, must never be granted next to that writer.
func TestReadWriteLockDowngradeAfterExpiryNeverJoinsAWriter(t *testing.T) {
	for _, policy := range []framework.ErrorPolicy{framework.StandardErrorPolicy, framework.SessionErrorPolicy} {
		t.Run(policy.String(), func(t *testing.T) {
			path := testPath(t, "rw")
			a, proxy := newProxiedClient(t, framework.WithErrorPolicy(policy))
			b := newClient(t)
			ctx := testContext(t, 60*time.Second)
			rwA, rwB := NewReadWriteLock(a, path), NewReadWriteLock(b, path)
			w := acquired(t, ctx, rwA.WriteLock().Acquire)
			bw := acquireInBackground(ctx, rwB.WriteLock(), nil)
			waitForNodes(t, b, path, 2)

			proxy.Blackhole(true)
			// The downgrade's context carries the write hold, without its cancellation.
			down := func() <-chan acquireResult {
				ch := make(chan acquireResult, 1)
				go func() {
					l, err := rwA.ReadLock().Acquire(context.WithoutCancel(w.Context()))
					ch <- acquireResult{l, err}
				}()
				return ch
			}()
			// The server expires a's session; b's writer is granted.
			writer := awaitGrant(t, bw, 30*time.Second, "b's write lock after a's session expired")
			proxy.Blackhole(false)

			r := within(t, down, 30*time.Second, "the downgrade did not return after the connection came back")
			if r.err == nil {
				if writer.Err() == nil {
					t.Fatalf("downgrade granted (token %d, node %s) while b holds the write lock (token %d)",
						r.l.Token(), r.l.Node(), writer.Token())
				}
				r.l.Release()
			} else if !errors.Is(r.err, ErrLockLost) && !errors.Is(r.err, ErrReleased) {
				t.Errorf("downgrade error %v, want one wrapping ErrLockLost", r.err)
			}
			if writer.Err() != nil {
				t.Fatalf("b's write hold ended: %v", writer.Err())
			}
			// a leaves nothing behind: only b's write node remains.
			eventually(t, 10*time.Second, "a's nodes to be gone", func() bool { return len(children(t, b, path)) == 1 })
			mustRelease(t, writer)
		})
	}
}

// Release of a hold while the connection is down (noticed or not) returns at once; the node is
// deleted once the connection is back.
func TestReleaseWhileDisconnectedReturnsAtOnce(t *testing.T) {
	recipes := []struct {
		name    string
		acquire func(ctx context.Context, c *framework.Client, path string) (*Lease, error)
	}{
		{"InterProcessMutex", func(ctx context.Context, c *framework.Client, path string) (*Lease, error) {
			return NewInterProcessMutex(c, path).Acquire(ctx)
		}},
		{"SemaphoreMutex", func(ctx context.Context, c *framework.Client, path string) (*Lease, error) {
			return NewSemaphoreMutex(c, path).Acquire(ctx)
		}},
		{"WriteLock", func(ctx context.Context, c *framework.Client, path string) (*Lease, error) {
			return NewReadWriteLock(c, path).WriteLock().Acquire(ctx)
		}},
	}
	for _, rc := range recipes {
		for _, noticed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/noticed=%v", rc.name, noticed), func(t *testing.T) {
				path := testPath(t, "lock")
				a, proxy := newProxiedClient(t, framework.WithErrorPolicy(framework.SessionErrorPolicy),
					framework.WithSessionTimeout(4*time.Second))
				states := make(chan framework.State, 16)
				defer a.Listen(func(s framework.State) { states <- s })()
				ctx := testContext(t, 30*time.Second)
				l, err := rc.acquire(ctx, a, path)
				if err != nil {
					t.Fatal(err)
				}
				proxy.Blackhole(true)
				if noticed {
					waitState(t, states, framework.Suspended)
				}
				returnsWithin(t, "Release", time.Second, func() {
					if err := l.Release(); err != nil {
						t.Errorf("Release: %v", err)
					}
				})
				proxy.Blackhole(false)
				waitState(t, states, framework.Reconnected)
				eventually(t, 10*time.Second, "the released node to be deleted", func() bool {
					return len(allNodes(t, a, path)) == 0
				})
			})
		}
	}
}

// allNodes lists every lock, lease and latch node under path (a semaphore's under leases and
// locks too).
func allNodes(t testing.TB, c *framework.Client, path string) []string {
	t.Helper()
	var out []string
	for _, p := range []string{path, path + "/" + semaphoreLeases, path + "/" + semaphoreLocks} {
		for _, n := range children(t, c, p) {
			if n != semaphoreLeases && n != semaphoreLocks {
				out = append(out, p+"/"+n)
			}
		}
	}
	return out
}

// An Acquire of a semaphore (or SemaphoreMutex) whose ctx ends while the client is Suspended
// returns within a second, giving back the leases it had taken; nothing is left once connected.
func TestSemaphoreAcquireCancelledWhileSuspendedReturns(t *testing.T) {
	for _, qty := range []int{1, 2} {
		t.Run(fmt.Sprintf("qty=%d", qty), func(t *testing.T) {
			path := testPath(t, "sem")
			a, proxy := newProxiedClient(t, framework.WithErrorPolicy(framework.SessionErrorPolicy),
				framework.WithSessionTimeout(4*time.Second))
			b := newClient(t)
			ctx := testContext(t, 30*time.Second)
			held, err := NewSemaphore(b, path, 2).Acquire(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if qty == 1 {
				// b holds both leases: a waits for its first.
				more, err := NewSemaphore(b, path, 2).Acquire(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				held = append(held, more...)
			}
			states := make(chan framework.State, 16)
			defer a.Listen(func(s framework.State) { states <- s })()
			actx, cancel := context.WithCancel(ctx)
			got := make(chan error, 1)
			go func() {
				leases, err := NewSemaphore(a, path, 2).Acquire(actx, qty)
				for _, l := range leases {
					l.Release()
				}
				got <- err
			}()
			// a's waiting lease node (and, for qty 2, its first lease) is in place.
			eventually(t, 10*time.Second, "a's waiting lease node", func() bool {
				return len(children(t, b, path+"/"+semaphoreLeases)) == 3
			})
			proxy.Blackhole(true)
			waitState(t, states, framework.Suspended)
			cancel()
			returnsWithin(t, "the cancelled Acquire", time.Second, func() {
				if err := <-got; !errors.Is(err, context.Canceled) {
					t.Errorf("Acquire: %v, want context.Canceled", err)
				}
			})
			proxy.Blackhole(false)
			waitState(t, states, framework.Reconnected)
			for _, l := range held {
				mustRelease(t, l)
			}
			eventually(t, 10*time.Second, "every node to be gone", func() bool { return len(allNodes(t, b, path)) == 0 })
		})
	}
}

// A lost lease's Err says why it was lost.
func TestLostLeaseErrSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy framework.ErrorPolicy
		strike func(t *testing.T, c *framework.Client, p interface {
			CloseConnections()
		}, expire func())
		want error
	}{
		{"suspended", framework.StandardErrorPolicy, func(t *testing.T, c *framework.Client, p interface{ CloseConnections() }, _ func()) {
			p.CloseConnections()
		}, framework.ErrSuspended},
		{"session lost", framework.SessionErrorPolicy, func(t *testing.T, c *framework.Client, _ interface{ CloseConnections() }, expire func()) {
			expire()
		}, framework.ErrSessionLost},
		{"client closed", framework.StandardErrorPolicy, func(t *testing.T, c *framework.Client, _ interface{ CloseConnections() }, _ func()) {
			c.Close()
		}, ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := testPath(t, "lock")
			a, proxy := newProxiedClient(t, framework.WithErrorPolicy(tc.policy))
			ctx := testContext(t, 30*time.Second)
			l := acquired(t, ctx, NewInterProcessMutex(a, path).Acquire)
			tc.strike(t, a, proxy, func() {
				if err := proxy.ExpireSession(ctx, testServer, a.SessionID()); err != nil {
					t.Fatal(err)
				}
			})
			within(t, l.Done(), 15*time.Second, "lease did not end")
			if err := l.Err(); !errors.Is(err, ErrLockLost) || !errors.Is(err, tc.want) {
				t.Fatalf("Err = %v, want ErrLockLost and %v", err, tc.want)
			}
			if err := context.Cause(l.Context()); !errors.Is(err, tc.want) {
				t.Fatalf("context cause = %v, want %v", err, tc.want)
			}
		})
	}
}

// A hold that ends the moment it is made (its session's error state was reached already) leaves
// its lock's books at once: IsAcquiredInThisProcess must not stay true for ever.
func TestHoldEndedAtOnceLeavesTheBooks(t *testing.T) {
	c := newClient(t)
	for i := range 200 {
		var book holdBook
		// Session 0 is never live: its error state is reached already, so the watcher ends the
		// hold at once, racing the code that records it.
		h := newHold(c, &book, grant{node: fmt.Sprintf("/nowhere/%d", i)}, &book)
		eventually(t, 5*time.Second, "the ended hold to leave the books", func() bool { return book.count() == 0 })
		if h.liveIn(c) == nil {
			t.Fatal("hold of session 0 is live")
		}
	}
}

// A MultiLock's Release, and an Acquire that gives up, remove all their parts' nodes under one
// bound: over a connection gone silent (not yet noticed), they return within a second whatever the
// number of parts.
func TestMultiLockOverSilentConnectionReturnsWithinASecond(t *testing.T) {
	const parts = 5
	for _, policy := range []framework.ErrorPolicy{framework.StandardErrorPolicy, framework.SessionErrorPolicy} {
		t.Run(policy.String()+"/release", func(t *testing.T) {
			c, p := newProxiedClient(t, framework.WithErrorPolicy(policy), framework.WithSessionTimeout(4*time.Second))
			base := testPath(t, "ml")
			var paths []string
			for i := range parts {
				paths = append(paths, fmt.Sprintf("%s/p%d", base, i))
			}
			lease, err := NewMultiLockPaths(c, paths...).Acquire(testContext(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			p.Blackhole(true)
			defer p.Blackhole(false)
			returnsWithin(t, "Release", time.Second, func() { lease.Release() })
		})
		t.Run(policy.String()+"/acquire gives up", func(t *testing.T) {
			c, p := newProxiedClient(t, framework.WithErrorPolicy(policy), framework.WithSessionTimeout(4*time.Second))
			other := newClient(t)
			base := testPath(t, "ml")
			var paths []string
			for i := range parts {
				paths = append(paths, fmt.Sprintf("%s/p%d", base, i))
			}
			blocker, err := NewInterProcessMutex(other, paths[parts-1]).Acquire(testContext(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer blocker.Release()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			got := make(chan error, 1)
			go func() {
				_, err := NewMultiLockPaths(c, paths...).Acquire(ctx)
				got <- err
			}()
			eventually(t, 10*time.Second, "the MultiLock waiting on its last lock", func() bool {
				return len(children(t, other, paths[parts-1])) == 2
			})
			p.Blackhole(true)
			defer p.Blackhole(false)
			cancel()
			returnsWithin(t, "the cancelled Acquire", time.Second, func() {
				if err := <-got; !errors.Is(err, context.Canceled) {
					t.Errorf("Acquire: %v, want context.Canceled", err)
				}
			})
		})
	}
}

// A nil or zero Lease answers every accessor without a panic.
func TestZeroLeaseAccessors(t *testing.T) {
	for _, l := range []*Lease{nil, {}} {
		if err := l.Err(); !errors.Is(err, ErrNotHeld) {
			t.Errorf("Err = %v, want ErrNotHeld", err)
		}
		if l.Token() != 0 || l.Node() != "" {
			t.Errorf("Token %d, Node %q, want 0 and \"\"", l.Token(), l.Node())
		}
		select {
		case <-l.Done():
		default:
			t.Error("Done is not closed")
		}
		if l.Context().Err() == nil {
			t.Error("Context is not cancelled")
		}
		if err := l.Release(); !errors.Is(err, ErrNotHeld) {
			t.Errorf("Release = %v, want ErrNotHeld", err)
		}
	}
}

// A client listener that closes a latch when the connection drops, and a latch listener that closes
// the client when leadership ends: neither Close may wait for the other's listener goroutine. The
// same with a selector whose leadership function closes the client.
func TestCloseFromEachOthersCallbacksReturns(t *testing.T) {
	for _, recipe := range []string{"latch", "selector"} {
		t.Run(recipe, func(t *testing.T) {
			c, p := newProxiedClient(t)
			ctx := testContext(t, 20*time.Second)
			path := testPath(t, recipe)
			recipeClosed := make(chan error, 1)
			recipeClosing := make(chan struct{})
			clientClosed := make(chan struct{})
			// The recipe's callback closes the client once the recipe's Close has begun in the
			// client's listener: the interleaving in which each Close could wait for the other.
			closeClient := func() {
				select {
				case <-recipeClosing:
				case <-time.After(5 * time.Second):
				}
				c.Close()
				close(clientClosed)
			}
			var closeRecipe func() error
			leading := make(chan struct{})
			switch recipe {
			case "latch":
				latch := NewLeaderLatch(c, path, WithCloseMode(NotifyLeaderOnClose))
				latch.AddListener(LeaderLatchListenerFuncs{
					OnIsLeader:  func() { close(leading) },
					OnNotLeader: closeClient,
				})
				if err := latch.Start(); err != nil {
					t.Fatal(err)
				}
				closeRecipe = latch.Close
			case "selector":
				sel := NewLeaderSelector(c, path, func(ctx context.Context) error {
					close(leading)
					<-ctx.Done()
					closeClient()
					return nil
				})
				if err := sel.Start(); err != nil {
					t.Fatal(err)
				}
				closeRecipe = sel.Close
			}
			c.Listen(func(s framework.State) {
				if s == framework.Suspended {
					close(recipeClosing)
					recipeClosed <- closeRecipe()
				}
			})
			select {
			case <-leading:
			case <-ctx.Done():
				t.Fatal("never led")
			}
			p.CloseConnections()
			for what, ch := range map[string]<-chan struct{}{
				"the recipe's Close (in the client's listener)": func() <-chan struct{} {
					done := make(chan struct{})
					go func() { <-recipeClosed; close(done) }()
					return done
				}(),
				"the client's Close (in the recipe's callback)": clientClosed,
			} {
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
					t.Fatalf("%s has not returned 10s after the connection dropped", what)
				}
			}
		})
	}
}
