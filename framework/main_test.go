package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/internal/testkit/zkenv"
	"github.com/gocurator/curator/retry"
	"github.com/gocurator/curator/zktest"
)

// testServer is the ZooKeeper server that every test of the package shares; each test works
// under paths of its own (see testPath).
var testServer *zktest.Server

func TestMain(m *testing.M) {
	zkenv.Main(m, zkenv.Server(&testServer))
}

// testSessionTimeout is short so that state tests are quick (the server's tick is 200ms, so it
// grants anything from 400ms to 4s), yet long enough that a dropped connection, which the client
// restores within milliseconds (a second or more once its reconnect backoff has grown), does not
// end as Lost on a loaded machine.
const testSessionTimeout = 2 * time.Second

// testPath returns a path of the test's own under the server's root (zkenv.Path).
func testPath(t testing.TB) string {
	t.Helper()
	return zkenv.Path(t, testServer.Root())
}

// testContext returns a context that ends after d, or with the test.
func testContext(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	return zkenv.Context(t, d)
}

// deadlineOrNone returns testContext(t, d) for a d above 0, and context.Background (a call with
// no deadline) otherwise.
func deadlineOrNone(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	if d <= 0 {
		return context.Background()
	}
	return testContext(t, d)
}

// newClient returns a started and connected client of addr (the server if ""), closed at the
// test's end. If rec is not nil it listens from before Start, so it sees Connected.
func newClient(t testing.TB, addr string, rec *recorder, opts ...Option) *Client {
	t.Helper()
	var listeners []func(State)
	if rec != nil {
		listeners = append(listeners, rec.listen)
	}
	return startClient(t, addr, listeners, opts...)
}

// startClient is newClient with any number of listeners, registered in order before Start.
func startClient(t testing.TB, addr string, listeners []func(State), opts ...Option) *Client {
	t.Helper()
	if addr == "" {
		addr = testServer.ConnectString()
	}
	opts = append([]Option{
		WithSessionTimeout(testSessionTimeout),
		WithConnectionTimeout(2 * time.Second),
		WithRetryPolicy(retry.UntilElapsed(15*time.Second, 50*time.Millisecond)),
	}, opts...)
	c, err := NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range listeners {
		c.Listen(fn)
	}
	zkenv.StartClient(t, c, 20*time.Second)
	return c
}

// recorder records the states a listener is given, with when and on which goroutine.
type recorder struct {
	mu         sync.Mutex
	states     []State
	at         []time.Time
	goroutines map[uint64]bool
	inside     atomic.Int32 // calls running now; more than one is a bug
	overlap    atomic.Bool
	changed    chan struct{} // gets a token after every state
}

func newRecorder() *recorder {
	return &recorder{goroutines: map[uint64]bool{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) listen(s State) {
	if r.inside.Add(1) > 1 {
		r.overlap.Store(true)
	}
	defer r.inside.Add(-1)
	r.mu.Lock()
	r.states = append(r.states, s)
	r.at = append(r.at, time.Now())
	r.goroutines[goroutineID()] = true
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// get returns the states recorded so far.
func (r *recorder) get() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.states)
}

// timeOf returns when the i'th state was recorded.
func (r *recorder) timeOf(i int) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at[i]
}

// waitLen waits until at least n states have been recorded and returns them.
func (r *recorder) waitLen(t testing.TB, n int, d time.Duration) []State {
	t.Helper()
	var got []State
	zkenv.Await(t, d, r.changed, func() bool {
		got = r.get()
		return len(got) >= n
	}, func() string {
		return fmt.Sprintf("after %v the listener has seen %v, want %d states", d, r.get(), n)
	})
	return got
}

// expect waits for the listener to have seen exactly want (and nothing more by then).
func (r *recorder) expect(t testing.TB, d time.Duration, want ...State) {
	t.Helper()
	if got := r.waitLen(t, len(want), d); !slices.Equal(got, want) {
		t.Fatalf("listener saw %v, want %v", got, want)
	}
}

// waitState waits until the listener has seen s at or after position from, and returns all
// it has seen.
func (r *recorder) waitState(t testing.TB, from int, s State, d time.Duration) []State {
	t.Helper()
	var got []State
	zkenv.Await(t, d, r.changed, func() bool {
		got = r.get()
		return len(got) > from && slices.Contains(got[from:], s)
	}, func() string {
		return fmt.Sprintf("after %v the listener has seen %v, want %v after the first %d", d, r.get(), s, from)
	})
	return got
}

// checkOneGoroutine fails the test unless every call came on one goroutine, never two at once.
func (r *recorder) checkOneGoroutine(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.goroutines) != 1 {
		t.Errorf("listener called on %d goroutines, want 1", len(r.goroutines))
	}
	if r.overlap.Load() {
		t.Error("listener called concurrently with itself")
	}
}

// goroutineID returns the id of the calling goroutine, from its stack trace's header.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// eventually polls cond every 20ms until it holds, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	zkenv.Eventually(t, d, 20*time.Millisecond, what, cond)
}

// isClosed reports whether ch is closed now.
func isClosed(ch <-chan struct{}) bool {
	return zkenv.IsClosed(ch)
}

// waitClosed fails the test unless ch is closed within d.
func waitClosed(t testing.TB, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	zkenv.WaitClosed(t, ch, d, what)
}

// exists reports whether path exists, as c sees it.
func exists(t testing.TB, c *Client, path string) bool {
	t.Helper()
	ok, _, err := c.Exists(testContext(t, 10*time.Second), path)
	if err != nil {
		t.Fatalf("exists %s: %v", path, err)
	}
	return ok
}

// childrenWithPrefix lists the children of path whose names start with prefix, as c sees them.
func childrenWithPrefix(t testing.TB, c *Client, path, prefix string) []string {
	t.Helper()
	names, _, err := c.Children(testContext(t, 10*time.Second), path)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("children %s: %v", path, err)
	}
	var out []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// mustCreate creates a persistent node and its parents.
func mustCreate(t testing.TB, c *Client, path string, data []byte) {
	t.Helper()
	if _, err := c.Create(testContext(t, 10*time.Second), path, data, Persistent, WithParents()); err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
}
