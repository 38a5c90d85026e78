package framework

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReconnectWait checks the backoff schedule: nothing before the first pass, then a range that
// starts at reconnectMinWait and doubles, until it would reach past reconnectMaxWait, where it
// stays.
func TestReconnectWait(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	tests := []struct {
		level  int
		lo, hi time.Duration
	}{
		{level: -1},
		{level: 0},
		{level: 1, lo: 10 * ms, hi: 25 * ms},
		{level: 2, lo: 20 * ms, hi: 50 * ms},
		{level: 3, lo: 40 * ms, hi: 100 * ms},
		{level: 4, lo: 80 * ms, hi: 200 * ms},
		{level: 5, lo: 160 * ms, hi: 400 * ms},
		{level: 6, lo: 320 * ms, hi: 800 * ms},
		{level: 7, lo: 400 * ms, hi: time.Second},
		{level: reconnectMaxLevel, lo: 400 * ms, hi: time.Second},
		{level: 1 << 30, lo: 400 * ms, hi: time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.level), func(t *testing.T) {
			lo, hi := reconnectWait(tt.level)
			if lo != tt.lo || hi != tt.hi {
				t.Errorf("reconnectWait(%d) = %v, %v; want %v, %v", tt.level, lo, hi, tt.lo, tt.hi)
			}
		})
	}
	// The waits before the cap add up to well under a session timeout of a few seconds.
	var total time.Duration
	for level := 1; ; level++ {
		_, hi := reconnectWait(level)
		if hi == reconnectMaxWait {
			break
		}
		total += hi
	}
	if total > 2*time.Second {
		t.Errorf("the backoff waits up to %v in all before it reaches its cap, want at most 2s", total)
	}
}

// fakeClock is a clock for a hostProvider under test: time moves only when told to, and sleeps
// are recorded, not slept.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(d time.Duration, _ <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.t = c.t.Add(d)
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// takeSleeps returns the sleeps recorded since the last call.
func (c *fakeClock) takeSleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.sleeps
	c.sleeps = nil
	return s
}

// TestHostProviderSchedule drives a hostProvider through connections that fail, last or drop at
// once, and checks each Next: whether it slept and for how long, and whether it said retryStart.
func TestHostProviderSchedule(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	// A step is a call: "next" (with the wait range expected, 0 0 for none, and retryStart),
	// "connected", or "up" (the connection lasts for d).
	type step struct {
		op     string
		lo, hi time.Duration
		retry  bool
		d      time.Duration
	}
	next := func(lo, hi time.Duration) step { return step{op: "next", lo: lo, hi: hi} }
	now := step{op: "next"}
	capped := next(400*ms, time.Second)
	connected := step{op: "connected"}
	up := func(d time.Duration) step { return step{op: "up", d: d} }
	tests := []struct {
		name    string
		servers int
		steps   []step
	}{
		{
			name:    "one server down",
			servers: 1,
			steps: []step{now, next(10*ms, 25*ms), next(20*ms, 50*ms), next(40*ms, 100*ms),
				next(80*ms, 200*ms), next(160*ms, 400*ms), next(320*ms, 800*ms), capped, capped, capped},
		},
		{
			name:    "one server, connection drops after it was stable",
			servers: 1,
			steps: []step{now, connected, up(time.Second), now, connected, up(reconnectStableUptime), now,
				next(10*ms, 25*ms), next(20*ms, 50*ms), connected, up(time.Minute), now},
		},
		{
			name:    "one server that drops every connection at once",
			servers: 1,
			steps: []step{now, connected, up(ms), next(10*ms, 25*ms), connected, up(ms), next(20*ms, 50*ms),
				connected, up(0), next(40*ms, 100*ms), next(80*ms, 200*ms), connected, up(time.Second), now},
		},
		{
			name:    "one server, back after the cap",
			servers: 1,
			steps: []step{now, next(10*ms, 25*ms), next(20*ms, 50*ms), next(40*ms, 100*ms), next(80*ms, 200*ms),
				next(160*ms, 400*ms), next(320*ms, 800*ms), capped, connected, up(time.Second), now},
		},
		{
			name:    "three servers down: each pass tries every server, then waits",
			servers: 3,
			steps: []step{now, now, now, next(10*ms, 25*ms), now, now, next(20*ms, 50*ms), now, now,
				next(40*ms, 100*ms), now, now, next(80*ms, 200*ms), now, now, next(160*ms, 400*ms), now, now,
				next(320*ms, 800*ms), now, now, capped, now, now, capped, now, now},
		},
		{
			name:    "three servers, connection drops: a fresh pass at once",
			servers: 3,
			steps: []step{now, now, connected, up(time.Second), now, now, now, next(10*ms, 25*ms), connected,
				up(time.Second), now},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{t: time.Unix(1e9, 0)}
			hp := newHostProvider(nil, nil)
			hp.now, hp.sleep = clock.now, clock.sleep
			var servers []string
			for i := range tt.servers {
				servers = append(servers, fmt.Sprintf("zk%d:2181", i))
			}
			if err := hp.Init(servers); err != nil {
				t.Fatal(err)
			}
			var pass []string // servers returned in the current pass
			for i, s := range tt.steps {
				switch s.op {
				case "connected":
					hp.Connected()
					pass = nil
				case "up":
					clock.advance(s.d)
				case "next":
					server, retry := hp.Next()
					sleeps := clock.takeSleeps()
					if !slices.Contains(servers, server) {
						t.Fatalf("step %d: Next returned %q, not one of %v", i, server, servers)
					}
					if len(pass) == len(servers) {
						pass = nil
					}
					if slices.Contains(pass, server) {
						t.Errorf("step %d: Next returned %q twice in one pass (%v)", i, server, pass)
					}
					pass = append(pass, server)
					if retry != s.retry {
						t.Errorf("step %d: Next said retryStart=%v, want %v", i, retry, s.retry)
					}
					switch {
					case s.hi == 0 && len(sleeps) != 0:
						t.Errorf("step %d: Next slept %v, want no sleep", i, sleeps)
					case s.hi != 0 && (len(sleeps) != 1 || sleeps[0] < s.lo || sleeps[0] >= s.hi):
						t.Errorf("step %d: Next slept %v, want one sleep in [%v, %v)", i, sleeps, s.lo, s.hi)
					}
				}
			}
		})
	}
}

