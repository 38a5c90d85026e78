package zkenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// fakeM is a TestingM that logs its run and returns code.
type fakeM struct {
	log  *[]string
	code int
}

func (m fakeM) Run() int {
	*m.log = append(*m.log, "run")
	return m.code
}

// step returns a Step named name that logs what it does; it fails if fail, and its undo fails if
// undoFail.
func step(log *[]string, name string, fail, undoFail bool) Step {
	return func() (func() error, error) {
		if fail {
			*log = append(*log, "!"+name)
			return nil, fmt.Errorf("step %s failed", name)
		}
		*log = append(*log, name)
		return func() error {
			*log = append(*log, "~"+name)
			if undoFail {
				return fmt.Errorf("undo %s failed", name)
			}
			return nil
		}, nil
	}
}

func TestRun(t *testing.T) {
	type stepSpec struct {
		name           string
		fail, undoFail bool
		nil            bool
	}
	tests := []struct {
		name     string
		noM      bool
		code     int // what the tests return
		steps    []stepSpec
		leak     bool
		want     int
		wantLog  string
		wantErrs []string // in the report
	}{
		{name: "no steps", wantLog: "run", want: 0},
		{name: "tests fail", code: 3, leak: true, wantLog: "run", want: 3},
		{name: "undone in reverse", steps: []stepSpec{{name: "a"}, {name: "b"}}, wantLog: "a b run ~b ~a", want: 0},
		{name: "step fails", steps: []stepSpec{{name: "a"}, {name: "b", fail: true}, {name: "c"}},
			wantLog: "a !b ~a", want: 1, wantErrs: []string{"step b failed"}},
		{name: "undo fails", steps: []stepSpec{{name: "a", undoFail: true}, {name: "b"}},
			wantLog: "a b run ~b ~a", want: 1, wantErrs: []string{"undo a failed"}},
		{name: "undo fails after failed tests", code: 2, steps: []stepSpec{{name: "a", undoFail: true}},
			wantLog: "a run ~a", want: 2, wantErrs: []string{"undo a failed"}},
		{name: "leak", leak: true, wantLog: "run", want: 1, wantErrs: []string{"goleak: a goroutine"}},
		{name: "nil step", steps: []stepSpec{{name: "a"}, {nil: true}},
			wantLog: "a ~a", want: 1, wantErrs: []string{"step 2 of 2"}},
		{name: "nil m", noM: true, steps: []stepSpec{{name: "a"}}, wantLog: "", want: 1, wantErrs: []string{"no tests (m)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			var m TestingM = fakeM{log: &log, code: tt.code}
			if tt.noM {
				m = nil
			}
			var steps []Step
			for _, s := range tt.steps {
				if s.nil {
					steps = append(steps, nil)
					continue
				}
				steps = append(steps, step(&log, s.name, s.fail, s.undoFail))
			}
			var report strings.Builder
			leaks := func() error {
				if tt.leak {
					return errors.New("a goroutine")
				}
				return nil
			}
			got := run(m, steps, &report, leaks)
			if got != tt.want || strings.Join(log, " ") != tt.wantLog {
				t.Errorf("run = %d, did %q; want %d, %q", got, strings.Join(log, " "), tt.want, tt.wantLog)
			}
			for _, e := range tt.wantErrs {
				if !strings.Contains(report.String(), e) {
					t.Errorf("report %q does not say %q", report.String(), e)
				}
			}
			if len(tt.wantErrs) == 0 && report.Len() > 0 {
				t.Errorf("report %q, want none", report.String())
			}
		})
	}
}

func TestNilArguments(t *testing.T) {
	if _, err := Server(nil)(); !errors.Is(err, ErrNil) || !strings.Contains(err.Error(), "destination") {
		t.Errorf("Server(nil): %v, want an error wrapping ErrNil naming the destination", err)
	}
	var l LazyServer
	undo, err := l.Step()()
	if err != nil || undo == nil {
		t.Fatalf("LazyServer.Step: undo %t, %v; want an undo, no error", undo != nil, err)
	}
	if err := undo(); err != nil {
		t.Errorf("closing a LazyServer never started: %v", err)
	}
	if Poll(time.Millisecond, time.Millisecond, nil) {
		t.Error("Poll with a nil condition: true")
	}
	if IsClosed(nil) {
		t.Error("IsClosed(nil): true")
	}
}

