// Package zkenv is the set-up that the tests of every package repeat and that needs no framework:
// a TestMain that runs the tests with a shared ZooKeeper server and then looks for leaked
// goroutines, a path of each test's own, a context that ends with the test, and waits that poll a
// condition or watch a channel. It is imported only by tests.
//
// framework's own tests (package framework) use it, so it must never import framework or a
// package that does; the helpers that need a framework client are in the parent package testkit.
package zkenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/gocurator/curator/zktest"
)

// ErrNil is what a helper's error wraps when it is given a nil argument it needs.
var ErrNil = errors.New("zkenv: nil argument")

// TestingM is what Main runs: *testing.M is one.
type TestingM interface {
	Run() int
}

// A Step prepares something that a package's tests need before they run (a server, a binary).
// The undo it returns, if not nil, is called after the tests ran; an error it returns is
// reported and fails the run. If the step itself fails, the tests do not run.
type Step func() (undo func() error, err error)

// Main runs a package's tests as Run does and exits with Run's code. A TestMain is one call:
//
//	func TestMain(m *testing.M) { zkenv.Main(m, zkenv.Server(&testServer)) }
func Main(m TestingM, steps ...Step) {
	os.Exit(Run(m, steps...))
}

// Run does the steps in order, runs m's tests, undoes the steps done in the reverse order and,
// if everything so far went well, looks for goroutines left running (goleak.Find). It returns
// the exit code: 1 if a step failed (the tests then do not run, and the steps done before it are
// still undone), if an undo failed or if goroutines leaked; m's code otherwise. It writes every
// failure to os.Stderr. A nil step (or a nil m) is a failed step, named by its position.
func Run(m TestingM, steps ...Step) int {
	return run(m, steps, os.Stderr, func() error { return goleak.Find() })
}