// TestHostProviderBadInput checks that a provider without servers, or with a malformed one,
// reports an error (Init) or no server (Next), and does not panic.
func TestHostProviderBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		servers []string
	}{
		{name: "nil", servers: nil},
		{name: "empty", servers: []string{}},
		{name: "no port", servers: []string{"zk1"}},
		{name: "one bad of two", servers: []string{"zk1:2181", "zk2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hp := newHostProvider(nil, nil)
			if err := hp.Init(tt.servers); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("Init(%q) = %v, want ErrInvalidArgument", tt.servers, err)
			}
			if server, retry := hp.Next(); server != "" || !retry {
				t.Errorf("Next() after a failed Init = %q, %v; want \"\", true", server, retry)
			}
		})
	}
	var zero hostProvider
	if server, retry := zero.Next(); server != "" || !retry {
		t.Errorf("Next() of a zero hostProvider = %q, %v; want \"\", true", server, retry)
	}
	zero.Connected()
}

// TestHostProviderQuit checks that closing quit wakes a Next that is waiting between two passes,
// which then says retryStart=true (so that go-zookeeper looks at its own close signal), and that
// every Next after it says so at once, even in the first pass.
func TestHostProviderQuit(t *testing.T) {
	t.Parallel()
	quit := make(chan struct{})
	hp := newHostProvider(quit, nil)
	sleeping := make(chan time.Duration, 1)
	hp.sleep = func(d time.Duration, quit <-chan struct{}) {
		sleeping <- d
		sleepUntil(time.Hour, quit) // only quit ends it
	}
	if err := hp.Init([]string{"zk1:2181"}); err != nil {
		t.Fatal(err)
	}
	if _, retry := hp.Next(); retry {
		t.Fatal("the first Next said retryStart")
	}
	type result struct {
		server string
		retry  bool
	}
	done := make(chan result, 1)
	go func() {
		s, r := hp.Next()
		done <- result{s, r}
	}()
	if d := <-sleeping; d < reconnectMinWait {
		t.Errorf("Next waits %v before the second pass, want at least %v", d, reconnectMinWait)
	}
	close(quit)
	select {
	case r := <-done:
		if r.server != "zk1:2181" || !r.retry {
			t.Errorf("Next woken by quit = %q, %v; want zk1:2181, true", r.server, r.retry)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next still waiting after quit was closed")
	}
	hp.Connected()
	if _, retry := hp.Next(); !retry {
		t.Error("Next after quit said retryStart=false")
	}
	select {
	case d := <-sleeping:
		t.Errorf("Next after quit slept %v", d)
	default:
	}
}

// TestSleepUntil checks that sleepUntil ends when quit is closed, long before its duration.
func TestSleepUntil(t *testing.T) {
	t.Parallel()
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sleepUntil(time.Hour, quit)
	}()
	close(quit)
	waitClosed(t, done, 10*time.Second, "sleepUntil's return")
	start := time.Now()
	sleepUntil(time.Millisecond, nil)
	if d := time.Since(start); d < time.Millisecond {
		t.Errorf("sleepUntil(1ms) returned after %v", d)
	}
}

// reconnectTime cuts the client's connection through p (it must be connected) and returns how
// long the client took to report Reconnected; rec is its recorder.
func reconnectTime(t *testing.T, p interface{ CloseConnections() }, rec *recorder) time.Duration {
	t.Helper()
	n := len(rec.get())
	start := time.Now()
	p.CloseConnections()
	got := rec.waitState(t, n, Reconnected, 10*time.Second)
	i := n + slices.Index(got[n:], Reconnected)
	if want := []State{Suspended, Reconnected}; !slices.Equal(got[n:i+1], want) {
		t.Fatalf("after a cut the listener saw %v, want %v", got[n:i+1], want)
	}
	return rec.timeOf(i).Sub(start)
}