func TestPath(t *testing.T) {
	tests := []struct {
		root  string
		names []string
		re    string // the path with the number made "N"
	}{
		{"/r", nil, "/r/TestPath-N"},
		{"/r", []string{"lock"}, "/r/TestPath-N/lock"},
		{"/r/s", []string{"a", "b"}, "/r/s/TestPath-N/a/b"},
		{"", nil, "/TestPath-N"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		got := Path(t, tt.root, tt.names...)
		if seen[got] {
			t.Errorf("Path(%q, %q) = %q again", tt.root, tt.names, got)
		}
		seen[got] = true
		if shape := numberless(got); shape != tt.re {
			t.Errorf("Path(%q, %q) = %q, want the shape %q", tt.root, tt.names, got, tt.re)
		}
	}
	t.Run("sub test/with space", func(t *testing.T) {
		if got := numberless(Path(t, "/r")); got != "/r/TestPath-sub_test-with_space-N" {
			t.Errorf("Path in a subtest = %q, want one element named after the test", got)
		}
	})
}

// numberless replaces the number after the last "-" of Path's test element with N.
func numberless(p string) string {
	i := strings.Index(p, "TestPath")
	j := strings.Index(p[i:], "/")
	elem := p[i:]
	if j >= 0 {
		elem = p[i : i+j]
	}
	k := strings.LastIndex(elem, "-")
	return p[:i] + elem[:k] + "-N" + p[i+len(elem):]
}

func TestPoll(t *testing.T) {
	tests := []struct {
		name  string
		trues int // the call that first returns true; 0: never
		want  bool
	}{
		{"at once", 1, true},
		{"on the third call", 3, true},
		{"never", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			got := Poll(50*time.Millisecond, time.Millisecond, func() bool {
				calls++
				return tt.trues > 0 && calls >= tt.trues
			})
			if got != tt.want || tt.want && calls != tt.trues {
				t.Errorf("Poll = %v after %d calls, want %v after %d", got, calls, tt.want, tt.trues)
			}
		})
	}
}

// fakeTB is a testing.TB whose Fatal and Fatalf record the message and end the goroutine, as the
// real ones do; run calls a helper with it.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	cleanups []func()
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func (f *fakeTB) Fatal(args ...any) { f.Fatalf("%s", fmt.Sprint(args...)) }

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

// run calls fn with f on a goroutine of its own, runs the cleanups it registered, and returns
// the message fn failed with ("" if none).
func (f *fakeTB) run(fn func(testing.TB)) string {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fatal
}

// fakeClient is a Starter whose Start and BlockUntilConnected return the errors given.
type fakeClient struct {
	startErr, connectErr error
	closed               bool
}

func (c *fakeClient) Start() error                                  { return c.startErr }
func (c *fakeClient) Close() error                                  { c.closed = true; return nil }
func (c *fakeClient) BlockUntilConnected(ctx context.Context) error { return c.connectErr }

func TestFailures(t *testing.T) {
	closed := make(chan struct{})
	close(closed)
	startErr, connectErr := errors.New("no start"), errors.New("no connect")
	tests := []struct {
		name string
		fn   func(testing.TB)
		want string // a part of the failure; "" for none
	}{
		{"eventually true", func(t testing.TB) { Eventually(t, time.Second, time.Millisecond, "x", func() bool { return true }) }, ""},
		{"eventually never", func(t testing.TB) {
			Eventually(t, 10*time.Millisecond, time.Millisecond, "x", func() bool { return false })
		},
			"waiting for x"},
		{"eventually nil", func(t testing.TB) { Eventually(t, time.Second, time.Millisecond, "x", nil) }, "no condition for x"},
		{"closed", func(t testing.TB) { WaitClosed(t, closed, time.Second, "ch") }, ""},
		{"not closed", func(t testing.TB) { WaitClosed(t, make(chan struct{}), 10*time.Millisecond, "ch") }, "ch not closed after 10ms"},
		{"nil channel", func(t testing.TB) { WaitClosed(t, nil, 10*time.Millisecond, "ch") }, "ch not closed"},
		{"await true", func(t testing.TB) { Await(t, time.Second, nil, func() bool { return true }, nil) }, ""},
		{"await on a token", func(t testing.TB) {
			changed := make(chan struct{}, 1)
			n := 0
			Await(t, time.Minute, changed, func() bool {
				n++
				changed <- struct{}{}
				return n == 3
			}, nil)
		}, ""},
		{"await never", func(t testing.TB) {
			Await(t, 10*time.Millisecond, make(chan struct{}), func() bool { return false }, func() string { return "saw nothing" })
		}, "saw nothing"},
		{"await never, no message", func(t testing.TB) {
			Await(t, 10*time.Millisecond, nil, func() bool { return false }, nil)
		}, "condition not met within 10ms"},
		{"await nil", func(t testing.TB) { Await(t, time.Second, nil, nil, nil) }, "no condition"},
		{"client starts", func(t testing.TB) { StartClient(t, &fakeClient{}, time.Second) }, ""},
		{"client does not start", func(t testing.TB) { StartClient(t, &fakeClient{startErr: startErr}, time.Second) }, "no start"},
		{"client does not connect", func(t testing.TB) { StartClient(t, &fakeClient{connectErr: connectErr}, time.Second) }, "no connect"},
		{"nil client", func(t testing.TB) { StartClient(t, nil, time.Second) }, "no client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTB{TB: t}
			got := f.run(tt.fn)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("failed with %q, want %q", got, tt.want)
			}
		})
	}
}