// run is Run with the report's writer and the leak check given.
func run(m TestingM, steps []Step, stderr io.Writer, leaks func() error) int {
	var undos []func() error
	code := func() int {
		if m == nil {
			fmt.Fprintf(stderr, "zkenv.Run: %v: no tests (m)\n", ErrNil)
			return 1
		}
		for i, step := range steps {
			if step == nil {
				fmt.Fprintf(stderr, "zkenv.Run: %v: step %d of %d\n", ErrNil, i+1, len(steps))
				return 1
			}
			undo, err := step()
			if err != nil {
				fmt.Fprintln(stderr, err)
				return 1
			}
			if undo != nil {
				undos = append(undos, undo)
			}
		}
		return m.Run()
	}()
	for i := len(undos) - 1; i >= 0; i-- {
		if err := undos[i](); err != nil {
			fmt.Fprintln(stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	if code == 0 {
		if err := leaks(); err != nil {
			fmt.Fprintln(stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

// Server is a Step that starts a ZooKeeper server with zktest.StartServer (a server of the tests'
// own, or a fresh root on the ensemble that ZK_SERVERS names), puts it in *dst for the tests, and
// closes it after them. A nil dst is an error wrapping ErrNil.
func Server(dst **zktest.Server, opts ...zktest.Option) Step {
	return func() (func() error, error) {
		if dst == nil {
			return nil, fmt.Errorf("zkenv.Server: %w: the server's destination", ErrNil)
		}
		srv, err := zktest.StartServer(opts...)
		if err != nil {
			return nil, fmt.Errorf("the tests need a ZooKeeper server: %w", err)
		}
		*dst = srv
		return func() error {
			if err := srv.Close(); err != nil {
				return fmt.Errorf("stopping ZooKeeper: %w", err)
			}
			return nil
		}, nil
	}
}

// LazyServer is a ZooKeeper server that starts on its first use, for a package most of whose
// tests need none. Its zero value is ready; Step closes it after the tests if it was started.
type LazyServer struct {
	// Options are given to zktest.StartServer.
	Options []zktest.Option

	once sync.Once
	srv  *zktest.Server
	err  error
}

// Get returns the server, starting it on the first call, and fails t if it could not start (then
// and on every later call).
func (l *LazyServer) Get(t testing.TB) *zktest.Server {
	t.Helper()
	l.once.Do(func() { l.srv, l.err = zktest.StartServer(l.Options...) })
	if l.err != nil {
		t.Fatalf("these tests need a ZooKeeper server: %v", l.err)
	}
	return l.srv
}

// Step is a Step that does nothing before the tests and closes the server after them, if Get
// started it.
func (l *LazyServer) Step() Step {
	return func() (func() error, error) {
		return func() error {
			if l.srv == nil {
				return nil
			}
			if err := l.srv.Close(); err != nil {
				return fmt.Errorf("stopping ZooKeeper: %w", err)
			}
			return nil
		}, nil
	}
}

// pathSeq numbers the paths Path returns, so that no two are alike.
var pathSeq atomic.Int64

// Path returns a path of t's own: root, then one element made of t's name ("/" made "-" and " "
// made "_") and a number no other call in the process returns, then names as further elements.
// For example Path(t, "/r", "lock") in TestX/a is "/r/TestX-a-7/lock".
func Path(t testing.TB, root string, names ...string) string {
	t.Helper()
	test := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	p := fmt.Sprintf("%s/%s-%d", root, test, pathSeq.Add(1))
	for _, n := range names {
		p += "/" + n
	}
	return p
}

// Context returns a context that ends after d, or when t ends if that is sooner.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Poll calls cond every interval until it returns true, and reports whether it did before d
// passed. cond is called at least once; a nil cond is never true.
func Poll(d, every time.Duration, cond func() bool) bool {
	if cond == nil {
		return false
	}
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

// Eventually is Poll that fails t ("timed out after d waiting for what") if cond did not become
// true within d. A nil cond fails t at once, naming what.
func Eventually(t testing.TB, d, every time.Duration, what string, cond func() bool) {
	t.Helper()
	if cond == nil {
		t.Fatalf("zkenv.Eventually: %v: no condition for %s", ErrNil, what)
	}
	if !Poll(d, every, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// IsClosed reports whether ch is closed now (a nil channel never is).
func IsClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// WaitClosed fails t ("what not closed after d") unless ch is closed within d. A nil channel is
// never closed.
func WaitClosed(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("%s not closed after %v", what, d)
	}
}

// Await checks cond at once and again each time changed receives, and returns once cond is true.
// If cond is not true within d it fails t with the message failure returns (checked then, so it
// can say what was seen). A nil changed never receives; a nil cond fails t at once.
func Await(t testing.TB, d time.Duration, changed <-chan struct{}, cond func() bool, failure func() string) {
	t.Helper()
	if cond == nil {
		t.Fatalf("zkenv.Await: %v: no condition", ErrNil)
	}
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-changed:
		case <-deadline.C:
			msg := fmt.Sprintf("condition not met within %v", d)
			if failure != nil {
				msg = failure()
			}
			t.Fatal(msg)
		}
	}
}

// Starter is a client that StartClient can start: *framework.Client is one.
type Starter interface {
	Start() error
	Close() error
	BlockUntilConnected(ctx context.Context) error
}

// StartClient starts c, closes it when t ends, and waits up to d for it to connect. It fails t if
// c is nil, if Start fails, or if c is not connected within d.
func StartClient(t testing.TB, c Starter, d time.Duration) {
	t.Helper()
	if c == nil {
		t.Fatalf("zkenv.StartClient: %v: no client", ErrNil)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := c.BlockUntilConnected(ctx); err != nil {
		t.Fatal(err)
	}
}

// ExistsWatcher is a client that WaitGone can watch a node with: *framework.Client is one.
type ExistsWatcher interface {
	ExistsW(ctx context.Context, path string) (bool, *zk.Stat, <-chan zk.Event, error)
}

// WaitGone sets an exists watch on path through c and, if the node exists, waits for the watch to
// fire (the node's deletion), for at most d or until ctx ends. It reports whether the node is
// gone: false only if the watch did not fire in time. It fails t at once (Fatal) if ExistsW
// fails or c is nil.
func WaitGone(t testing.TB, ctx context.Context, c ExistsWatcher, path string, d time.Duration) bool {
	t.Helper()
	if c == nil {
		t.Fatalf("zkenv.WaitGone: %v: no client to watch %s with", ErrNil, path)
	}
	ok, _, gone, err := c.ExistsW(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-gone:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

// Serve accepts connections on ln until t ends, and runs handle on a goroutine of its own for
// each, with the connection. When t ends it closes ln and every connection it accepted, and waits
// for the accept loop and every handle to return: a handle must return once its connection is
// closed. It returns ln's address. A nil ln or handle fails t at once (Fatal).
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) string {
	t.Helper()
	if ln == nil || handle == nil {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("zkenv.Serve: %v: listener %v, handle given %v", ErrNil, ln, handle != nil)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		open   []net.Conn
		closed bool // t has ended: a connection accepted now is closed at once
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			open = append(open, c)
			wg.Go(func() { handle(c) })
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}
