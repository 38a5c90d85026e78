package recipes

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gocurator/curator/framework"
)

// The credential of the tests' lock holders, and the ACL the server makes of zk.AuthACL for a
// session holding it.
const (
	aclUser     = "locker"
	aclPassword = "locker-s3cret"
)

var lockerAll = zk.DigestACL(zk.PermAll, aclUser, aclPassword)

// securedOpts are the options of a client that holds the credential and makes every node, lock
// paths included, open to that credential alone.
func securedOpts() []framework.Option {
	return []framework.Option{
		framework.WithAuth("digest", []byte(aclUser+":"+aclPassword)),
		framework.WithACL(zk.AuthACL(zk.PermAll)),
	}
}

// aclOf returns the ACL of the node at path, read by a go-zookeeper connection of its own that
// holds the credential (the server shows an ACL only to who may read the node).
func aclOf(t testing.TB, path string) []zk.ACL {
	t.Helper()
	raw, _, err := zk.Connect(testServer.Servers(), 4*time.Second, zk.WithLogger(zap.NewStdLog(zap.NewNop())))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.AddAuth("digest", []byte(aclUser+":"+aclPassword)); err != nil {
		t.Fatal(err)
	}
	acl, _, err := raw.GetACL(path)
	if err != nil {
		t.Fatalf("get ACL of %s: %v", path, err)
	}
	return acl
}

// aclRecipe takes one of a recipe's holds on a path: a lock, a lease, a leadership.
type aclRecipe struct {
	name string
	// take takes the hold, waiting for it, and returns its node and the release.
	take func(ctx context.Context, c *framework.Client, path string) (node string, release func() error, err error)
	// shared: a second holder with the credential holds at once beside the first.
	shared bool
	// background: the recipe makes its node in the background (a latch), so a stranger's
	// failure shows in the client's log, not in an error returned.
	background bool
}

func lockTaker(newLock func(c *framework.Client, path string) Locker) func(context.Context, *framework.Client, string) (string, func() error, error) {
	return func(ctx context.Context, c *framework.Client, path string) (string, func() error, error) {
		l, err := newLock(c, path).Acquire(ctx)
		if err != nil {
			return "", nil, err
		}
		return l.Node(), l.Release, nil
	}
}

var aclRecipes = []aclRecipe{
	{name: "InterProcessMutex", take: lockTaker(func(c *framework.Client, p string) Locker { return NewInterProcessMutex(c, p) })},
	{name: "Semaphore", take: func(ctx context.Context, c *framework.Client, path string) (string, func() error, error) {
		leases, err := NewSemaphore(c, path, 1).Acquire(ctx, 1)
		if err != nil {
			return "", nil, err
		}
		return leases[0].Node(), leases[0].Release, nil
	}},
	{name: "write lock", take: lockTaker(func(c *framework.Client, p string) Locker { return NewReadWriteLock(c, p).WriteLock() })},
	{name: "read lock", shared: true, take: lockTaker(func(c *framework.Client, p string) Locker { return NewReadWriteLock(c, p).ReadLock() })},
	{name: "LeaderLatch", background: true, take: func(ctx context.Context, c *framework.Client, path string) (string, func() error, error) {
		l := NewLeaderLatch(c, path)
		if err := l.Start(); err != nil {
			return "", nil, err
		}
		if err := l.Await(ctx); err != nil {
			l.Close()
			return "", nil, err
		}
		return l.OurPath(), l.Close, nil
	}},
}