// A started client is closed when the test ends, whether or not it connected.
func TestStartClientCloses(t *testing.T) {
	for _, c := range []*fakeClient{{}, {connectErr: errors.New("no connect")}} {
		f := &fakeTB{TB: t}
		f.run(func(t testing.TB) { StartClient(t, c, time.Second) })
		if !c.closed {
			t.Errorf("client (connect error %v) not closed at the test's end", c.connectErr)
		}
	}
}

func TestContext(t *testing.T) {
	f := &fakeTB{TB: t}
	var ctx context.Context
	f.run(func(t testing.TB) { ctx = Context(t, time.Hour) })
	if ctx.Err() == nil {
		t.Error("context still live after the test ended")
	}
	if dl, ok := Context(t, time.Hour).Deadline(); !ok || time.Until(dl) > time.Hour {
		t.Errorf("deadline %v, %v: want one within the hour", dl, ok)
	}
}

// fakeWatcher is an ExistsWatcher whose ExistsW returns what it is given.
type fakeWatcher struct {
	exists bool
	watch  chan zk.Event
	err    error
}

func (w fakeWatcher) ExistsW(context.Context, string) (bool, *zk.Stat, <-chan zk.Event, error) {
	return w.exists, &zk.Stat{}, w.watch, w.err
}

func TestWaitGone(t *testing.T) {
	fired := make(chan zk.Event, 1)
	fired <- zk.Event{Type: zk.EventNodeDeleted}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		c     ExistsWatcher
		gone  bool
		fatal string // a part of the failure; "" for none
	}{
		{"no node", context.Background(), fakeWatcher{}, true, ""},
		{"deleted", context.Background(), fakeWatcher{exists: true, watch: fired}, true, ""},
		{"stays", context.Background(), fakeWatcher{exists: true, watch: make(chan zk.Event)}, false, ""},
		{"context ends", ended, fakeWatcher{exists: true, watch: make(chan zk.Event)}, false, ""},
		{"exists fails", context.Background(), fakeWatcher{err: zk.ErrNoAuth}, false, zk.ErrNoAuth.Error()},
		{"nil client", context.Background(), nil, false, "no client to watch /x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gone bool
			f := &fakeTB{TB: t}
			start := time.Now()
			got := f.run(func(t testing.TB) { gone = WaitGone(t, tt.ctx, tt.c, "/x", 50*time.Millisecond) })
			if got == "" && tt.fatal != "" || !strings.Contains(got, tt.fatal) {
				t.Errorf("failed with %q, want %q", got, tt.fatal)
			}
			if gone != tt.gone {
				t.Errorf("WaitGone = %v, want %v", gone, tt.gone)
			}
			if tt.ctx == ended && time.Since(start) > 40*time.Millisecond {
				t.Errorf("WaitGone took %v with an ended context", time.Since(start))
			}
		})
	}
}

// Serve hands each connection to its handle, and when the test ends closes the listener and the
// connections still open, and waits for the handles.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	returned := make(chan struct{}, 2)
	echo := func(c net.Conn) {
		defer func() { returned <- struct{}{} }()
		io.Copy(c, c)
	}
	var addr string
	var conns []net.Conn
	f := &fakeTB{TB: t}
	failure := f.run(func(tb testing.TB) {
		addr = Serve(tb, ln, echo)
		for range 2 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			conns = append(conns, c)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(c, "ping"); err != nil {
				t.Error(err)
			}
			b := make([]byte, 4)
			if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
				t.Errorf("echo %q, %v; want ping", b, err)
			}
		}
	})
	if failure != "" {
		t.Errorf("Serve failed: %s", failure)
	}
	// The cleanups have run: both handles returned without the clients closing their ends.
	if len(returned) != 2 {
		t.Errorf("%d handles returned after the cleanup, want 2", len(returned))
	}
	for _, c := range conns {
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("a connection is still open after the cleanup")
		}
		c.Close()
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after the cleanup")
	}
	tests := []struct {
		name   string
		ln     net.Listener
		handle func(net.Conn)
		want   string
	}{
		{"nil listener", nil, echo, "listener <nil>"},
		{"nil handle", &closeSpy{}, nil, "handle given false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeTB{TB: t}
			got := f.run(func(t testing.TB) { Serve(t, tt.ln, tt.handle) })
			if !strings.Contains(got, tt.want) || !strings.Contains(got, ErrNil.Error()) {
				t.Errorf("failed with %q, want %q and %q", got, tt.want, ErrNil)
			}
			if spy, ok := tt.ln.(*closeSpy); ok && !spy.closed {
				t.Error("the listener was left open")
			}
		})
	}
}

// closeSpy is a net.Listener that records that it was closed.
type closeSpy struct {
	net.Listener
	closed bool
}

func (s *closeSpy) Close() error { s.closed = true; return nil }