// TestReconnectFast cuts the connection to a live server again and again: each time the client is
// back (Suspended, then Reconnected with the same session) in well under go-zookeeper's second.
func TestReconnectFast(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	rec := newRecorder()
	c := newClient(t, p.Addr(), rec)
	rec.expect(t, 5*time.Second, Connected)
	sid := c.SessionID()
	node := testPath(t)
	mustCreate(t, c, node, nil)

	const cuts = 20
	const bound = 500 * time.Millisecond
	var times []time.Duration
	for range cuts {
		// The scenario, not a synchronisation: a connection that has been up for a while drops.
		// (One that drops sooner counts as a failed attempt, and the next reconnect backs off.)
		time.Sleep(reconnectStableUptime)
		d := reconnectTime(t, p, rec)
		times = append(times, d)
		if d >= bound {
			t.Errorf("Reconnected %v after the cut, want under %v", d, bound)
		}
		if !exists(t, c, node) {
			t.Fatal("node gone after a reconnect")
		}
	}
	if got := c.SessionID(); got != sid {
		t.Errorf("SessionID() = %x after the cuts, want the same session %x", got, sid)
	}
	slices.Sort(times)
	t.Logf("cut to Reconnected over %d cuts: min %v, p50 %v, max %v", cuts, times[0], times[len(times)/2], times[len(times)-1])
}

// TestReconnectShortSessionSurvives gives the client a session timeout of a second, which
// go-zookeeper's one-second wait before a reconnect used to lose on every dropped connection: the
// session now survives cut after cut.
func TestReconnectShortSessionSurvives(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	rec := newRecorder()
	c := newClient(t, p.Addr(), rec, WithSessionTimeout(time.Second))
	rec.expect(t, 5*time.Second, Connected)
	if got := c.SessionTimeout(); got > time.Second {
		t.Fatalf("the server granted a session timeout of %v, want at most 1s", got)
	}
	sid := c.SessionID()
	for i := range 5 {
		time.Sleep(reconnectStableUptime) // the scenario: a connection up for a while drops
		d := reconnectTime(t, p, rec)
		t.Logf("cut %d: Reconnected after %v", i+1, d)
	}
	if got := rec.get(); slices.Contains(got, Lost) {
		t.Errorf("states %v: the session was lost", got)
	}
	if got := c.SessionID(); got != sid {
		t.Errorf("SessionID() = %x after the cuts, want the same session %x", got, sid)
	}
}

// TestReconnectNoSpin points the client at a server no dial reaches: it dials under the backoff,
// more often than go-zookeeper's once a second at first and nothing like a busy loop, and Close
// returns promptly (leaving no goroutine behind: TestMain's goleak) while it waits between two
// dials.
func TestReconnectNoSpin(t *testing.T) {
	t.Parallel()
	refused := errors.New("test dialer: refused")
	tests := []struct {
		name  string
		watch time.Duration // how long dials are counted; 0: Close at the sixth dial
	}{
		{name: "dials over 2s", watch: 2 * time.Second},
		{name: "close in the backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dials atomic.Int64
			sixth := make(chan struct{})
			dialer := func(network, address string, timeout time.Duration) (net.Conn, error) {
				if dials.Add(1) == 6 {
					close(sixth)
				}
				return nil, refused
			}
			c, err := NewClient("127.0.0.1:1", WithDialer(dialer), WithSessionTimeout(testSessionTimeout))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			if tt.watch > 0 {
				<-time.After(tt.watch) // the measurement window
				n := dials.Load()
				t.Logf("%d dials in %v", n, time.Since(start))
				if n < 5 || n >= 100 {
					t.Errorf("%d dials in %v, want from 5 (faster than one a second) to 99 (no busy loop)", n, tt.watch)
				}
			} else {
				waitClosed(t, sixth, 10*time.Second, "the sixth dial")
			}
			closeStart := time.Now()
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			d := time.Since(closeStart)
			t.Logf("Close took %v", d)
			// go-zookeeper's Close waits a second for the answer to its close request unless its
			// loop is back at the host provider when Close strikes; the Client sees to it that it
			// is. The bound is far under that second, with room for a loaded machine.
			if d > 500*time.Millisecond {
				t.Errorf("Close took %v, want it prompt (well under go-zookeeper's second)", d)
			}
			if err := c.BlockUntilConnected(testContext(t, time.Second)); !errors.Is(err, ErrClosed) {
				t.Errorf("BlockUntilConnected after Close = %v, want ErrClosed", err)
			}
		})
	}
}

// errGateShut is the error of a dial through a shut dialGate.
var errGateShut = errors.New("test dialer: the gate is shut")

// dialGate is a dialer that a test can shut: while shut, every dial fails with errGateShut. It
// keeps a client away from a live server after a cut for as long as a test needs, now that the
// client reconnects within milliseconds.
type dialGate struct{ shut atomic.Bool }

func (g *dialGate) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	if g.shut.Load() {
		return nil, errGateShut
	}
	return net.DialTimeout(network, address, timeout)
}
