package framework

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gocurator/curator/zktest"
)

// testDialer dials for a client under test and lets the test see and disturb its connections: it
// records when each request was written, can fail every dial as an unresolvable name does, and can
// stall the connections open now, holding what they read and write, as a paused process would.
type testDialer struct {
	target string // where to dial, whatever address the client asks for

	dnsDown atomic.Bool  // fail every dial with a lookup error
	failed  atomic.Int32 // dials failed so far

	mu     sync.Mutex
	conns  []*testConn
	writes []time.Time   // when each write began
	pings  chan struct{} // gets a token after each ping written
}

func newTestDialer(target string) *testDialer {
	return &testDialer{target: target, pings: make(chan struct{}, 1)}
}

func (d *testDialer) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	if d.dnsDown.Load() {
		d.failed.Add(1)
		host, _, _ := net.SplitHostPort(address)
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}
	conn, err := net.DialTimeout(network, d.target, timeout)
	if err != nil {
		return nil, err
	}
	tc := &testConn{Conn: conn, d: d, closed: make(chan struct{})}
	d.mu.Lock()
	d.conns = append(d.conns, tc)
	d.mu.Unlock()
	return tc, nil
}

// lastWrite returns when the newest write began at or before t, or the zero time.
func (d *testDialer) lastWriteBefore(t time.Time) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.writes) - 1; i >= 0; i-- {
		if !d.writes[i].After(t) {
			return d.writes[i]
		}
	}
	return time.Time{}
}

// stall makes the connections open now hold what they read and write until the returned func is
// called (or they are closed).
func (d *testDialer) stall() (release func()) {
	ch := make(chan struct{})
	d.mu.Lock()
	for _, c := range d.conns {
		c.mu.Lock()
		c.stalled = ch
		c.mu.Unlock()
	}
	d.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// waitPing waits for the client to write a ping.
func (d *testDialer) waitPing(t *testing.T) time.Time {
	t.Helper()
	select {
	case <-d.pings: // an old one
	default:
	}
	select {
	case <-d.pings:
		return time.Now()
	case <-time.After(5 * time.Second):
		t.Fatal("the client wrote no ping for 5s")
		return time.Time{}
	}
}

type testConn struct {
	net.Conn
	d      *testDialer
	closed chan struct{}
	once   sync.Once

	mu      sync.Mutex
	stalled chan struct{} // closed when the stall ends; nil if never stalled
}

// hold waits while the connection is stalled.
func (c *testConn) hold() {
	c.mu.Lock()
	ch := c.stalled
	c.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-c.closed:
	}
}

func (c *testConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.hold() // the bytes have arrived, but the process is not running to see them
	return n, err
}

func (c *testConn) Write(b []byte) (int, error) {
	c.hold()
	now := time.Now()
	c.d.mu.Lock()
	c.d.writes = append(c.d.writes, now)
	c.d.mu.Unlock()
	if len(b) == 12 && int32(binary.BigEndian.Uint32(b[4:8])) == -2 {
		select {
		case c.d.pings <- struct{}{}:
		default:
		}
	}
	return c.Conn.Write(b)
}

