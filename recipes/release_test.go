package recipes

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit/zkenv"
	"github.com/gocurator/curator/zktest"
)

// exclusiveLock is a lock recipe that excludes every other holder, with TryAcquire.
type exclusiveLock interface {
	Acquire(ctx context.Context) (*Lease, error)
	TryAcquire(ctx context.Context) (*Lease, error)
}

// exclusiveLocks are the recipes whose holds exclude each other, by name.
var exclusiveLocks = []struct {
	name string
	new  func(c *framework.Client, path string) exclusiveLock
}{
	{"InterProcessMutex", func(c *framework.Client, path string) exclusiveLock { return NewInterProcessMutex(c, path) }},
	{"SemaphoreMutex", func(c *framework.Client, path string) exclusiveLock { return NewSemaphoreMutex(c, path) }},
	{"WriteLock", func(c *framework.Client, path string) exclusiveLock { return NewReadWriteLock(c, path).WriteLock() }},
}

// releaseForms are the two ways to release a lease: without and with waiting for the delete's reply.
var releaseForms = []struct {
	name string
	wait bool
}{{"Release", false}, {"ReleaseWait", true}}

// eachReleaseForm runs test as a parallel subtest of t (itself made parallel) for each of
// releaseForms, named by the form; wait tells test whether to release with ReleaseWait.
func eachReleaseForm(t *testing.T, test func(t *testing.T, wait bool)) {
	t.Parallel()
	for _, form := range releaseForms {
		t.Run(form.name, func(t *testing.T) {
			t.Parallel()
			test(t, form.wait)
		})
	}
}

// TestReleaseThenTryAcquireAtOnce: Release returns without the delete's reply, but the client's next
// requests go behind the delete, so a TryAcquire right after it, from the same client, is granted:
// its listing sees the released node gone. Many rounds, so that a release whose delete could be
// overtaken would be caught.
func TestReleaseThenTryAcquireAtOnce(t *testing.T) {
	t.Parallel()
	for _, lk := range exclusiveLocks {
		t.Run(lk.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t)
			ctx := testContext(t, 60*time.Second)
			path := testPath(t, "lock")
			m := lk.new(c, path)
			l := acquired(t, ctx, m.Acquire)
			for i := range 100 {
				old := l.Node()
				if err := l.Release(); err != nil {
					t.Fatalf("round %d: Release: %v", i, err)
				}
				var err error
				if l, err = m.TryAcquire(ctx); err != nil {
					t.Fatalf("round %d: TryAcquire right after Release: %v", i, err)
				}
				if l.Node() == old {
					t.Fatalf("round %d: granted the released node %s again", i, old)
				}
			}
			last := l.Node()
			if err := l.ReleaseWait(ctx); err != nil {
				t.Fatal(err)
			}
			if ok, _, err := newClient(t).Exists(ctx, last); err != nil || ok {
				t.Errorf("another client's Exists(%s) after ReleaseWait = %v, %v; want false, nil", last, ok, err)
			}
		})
	}
}

// TestReleaseDoesNotWaitForReply holds the reply to the release's delete at the proxy: Release
// returns, and the lease has ended, while the reply is held; the server has applied the delete, so
// another client is granted the lock meanwhile. ReleaseWait waits for the reply: with a context
// shorter than the hold it returns the context's error, and the node is gone all the same.
func TestReleaseDoesNotWaitForReply(t *testing.T) {
	eachReleaseForm(t, func(t *testing.T, wait bool) {
		a, proxy := newProxiedClient(t)
		b := newClient(t)
		ctx := testContext(t, 60*time.Second)
		path := testPath(t, "lock")
		l := acquired(t, ctx, NewInterProcessMutex(a, path).Acquire)
		const hold = 3 * time.Second
		held := proxy.HoldNextReply(zktest.OpDelete, hold, zktest.Deliver)
		if wait {
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			if err := l.ReleaseWait(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("ReleaseWait with a context shorter than the held reply = %v, want DeadlineExceeded", err)
			}
		} else {
			// Release makes no round trip: it is back long before the held reply (a release
			// that waited for the reply, even for a bounded while, would take far longer).
			start := time.Now()
			mustRelease(t, l)
			if took := time.Since(start); took > 150*time.Millisecond {
				t.Fatalf("Release took %v while the delete's reply was held for %v", took, hold)
			}
		}
		if err := l.Err(); !errors.Is(err, ErrReleased) {
			t.Fatalf("Err() after Release = %v, want ErrReleased", err)
		}
		returnsWithin(t, "another client's Acquire while the delete's reply is held", hold, func() {
			lb, err := NewInterProcessMutex(b, path).Acquire(ctx)
			if err != nil {
				t.Errorf("Acquire by another client: %v", err)
				return
			}
			lb.Release()
		})
		select {
		case <-held:
		case <-ctx.Done():
			t.Fatal("the delete's reply was never held")
		}
	})
}