// loggedErrors returns the errors that the entries logged so far carry.
func loggedErrors(logs *observer.ObservedLogs) []error {
	var errs []error
	for _, e := range logs.All() {
		for _, f := range e.Context {
			if err, ok := f.Interface.(error); ok && f.Key == "error" {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// TestACLKeepsStrangersOut holds each recipe with a client that has the credential and makes its
// nodes with zk.AuthACL(zk.PermAll), parents included. A client without the credential cannot
// take the recipe (its Acquire fails at once with an error wrapping zk.ErrNoAuth; a latch logs
// that error and makes no node), cannot queue a node of its own in the lock path and cannot
// delete the holder's node; the holder holds on. A client with the same credential takes its
// turn as usual: it queues, and holds once the holder lets go (at once, for a read lock).
func TestACLKeepsStrangersOut(t *testing.T) {
	t.Parallel()
	for _, r := range aclRecipes {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			path := testPath(t, "lock")
			holder := newClient(t, securedOpts()...)
			core, logs := observer.New(zap.WarnLevel)
			stranger := newClient(t, framework.WithLogger(zap.New(core)))
			friend := newClient(t, securedOpts()...)

			node, release, err := r.take(testContext(t, 10*time.Second), holder, path)
			if err != nil {
				t.Fatal(err)
			}
			if got := aclOf(t, node); !slices.Equal(got, lockerAll) {
				t.Errorf("ACL of the holder's node = %v, want %v", got, lockerAll)
			}
			queue, _ := framework.SplitPath(node)
			for p := queue; p != testServer.Root() && p != "/"; p, _ = framework.SplitPath(p) {
				if got := aclOf(t, p); !slices.Equal(got, lockerAll) {
					t.Errorf("ACL of the parent %s = %v, want %v", p, got, lockerAll)
				}
			}

			// The stranger cannot take the recipe, and finds out at once.
			ctx := testContext(t, 30*time.Second)
			if r.background {
				l := NewLeaderLatch(stranger, path)
				if err := l.Start(); err != nil {
					t.Fatal(err)
				}
				eventually(t, 10*time.Second, "the stranger's latch to log zk.ErrNoAuth", func() bool {
					return slices.ContainsFunc(loggedErrors(logs), func(err error) bool { return errors.Is(err, zk.ErrNoAuth) })
				})
				if l.HasLeadership() || l.OurPath() != "" {
					t.Errorf("the stranger's latch leads %v with node %q, want no leadership and no node", l.HasLeadership(), l.OurPath())
				}
				if err := l.Close(); err != nil {
					t.Error(err)
				}
			} else {
				start := time.Now()
				_, _, err := r.take(ctx, stranger, path)
				if !errors.Is(err, zk.ErrNoAuth) {
					t.Fatalf("the stranger's acquire = %v, want zk.ErrNoAuth", err)
				}
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("the stranger's acquire failed after %v, want at once", took)
				}
			}
			// Nor jump the queue, nor remove the holder.
			if _, err := stranger.Create(ctx, framework.JoinPath(queue, "lock-"), nil, framework.EphemeralSequential); !errors.Is(err, zk.ErrNoAuth) {
				t.Errorf("the stranger's create in %s = %v, want zk.ErrNoAuth", queue, err)
			}
			if err := stranger.Delete(ctx, node, -1); !errors.Is(err, zk.ErrNoAuth) {
				t.Errorf("the stranger's delete of %s = %v, want zk.ErrNoAuth", node, err)
			}
			if err := stranger.DeleteGuaranteed(ctx, node); !errors.Is(err, zk.ErrNoAuth) {
				t.Errorf("the stranger's guaranteed delete of %s = %v, want zk.ErrNoAuth", node, err)
			}
			if names := children(t, holder, queue); len(names) != 1 {
				t.Errorf("the queue %s holds %v, want the holder's node alone", queue, names)
			}

			// The friend takes its turn.
			type result struct {
				node    string
				release func() error
				err     error
			}
			taken := make(chan result, 1)
			go func() {
				n, rel, err := r.take(ctx, friend, path)
				taken <- result{n, rel, err}
			}()
			var got result
			if !r.shared {
				// It queues: its node appears behind the holder's, and it waits.
				eventually(t, 10*time.Second, "the friend's node in the queue", func() bool { return len(children(t, holder, queue)) == 2 })
				select {
				case got = <-taken:
					t.Fatalf("the friend took the hold while the holder held it: %v", got.err)
				default:
				}
				if err := release(); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case got = <-taken:
			case <-time.After(20 * time.Second):
				t.Fatal("the friend did not take the hold")
			}
			if got.err != nil {
				t.Fatalf("the friend's acquire: %v", got.err)
			}
			if acl := aclOf(t, got.node); !slices.Equal(acl, lockerAll) {
				t.Errorf("ACL of the friend's node = %v, want %v", acl, lockerAll)
			}
			if err := got.release(); err != nil {
				t.Error(err)
			}
			if r.shared {
				if err := release(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// opSetAuth is go-zookeeper's opcode for a credential (setAuth).
const opSetAuth = 100

// authCutter dials one address and, while armed, cuts the connection in place of sending the next
// credential, as a connection lost under it.
type authCutter struct {
	addr  string
	armed atomic.Bool
}

func (a *authCutter) dial(network, _ string, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout(network, a.addr, timeout)
	if err != nil {
		return nil, err
	}
	return &cutConn{Conn: conn, a: a}, nil
}

type cutConn struct {
	net.Conn
	a     *authCutter
	wrote atomic.Bool // the connect request, which has no opcode, is written
}

// Write looks at each request: go-zookeeper writes each whole, in one Write.
func (c *cutConn) Write(b []byte) (int, error) {
	if c.wrote.Swap(true) && len(b) >= 12 && int32(binary.BigEndian.Uint32(b[8:12])) == opSetAuth && c.a.armed.CompareAndSwap(true, false) {
		c.Conn.Close()
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// TestACLAcrossSessionExpiry has the server expire the session of a holder that has the credential,
// with the first credential sent after the expiry lost on the way. The client's new session sends
// its credential again before the recipe makes anything in it: the hold is taken again (a latch
// takes it again by itself) with no error on the way, its node carries the credential's ACL, and a
// client without the credential still cannot remove it.
func TestACLAcrossSessionExpiry(t *testing.T) {
	t.Parallel()
	for _, r := range []aclRecipe{aclRecipes[0], aclRecipes[4]} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			path := testPath(t, "lock")
			p := testServer.Proxy(t)
			cutter := &authCutter{addr: p.Addr()}
			core, logs := observer.New(zap.WarnLevel)
			holder := connect(t, p.Addr(), append(securedOpts(), framework.WithDialer(cutter.dial), framework.WithLogger(zap.New(core)))...)
			stranger := newClient(t)
			reconnected := make(chan struct{}, 1)
			holder.Listen(func(s framework.State) {
				if s == framework.Reconnected {
					select {
					case reconnected <- struct{}{}:
					default:
					}
				}
			})

			var latch *LeaderLatch
			if r.background {
				latch = NewLeaderLatch(holder, path)
				if err := latch.Start(); err != nil {
					t.Fatal(err)
				}
				defer latch.Close()
				if err := latch.Await(testContext(t, 10*time.Second)); err != nil {
					t.Fatal(err)
				}
			} else if _, _, err := r.take(testContext(t, 10*time.Second), holder, path); err != nil {
				t.Fatal(err)
			}
			old := holder.SessionID()
			cutter.armed.Store(true)
			if err := p.ExpireSession(testContext(t, 30*time.Second), testServer, old); err != nil {
				t.Fatal(err)
			}
			within(t, reconnected, 20*time.Second, "the holder did not reconnect after the expiry")
			if cutter.armed.Load() {
				t.Error("no credential was sent after the expiry")
			}

			var node string
			ctx := testContext(t, 20*time.Second)
			if r.background {
				if err := latch.Await(ctx); err != nil {
					t.Fatalf("the latch after the expiry: %v", err)
				}
				node = latch.OurPath()
			} else {
				n, release, err := r.take(ctx, holder, path)
				if err != nil {
					t.Fatalf("acquire after the expiry: %v", err)
				}
				defer release()
				node = n
			}
			if sid := holder.SessionID(); sid == old || sid == 0 {
				t.Fatalf("session %x after the expiry, want a new one (old %x)", sid, old)
			}
			if got := aclOf(t, node); !slices.Equal(got, lockerAll) {
				t.Errorf("ACL of the node made after the expiry = %v, want %v", got, lockerAll)
			}
			if err := stranger.Delete(ctx, node, -1); !errors.Is(err, zk.ErrNoAuth) {
				t.Errorf("the stranger's delete of %s = %v, want zk.ErrNoAuth", node, err)
			}
			for _, err := range loggedErrors(logs) {
				if errors.Is(err, zk.ErrNoAuth) || errors.Is(err, zk.ErrInvalidACL) {
					t.Errorf("logged on the way: %v", err)
				}
			}
		})
	}
}