func (c *testConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestCloseFromListener calls Close from inside a state listener, on each kind of state change:
// Close returns, everything stops (no listener is called after, operations fail with ErrClosed,
// the listener goroutine ends), and the other methods of the client work from a listener too.
func TestCloseFromListener(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		on         State
		trigger    func(p *zktest.Proxy)
		otherClose bool // another goroutine calls Close at the same moment
	}{
		{name: "Connected", on: Connected},
		{name: "Connected, Close racing", on: Connected, otherClose: true},
		// Partitioned, so that the client stays Suspended (it would be back within milliseconds).
		{name: "Suspended", on: Suspended, trigger: func(p *zktest.Proxy) { p.Blackhole(true); p.CloseConnections() }},
		{name: "Lost", on: Lost, trigger: func(p *zktest.Proxy) { p.Blackhole(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := testServer.Proxy(t)
			c, err := NewClient(p.Addr(), WithSessionTimeout(testSessionTimeout), WithConnectionTimeout(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			var closing atomic.Bool
			var after atomic.Int32 // listener calls that started after Close
			closed := make(chan error, 1)
			otherDone := make(chan struct{})
			var problems []string
			c.Listen(func(s State) {
				if s != tc.on || closing.Load() {
					return
				}
				closing.Store(true)
				if got := c.State(); got != s {
					problems = append(problems, "State() = "+got.String()+", want "+s.String())
				}
				_ = c.SessionID()
				_ = c.SessionTimeout()
				_ = c.ErrorState(c.SessionID())
				cancel := c.Listen(func(State) { after.Add(1) })
				cancel()
				ctx, cancelCtx := context.WithTimeout(context.Background(), 100*time.Millisecond)
				err := c.BlockUntilConnected(ctx)
				cancelCtx()
				if s.IsConnected() != (err == nil) {
					problems = append(problems, "BlockUntilConnected in "+s.String()+": "+errString(err))
				}
				if tc.otherClose {
					go func() { c.Close(); close(otherDone) }()
				}
				closed <- c.Close()
			})
			c.Listen(func(State) {
				if closing.Load() {
					after.Add(1)
				}
			})
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if tc.trigger != nil {
				if err := c.BlockUntilConnected(testContext(t, 10*time.Second)); err != nil {
					t.Fatal(err)
				}
				tc.trigger(p)
			}
			select {
			case err := <-closed:
				if err != nil {
					t.Errorf("Close from a listener = %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("Close called from a %v listener has not returned after 15s", tc.on)
			}
			waitClosed(t, c.dispatchDone, 5*time.Second, "the listener goroutine's end")
			if tc.otherClose {
				waitClosed(t, otherDone, 5*time.Second, "the other goroutine's Close")
			}
			for _, pr := range problems {
				t.Error(pr)
			}
			if n := after.Load(); n != 0 {
				t.Errorf("%d listener calls after Close", n)
			}
			start := time.Now()
			if err := c.Close(); err != nil {
				t.Errorf("Close again = %v", err)
			}
			if _, _, err := c.Exists(testContext(t, 5*time.Second), "/"); !errors.Is(err, ErrClosed) {
				t.Errorf("Exists after Close = %v, want ErrClosed", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Close again and Exists took %v", d)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestStartUnresolvableName starts a client whose server name does not resolve: Start succeeds
// and the client keeps trying; operations end with their context, saying why no server was
// reached, and never panic, whether the connection timeout passes first or the context ends
// first.
func TestStartUnresolvableName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		connect time.Duration
	}{
		{"context ends first", 15 * time.Second},
		{"connection timeout passes first", 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := NewClient("nosuchhost.invalid:2181", WithConnectionTimeout(tc.connect))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Start(); err != nil {
				t.Fatalf("Start = %v, want nil: the name may resolve later", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			_, _, err = c.Get(ctx, "/")
			late := time.Since(deadlineOf(ctx))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Get = %v, want context.DeadlineExceeded", err)
			}
			if !strings.Contains(err.Error(), "no server reachable") || !strings.Contains(err.Error(), "nosuchhost.invalid") {
				t.Errorf("Get = %q, want it to say no server was reachable and name the host", err)
			}
			if late > time.Second {
				t.Errorf("Get returned %v after its context ended", late)
			}
			if s := c.State(); s != 0 {
				t.Errorf("State() = %v, want LATENT", s)
			}
			start := time.Now()
			c.Close()
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Close took %v", d)
			}
		})
	}
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// TestNewSessionAfterLostWhileUnresolvable loses the session while the server's name does not
// resolve: the client keeps trying to open a new session, and gets one once the name resolves
// and the network is back.
func TestNewSessionAfterLostWhileUnresolvable(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	_, port, _ := net.SplitHostPort(p.Addr())
	d := newTestDialer(p.Addr())
	rec := newRecorder()
	c := newClient(t, "zk-lost.invalid:"+port, rec, WithDialer(d.dial))
	sid := c.SessionID()

	d.dnsDown.Store(true)
	p.Blackhole(true)
	rec.waitState(t, 1, Lost, 10*time.Second)
	// Several new sessions fail meanwhile.
	eventually(t, 10*time.Second, "three failed dials after Lost", func() bool { return d.failed.Load() >= 3 })
	if _, _, err := c.Exists(testContext(t, 300*time.Millisecond), "/"); !errors.Is(err, context.DeadlineExceeded) ||
		!strings.Contains(err.Error(), "zk-lost.invalid") {
		t.Errorf("Exists while the name does not resolve = %v, want a deadline naming the lookup failure", err)
	}

	back := time.Now()
	d.dnsDown.Store(false)
	p.Blackhole(false)
	got := rec.waitState(t, 2, Reconnected, 10*time.Second)
	t.Logf("states %v; Reconnected %v after the name resolved again", got, time.Since(back))
	if s := c.SessionID(); s == 0 || s == sid {
		t.Errorf("SessionID() = %x, want a new session (old %x)", s, sid)
	}
	if _, _, err := c.Exists(testContext(t, 10*time.Second), "/"); err != nil {
		t.Errorf("Exists on the new session: %v", err)
	}
}

// TestLostTimedFromAcknowledgement partitions the client right after a watch notification
// reached it, well after its last ping: the server counts the session timeout from the last
// packet it received (that ping), so the client must report Lost a session timeout after that
// ping was sent, not after the notification was read. Under SessionErrorPolicy a later Lost lets
// another process take a lock this one still believes it holds.
func TestLostTimedFromAcknowledgement(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	d := newTestDialer(p.Addr())
	rec := newRecorder()
	c := newClient(t, p.Addr(), rec, WithDialer(d.dial), WithErrorPolicy(SessionErrorPolicy))
	other := newClient(t, "", nil)
	node := testPath(t)
	mustCreate(t, c, node, nil)
	_, _, watch, err := c.GetW(testContext(t, 10*time.Second), node)
	if err != nil {
		t.Fatal(err)
	}
	timeout := c.SessionTimeout()

	d.waitPing(t)
	// Let most of a ping interval (a third of the timeout) pass, so the notification comes long
	// after the last packet the server has from the client.
	time.Sleep(timeout / 5)
	if _, err := other.Set(testContext(t, 5*time.Second), node, []byte("x"), -1); err != nil {
		t.Fatal(err)
	}
	select {
	case <-watch:
	case <-time.After(5 * time.Second):
		t.Fatal("no watch notification")
	}
	p.Blackhole(true)
	cut := time.Now()
	lastSent := d.lastWriteBefore(cut)

	got := rec.waitState(t, 1, Lost, 3*timeout)
	lost := rec.timeOf(len(got) - 1)
	t.Logf("states %v; last packet sent %v before the cut; Lost %v after it", got, cut.Sub(lastSent), lost.Sub(lastSent))
	if limit := lastSent.Add(timeout + 150*time.Millisecond); lost.After(limit) {
		t.Errorf("Lost %v after the last packet the server got, later than the session timeout %v: the server may have expired the session first",
			lost.Sub(lastSent), timeout)
	}
}

// TestWatchdogPausedProcess stalls the client's connection for twice the session timeout, as a
// process stopped and resumed sees it: nothing is read or written meanwhile, and on waking the
// process reads replies that were sent before the pause. The server expires the session; the
// client must report Lost by then, not take the late replies as news, and get a new session.
func TestWatchdogPausedProcess(t *testing.T) {
	t.Parallel()
	d := newTestDialer(testServer.ConnectString())
	rec := newRecorder()
	c := newClient(t, testServer.ConnectString(), rec, WithDialer(d.dial), WithErrorPolicy(SessionErrorPolicy))
	sid := c.SessionID()
	node := testPath(t)
	if _, err := c.Create(testContext(t, 10*time.Second), node, nil, Ephemeral, WithParents()); err != nil {
		t.Fatal(err)
	}
	timeout := c.SessionTimeout()

	// No false alarm while all is well.
	quiet := time.After(timeout * 3 / 2)
	for done := false; !done; {
		select {
		case <-rec.changed:
			if got := rec.get(); len(got) > 1 {
				t.Fatalf("states %v while connected and healthy", got)
			}
		case <-quiet:
			done = true
		}
	}

	release := d.stall()
	defer release()
	stalled := time.Now()
	lastSent := d.lastWriteBefore(stalled)
	got := rec.waitState(t, 1, Lost, timeout+time.Second)
	lost := rec.timeOf(len(got) - 1)
	t.Logf("states %v; Lost %v after the last packet sent before the stall", got, lost.Sub(lastSent))
	if want := []State{Connected, Suspended, Lost}; len(got) < 3 || got[1] != Suspended || got[2] != Lost {
		t.Errorf("states %v, want %v first", got, want)
	}
	if limit := lastSent.Add(timeout + 150*time.Millisecond); lost.After(limit) {
		t.Errorf("Lost %v after the last packet the server got, later than the session timeout %v", lost.Sub(lastSent), timeout)
	}
	if time.Since(stalled) < 2*timeout {
		time.Sleep(2*timeout - time.Since(stalled)) // the pause lasts twice the timeout
	}
	release()
	rec.waitState(t, 3, Reconnected, 10*time.Second)
	sid2 := c.SessionID()
	if sid2 == 0 || sid2 == sid {
		t.Errorf("SessionID() = %x, want a new session (old %x)", sid2, sid)
	}
	eventually(t, 10*time.Second, "the old session's ephemeral node to go", func() bool { return !exists(t, c, node) })
}

// TestWatchdogGrantedTimeout asks for a session timeout below the server's minimum: the server
// grants more, go-zookeeper paces its pings by what was granted, and so must the watchdog, or it
// would declare Lost between two pings of a healthy connection.
func TestWatchdogGrantedTimeout(t *testing.T) {
	t.Parallel()
	if testServer.External() {
		t.Skip("the bounds of an external ensemble are unknown")
	}
	core, logs := observer.New(zapcore.WarnLevel)
	c := newClient(t, "", nil, WithSessionTimeout(100*time.Millisecond), WithLogger(zap.New(core)))
	eventually(t, 5*time.Second, "the granted timeout", func() bool { return c.SessionTimeout() == 400*time.Millisecond })
	// A loaded machine may delay a ping past 400ms now and then; the watchdog timing by the
	// 100ms asked would fire within a few pings every time.
	time.Sleep(2 * time.Second)
	if n := logs.FilterMessageSnippet("no request acknowledged").Len(); n > 0 {
		t.Errorf("the watchdog fired %d times in 2s on a healthy connection with a granted timeout of 400ms", n)
	}
}

// TestReplyFramer feeds the framer a stream of replies cut at every possible place: it finds
// every reply's xid, and the negotiated timeout in the connect response.
func TestReplyFramer(t *testing.T) {
	be32 := func(v int32) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
	be64 := func(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
	var stream []byte
	add := func(parts ...[]byte) {
		var body []byte
		for _, p := range parts {
			body = append(body, p...)
		}
		stream = append(stream, be32(int32(len(body)))...)
		stream = append(stream, body...)
	}
	// Connect response: protocol version, timeout, session id, password.
	add(be32(0), be32(4000), be64(0x1234), be32(16), make([]byte, 16), []byte{0})
	add(be32(7), be64(100), be32(0), []byte("some data")) // reply to xid 7
	add(be32(-1), be64(-1), be32(0), make([]byte, 40))    // a notification
	add(be32(-2), be64(100), be32(0))                     // a ping reply
	add(be32(8), be64(101), be32(-101))                   // an error reply (no node)
	want := []int32{7, -1, -2, 8}

	for cut1 := 0; cut1 <= len(stream); cut1++ {
		for _, step := range []int{1, 3, 7, len(stream)} {
			var f replyFramer
			var xids []int32
			var timeout time.Duration
			feed := func(b []byte) {
				for len(b) > 0 {
					n, done := f.advance(b)
					b = b[n:]
					if done {
						if f.first {
							timeout = f.timeout
						} else {
							xids = append(xids, f.xid)
						}
					}
				}
			}
			feed(stream[:cut1])
			for rest := stream[cut1:]; len(rest) > 0; {
				n := min(step, len(rest))
				feed(rest[:n])
				rest = rest[n:]
			}
			if timeout != 4*time.Second || len(xids) != len(want) {
				t.Fatalf("cut at %d, steps of %d: timeout %v, xids %v; want 4s, %v", cut1, step, timeout, xids, want)
			}
			for i := range want {
				if xids[i] != want[i] {
					t.Fatalf("cut at %d, steps of %d: xids %v, want %v", cut1, step, xids, want)
				}
			}
		}
	}
}

// TestCloseWaitsForGoZookeeper checks that Close returns only once go-zookeeper's own goroutines
// of the connection have ended too, as its doc says: go-zookeeper closes its event channel as the
// last thing they do.
func TestCloseWaitsForGoZookeeper(t *testing.T) {
	for i := range 10 {
		c := newClient(t, "", nil)
		if _, _, err := c.Get(testContext(t, 5*time.Second), "/"); err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		events := c.events
		c.mu.Unlock()
		c.Close()
		select {
		case _, ok := <-events:
			if ok {
				t.Fatalf("Close %d returned with go-zookeeper's events undrained", i)
			}
		default:
			t.Fatalf("Close %d returned with go-zookeeper's goroutines running", i)
		}
	}
}