// TestReleaseLostDeleteLeavesNoNode cuts the release's delete: the connection drops with its reply
// (the server applied it), or the delete is swallowed by a silent connection (it never reached the
// server). Release returns at once either way; once the client is connected again no node is left,
// and ReleaseWait returns nil once that is confirmed.
func TestReleaseLostDeleteLeavesNoNode(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		wait bool
		cut  func(p *zktest.Proxy) (restore func())
	}{
		{"reply dropped", false, func(p *zktest.Proxy) func() {
			p.HoldNextReply(zktest.OpDelete, 0, zktest.Drop)
			return func() {}
		}},
		{"reply dropped/wait", true, func(p *zktest.Proxy) func() {
			p.HoldNextReply(zktest.OpDelete, 0, zktest.Drop)
			return func() {}
		}},
		{"swallowed", false, func(p *zktest.Proxy) func() {
			p.Blackhole(true)
			return func() { p.Blackhole(false); p.CloseConnections() }
		}},
		{"swallowed/wait", true, func(p *zktest.Proxy) func() {
			p.Blackhole(true)
			return func() { p.Blackhole(false); p.CloseConnections() }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, proxy := newProxiedClient(t, framework.WithErrorPolicy(framework.SessionErrorPolicy),
				framework.WithSessionTimeout(10*time.Second))
			observer := newClient(t)
			ctx := testContext(t, 60*time.Second)
			path := testPath(t, "lock")
			l := acquired(t, ctx, NewInterProcessMutex(a, path).Acquire)
			node := l.Node()
			restore := tc.cut(proxy)
			var waited chan error
			returnsWithin(t, "Release", time.Second, func() {
				if tc.wait {
					waited = make(chan error, 1)
					go func() { waited <- l.ReleaseWait(ctx) }()
					return
				}
				if err := l.Release(); err != nil {
					t.Errorf("Release: %v", err)
				}
			})
			restore()
			if !zkenv.WaitGone(t, ctx, observer, node, time.Minute) { // ctx ends first
				t.Fatalf("node %s still there after the connection came back", node)
			}
			if tc.wait {
				if err := <-waited; err != nil {
					t.Fatalf("ReleaseWait = %v, want nil", err)
				}
				if n := a.PendingDeletes(); n != 0 {
					t.Errorf("PendingDeletes() = %d after ReleaseWait, want 0", n)
				}
			}
			eventually(t, 20*time.Second, "no pending deletes", func() bool { return a.PendingDeletes() == 0 })
			if names := children(t, observer, path); len(names) != 0 {
				t.Errorf("nodes left: %v", names)
			}
		})
	}
}

// TestReleaseWaitReturnsServerError: the lock's parent lets the client create nodes but not delete
// them. ReleaseWait returns the server's refusal (the lease is released all the same); Release
// returns nil and the refusal is logged at Error level.
func TestReleaseWaitReturnsServerError(t *testing.T) {
	eachReleaseForm(t, func(t *testing.T, wait bool) {
		refused := make(chan zapcore.Entry, 4)
		log := zap.New(zapcore.RegisterHooks(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.DebugLevel), func(e zapcore.Entry) error {
			if e.Level == zapcore.ErrorLevel {
				select {
				case refused <- e:
				default:
				}
			}
			return nil
		}))
		c := newClient(t, framework.WithLogger(log))
		ctx := testContext(t, 30*time.Second)
		path := testPath(t, "lock")
		noDelete := zk.WorldACL(zk.PermAll &^ zk.PermDelete)
		if _, err := c.Create(ctx, path, nil, framework.Persistent, framework.WithParents(), framework.WithNodeACL(noDelete)); err != nil {
			t.Fatal(err)
		}
		l := acquired(t, ctx, NewInterProcessMutex(c, path).Acquire)
		if wait {
			if err := l.ReleaseWait(ctx); !errors.Is(err, zk.ErrNoAuth) {
				t.Fatalf("ReleaseWait = %v, want zk.ErrNoAuth", err)
			}
		} else if err := l.Release(); err != nil {
			t.Fatalf("Release = %v, want nil (the refusal is logged)", err)
		}
		if err := l.Err(); !errors.Is(err, ErrReleased) {
			t.Errorf("Err() = %v, want ErrReleased", err)
		}
		select {
		case e := <-refused:
			t.Logf("logged: %s", e.Message)
		case <-ctx.Done():
			t.Fatal("the refused delete was not logged at Error level")
		}
	})
}

// TestReleaseWaitInput: a nil context is refused, and the lease stays held.
func TestReleaseWaitInput(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := testContext(t, 30*time.Second)
	l := acquired(t, ctx, NewInterProcessMutex(c, testPath(t, "lock")).Acquire)
	if err := l.ReleaseWait(nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("ReleaseWait(nil) = %v, want ErrInvalidArgument", err)
	}
	if err := l.Err(); err != nil {
		t.Errorf("Err() after a refused ReleaseWait = %v, want nil (still held)", err)
	}
	var none *Lease
	if err := none.ReleaseWait(ctx); !errors.Is(err, ErrNotHeld) {
		t.Errorf("nil lease ReleaseWait = %v, want ErrNotHeld", err)
	}
	if err := l.ReleaseWait(ctx); err != nil {
		t.Fatal(err)
	}
}
