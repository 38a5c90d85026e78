package framework

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestNewClientInvalid(t *testing.T) {
	tests := []struct {
		name    string
		connect string
		opts    []Option
		want    string // the error's text names the bad value
	}{
		{"empty connect string", "", nil, "connect string is empty"},
		{"port not a number", "localhost:abc", nil, `"localhost:abc"`},
		{"port out of range", "localhost:70000", nil, `"70000"`},
		{"port zero", "127.0.0.1:0", nil, `"0"`},
		{"port empty", "localhost:", nil, `"localhost:"`},
		{"no host", ":2181", nil, `":2181"`},
		{"empty server", "a:1,,b:2", nil, `"a:1,,b:2"`},
		{"trailing comma", "a:1,", nil, `"a:1,"`},
		{"bad host:port", "a:b:c", nil, `"a:b:c"`},
		{"unclosed bracket", "[::1:2181", nil, `"[::1:2181"`},
		{"bad chroot", "localhost:2181/a//b", nil, `"/a//b"`},
		{"chroot ending in slash", "localhost:2181/a/", nil, `"/a/"`},
		{"zero session timeout", "localhost:2181", []Option{WithSessionTimeout(0)}, "session timeout 0s"},
		{"negative session timeout", "localhost:2181", []Option{WithSessionTimeout(-time.Second)}, "session timeout -1s"},
		{"zero connection timeout", "localhost:2181", []Option{WithConnectionTimeout(0)}, "connection timeout 0s"},
		{"negative connection timeout", "localhost:2181", []Option{WithConnectionTimeout(-5 * time.Millisecond)}, "connection timeout -5ms"},
		{"nil option", "localhost:2181", []Option{WithSessionTimeout(time.Second), nil}, "option 1 is nil"},
		{"nil logger", "localhost:2181", []Option{WithLogger(nil)}, "logger is nil"},
		{"nil retry policy", "localhost:2181", []Option{WithRetryPolicy(nil)}, "retry policy is nil"},
		{"nil dialer", "localhost:2181", []Option{WithDialer(nil)}, "dialer is nil"},
		{"empty ACL", "localhost:2181", []Option{WithACL(nil)}, "ACL is empty"},
		{"empty auth scheme", "localhost:2181", []Option{WithAuth("", []byte("u:p"))}, "auth scheme is empty"},
		{"unknown error policy", "localhost:2181", []Option{WithErrorPolicy(ErrorPolicy(7))}, "error policy 7"},
		{"namespace with empty element", "localhost:2181", []Option{WithNamespace("a//b")}, `"/a//b"`},
		{"namespace ending in slash", "localhost:2181", []Option{WithNamespace("app/")}, `"/app/"`},
		{"namespace root", "localhost:2181", []Option{WithNamespace("/")}, `"/"`},
		{"namespace with dot-dot", "localhost:2181", []Option{WithNamespace("a/../b")}, `"/a/../b"`},
		{"namespace with NUL", "localhost:2181", []Option{WithNamespace("a\x00b")}, `"/a\x00b"`},
		{"two bad options", "localhost:2181", []Option{WithSessionTimeout(-1), WithLogger(nil)}, "logger is nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.connect, tt.opts...)
			if err == nil {
				c.Close()
				t.Fatalf("NewClient(%q) = nil error, want one naming %s", tt.connect, tt.want)
			}
			if c != nil {
				t.Errorf("NewClient returned a client along with error %v", err)
			}
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("error %v does not wrap ErrInvalidArgument", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not name %s", err, tt.want)
			}
		})
	}
}

func TestNewClientValid(t *testing.T) {
	tests := []struct {
		connect     string
		opts        []Option
		wantServers []string
		wantPrefix  string
	}{
		{"127.0.0.1:2181", nil, []string{"127.0.0.1:2181"}, ""},
		{"localhost", nil, []string{"localhost:2181"}, ""},
		{"h1:1, h2:2 ,h3", nil, []string{"h1:1", "h2:2", "h3:2181"}, ""},
		{"[::1]:2182", nil, []string{"[::1]:2182"}, ""},
		{"h:1/", nil, []string{"h:1"}, ""},
		{"h:1/chroot/x", nil, []string{"h:1"}, "/chroot/x"},
		{"h:1", []Option{WithNamespace("app")}, []string{"h:1"}, "/app"},
		{"h:1", []Option{WithNamespace("/app/locks")}, []string{"h:1"}, "/app/locks"},
		{"h:1/chroot", []Option{WithNamespace("app")}, []string{"h:1"}, "/chroot/app"},
		{"h:1", []Option{WithNamespace("")}, []string{"h:1"}, ""},
	}
	for _, tt := range tests {
		c, err := NewClient(tt.connect, tt.opts...)
		if err != nil {
			t.Errorf("NewClient(%q) = %v", tt.connect, err)
			continue
		}
		if strings.Join(c.servers, ",") != strings.Join(tt.wantServers, ",") || c.prefix != tt.wantPrefix {
			t.Errorf("NewClient(%q): servers %v prefix %q; want %v %q", tt.connect, c.servers, c.prefix, tt.wantServers, tt.wantPrefix)
		}
		if c.State() != 0 || c.SessionID() != 0 {
			t.Errorf("NewClient(%q): state %v session %x before Start, want LATENT and 0", tt.connect, c.State(), c.SessionID())
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close of an unstarted client = %v", err)
		}
	}
}

func TestValidatePath(t *testing.T) {
	tests := []struct {
		path string
		ok   bool
	}{
		{"/", true},
		{"/a", true},
		{"/a/b/c", true},
		{"/_c_x-lock-0000000001", true},
		{"/with space/ünïcode", true},
		{"/a.b/..c/.d", true},
		{"", false},
		{"a", false},
		{"a/b", false},
		{"//", false},
		{"/a/", false},
		{"/a//b", false},
		{"/.", false},
		{"/a/./b", false},
		{"/a/..", false},
		{"/a\x00b", false},
		{"/a\x01b", false},
		{"/a\x7fb", false},
		{"/a\u0085b", false},
		{"/a\ufff0b", false},
		{"/a\uf8ffb", false},
	}
	for _, tt := range tests {
		err := ValidatePath(tt.path)
		if (err == nil) != tt.ok {
			t.Errorf("ValidatePath(%q) = %v, want ok %v", tt.path, err, tt.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("ValidatePath(%q) = %v, not wrapping ErrInvalidArgument", tt.path, err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(tt.path)) {
				t.Errorf("ValidatePath(%q) = %q, does not name the path", tt.path, err)
			}
		}
	}
}

func TestJoinSplitPath(t *testing.T) {
	tests := []struct {
		path, parent, name string
	}{
		{"/a", "/", "a"},
		{"/a/b", "/a", "b"},
		{"/a/b/c-0000000001", "/a/b", "c-0000000001"},
	}
	for _, tt := range tests {
		parent, name := SplitPath(tt.path)
		if parent != tt.parent || name != tt.name {
			t.Errorf("SplitPath(%q) = %q, %q; want %q, %q", tt.path, parent, name, tt.parent, tt.name)
		}
		if got := JoinPath(tt.parent, tt.name); got != tt.path {
			t.Errorf("JoinPath(%q, %q) = %q, want %q", tt.parent, tt.name, got, tt.path)
		}
	}
}

func TestStateAndPolicyNames(t *testing.T) {
	tests := []struct {
		s         State
		name      string
		connected bool
		standard  bool // an error state under StandardErrorPolicy
		session   bool // an error state under SessionErrorPolicy
	}{
		{0, "LATENT", false, false, false},
		{Connected, "CONNECTED", true, false, false},
		{Suspended, "SUSPENDED", false, true, false},
		{Reconnected, "RECONNECTED", true, false, false},
		{Lost, "LOST", false, true, true},
		{ReadOnly, "READ_ONLY", true, false, false},
		{State(42), "State(42)", false, false, false},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.name {
			t.Errorf("State(%d).String() = %q, want %q", int(tt.s), got, tt.name)
		}
		if got := tt.s.IsConnected(); got != tt.connected {
			t.Errorf("%v.IsConnected() = %v, want %v", tt.s, got, tt.connected)
		}
		if got := StandardErrorPolicy.IsErrorState(tt.s); got != tt.standard {
			t.Errorf("StandardErrorPolicy.IsErrorState(%v) = %v, want %v", tt.s, got, tt.standard)
		}
		if got := SessionErrorPolicy.IsErrorState(tt.s); got != tt.session {
			t.Errorf("SessionErrorPolicy.IsErrorState(%v) = %v, want %v", tt.s, got, tt.session)
		}
	}
	for p, want := range map[ErrorPolicy]string{StandardErrorPolicy: "standard", SessionErrorPolicy: "session", 9: "ErrorPolicy(9)"} {
		if got := p.String(); got != want {
			t.Errorf("ErrorPolicy(%d).String() = %q, want %q", int(p), got, want)
		}
	}
}

// TestStatesCloseConnections drops the connection: the client reports Suspended, then
// Reconnected with the same session, and its ephemeral node survives.
func TestStatesCloseConnections(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	rec := newRecorder()
	c := newClient(t, p.Addr(), rec)
	rec.expect(t, 5*time.Second, Connected)
	if c.State() != Connected {
		t.Fatalf("State() = %v, want CONNECTED", c.State())
	}
	sid := c.SessionID()
	if sid == 0 {
		t.Fatal("SessionID() = 0 while connected")
	}
	node := testPath(t)
	if _, err := c.Create(testContext(t, 10*time.Second), node, nil, Ephemeral); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	p.CloseConnections()
	rec.expect(t, 5*time.Second, Connected, Suspended)
	suspended := time.Since(start)
	rec.expect(t, 10*time.Second, Connected, Suspended, Reconnected)
	t.Logf("after CloseConnections: Suspended after %v, Reconnected after %v", suspended, rec.timeOf(2).Sub(start))
	if got := c.SessionID(); got != sid {
		t.Errorf("SessionID() = %x after a reconnect, want the same session %x", got, sid)
	}
	if c.State() != Reconnected {
		t.Errorf("State() = %v, want RECONNECTED", c.State())
	}
	if !exists(t, c, node) {
		t.Error("ephemeral node gone after a reconnect within the session")
	}

	// A second drop: the same again.
	p.CloseConnections()
	rec.expect(t, 10*time.Second, Connected, Suspended, Reconnected, Suspended, Reconnected)
	if got := c.SessionID(); got != sid {
		t.Errorf("SessionID() = %x after a second reconnect, want %x", got, sid)
	}
	rec.checkOneGoroutine(t)
}

// TestStatesExpireSession has the server expire the session: the client reports Lost, makes a
// new session by itself and reports Reconnected. The client's own timer counts the session
// timeout from the last packet it had from the server, as the server does, so Lost comes from
// whichever is first, the timer or the server's answer, and never later than the server's expiry
// is seen.
func TestStatesExpireSession(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	rec := newRecorder()
	core, logs := observer.New(zapcore.InfoLevel)
	c := newClient(t, p.Addr(), rec, WithSessionTimeout(4*time.Second), WithLogger(zap.New(core)))
	sid := c.SessionID()
	node := testPath(t)
	if _, err := c.Create(testContext(t, 10*time.Second), node, nil, Ephemeral); err != nil {
		t.Fatal(err)
	}
	ended := c.SessionEnded(sid)

	start := time.Now()
	if err := p.ExpireSession(testContext(t, 30*time.Second), testServer, sid); err != nil {
		t.Fatal(err)
	}
	expired := time.Since(start)
	rec.expect(t, 15*time.Second, Connected, Suspended, Lost, Reconnected)
	t.Logf("ExpireSession: server expired the session after %v; Suspended after %v, Lost after %v, Reconnected after %v",
		expired, rec.timeOf(1).Sub(start), rec.timeOf(2).Sub(start), rec.timeOf(3).Sub(start))
	if !isClosed(ended) {
		t.Error("SessionEnded(old session) not closed after Lost")
	}
	sid2 := c.SessionID()
	if sid2 == 0 || sid2 == sid {
		t.Errorf("SessionID() = %x after Lost and Reconnected, want a new session (old %x)", sid2, sid)
	}
	if exists(t, c, node) {
		t.Error("ephemeral node of the expired session still exists")
	}
	// Lost is reported once, by the timer or for the server's expiry.
	lost := logs.FilterMessage("zookeeper session lost").All()
	if len(lost) != 1 {
		var whys []any
		for _, e := range lost {
			whys = append(whys, e.ContextMap()["why"])
		}
		t.Errorf("session lost %d times, why %v; want once", len(lost), whys)
	}
	if lostAt := rec.timeOf(2).Sub(start); lostAt > expired+time.Second {
		t.Errorf("Lost after %v, more than a second after the server expired the session (%v)", lostAt, expired)
	}
	// The new session works.
	if _, err := c.Create(testContext(t, 10*time.Second), node, nil, Ephemeral); err != nil {
		t.Fatal(err)
	}
	_, st, err := c.Get(testContext(t, 10*time.Second), node)
	if err != nil || st.EphemeralOwner != sid2 {
		t.Fatalf("Get = %+v, %v; want a node owned by %x", st, err, sid2)
	}
	rec.checkOneGoroutine(t)
}

// TestStatesBlackholeLost partitions client and server for longer than the session timeout: the
// client hears nothing, so it is its own timer that reports Lost (while the partition lasts), a
// session timeout after it last heard from the server, as the server counts; once the partition
// ends, it has a new session.
func TestStatesBlackholeLost(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	rec := newRecorder()
	c := newClient(t, p.Addr(), rec)
	sid := c.SessionID()
	errState := c.ErrorState(sid)
	ended := c.SessionEnded(sid)

	start := time.Now()
	p.Blackhole(true)
	rec.expect(t, 10*time.Second, Connected, Suspended)
	if !isClosed(errState) {
		t.Error("ErrorState not closed on Suspended under StandardErrorPolicy")
	}
	if isClosed(ended) {
		t.Error("SessionEnded closed on Suspended")
	}
	rec.expect(t, 10*time.Second, Connected, Suspended, Lost)
	suspendedAt, lostAt := rec.timeOf(1).Sub(start), rec.timeOf(2).Sub(start)
	t.Logf("blackhole: Suspended after %v, Lost (client's timer) after %v", suspendedAt, lostAt)
	if lostAt < suspendedAt || lostAt < testSessionTimeout-time.Second || lostAt > testSessionTimeout+500*time.Millisecond {
		t.Errorf("Lost %v after the partition began, want about the session timeout (%v) after the last packet heard", lostAt, testSessionTimeout)
	}
	if !isClosed(ended) {
		t.Error("SessionEnded not closed on Lost")
	}
	if got := c.SessionID(); got != 0 {
		t.Errorf("SessionID() = %x while Lost, want 0", got)
	}
	if c.State() != Lost {
		t.Errorf("State() = %v, want LOST", c.State())
	}

	end := time.Now()
	p.Blackhole(false)
	rec.expect(t, 10*time.Second, Connected, Suspended, Lost, Reconnected)
	t.Logf("blackhole ended: Reconnected after %v", rec.timeOf(3).Sub(end))
	sid2 := c.SessionID()
	if sid2 == 0 || sid2 == sid {
		t.Errorf("SessionID() = %x after the partition, want a new session (old %x)", sid2, sid)
	}
	if isClosed(c.ErrorState(sid2)) || isClosed(c.SessionEnded(sid2)) {
		t.Error("the new session's ErrorState or SessionEnded is closed")
	}
	if _, _, err := c.Exists(testContext(t, 10*time.Second), "/"); err != nil {
		t.Errorf("Exists after the partition: %v", err)
	}
}

// TestListenSlowListener checks that a listener that blocks holds back neither the connection
// nor the operations, and that it still gets every change, in order, once it returns.
func TestListenSlowListener(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	blocked := make(chan struct{})
	release := make(chan struct{})
	slow := newRecorder()
	after := newRecorder()
	c := startClient(t, p.Addr(), []func(State){
		func(s State) {
			if s == Suspended {
				close(blocked)
				<-release
			}
			slow.listen(s)
		},
		after.listen,
	})
	after.expect(t, 10*time.Second, Connected)

	p.CloseConnections()
	select {
	case <-blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("listener not called after CloseConnections")
	}
	// The connection comes back while the listener is stuck in its first call.
	eventually(t, 10*time.Second, "RECONNECTED while a listener blocks", func() bool { return c.State() == Reconnected })
	path := testPath(t)
	if _, err := c.Create(testContext(t, 10*time.Second), path, []byte("x"), Persistent); err != nil {
		t.Fatalf("create while a listener blocks: %v", err)
	}
	if data, _, err := c.Get(testContext(t, 10*time.Second), path); err != nil || string(data) != "x" {
		t.Fatalf("get while a listener blocks = %q, %v", data, err)
	}
	if got := after.get(); len(got) != 1 {
		t.Errorf("a later listener saw %v while an earlier one blocked on the change after CONNECTED", got)
	}
	close(release)
	slow.expect(t, 5*time.Second, Connected, Suspended, Reconnected)
	after.expect(t, 5*time.Second, Connected, Suspended, Reconnected)
}

// TestListenCancel checks that the func Listen returns unregisters the listener.
func TestListenCancel(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	cancelled := newRecorder()
	c, err := NewClient(p.Addr(), WithSessionTimeout(testSessionTimeout))
	if err != nil {
		t.Fatal(err)
	}
	cancel := c.Listen(cancelled.listen) // registered first: called first
	kept := newRecorder()
	c.Listen(kept.listen)
	panicky := c.Listen(func(State) { panic("listener panic") })
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kept.expect(t, 10*time.Second, Connected)
	cancelled.expect(t, time.Second, Connected)
	cancel()
	cancel() // twice is harmless
	p.CloseConnections()
	kept.expect(t, 10*time.Second, Connected, Suspended, Reconnected)
	if got := cancelled.get(); len(got) != 1 {
		t.Errorf("cancelled listener saw %v, want only CONNECTED", got)
	}
	panicky()
}

// TestErrorStateChannels follows ErrorState and SessionEnded through a dropped connection, a
// session expiry and Close, under both error policies.
func TestErrorStateChannels(t *testing.T) {
	t.Parallel()
	for _, policy := range []ErrorPolicy{StandardErrorPolicy, SessionErrorPolicy} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			p := testServer.Proxy(t)
			rec := newRecorder()
			c := newClient(t, p.Addr(), rec, WithErrorPolicy(policy))
			if c.ErrorPolicy() != policy {
				t.Fatalf("ErrorPolicy() = %v", c.ErrorPolicy())
			}
			sid := c.SessionID()
			es1, se1 := c.ErrorState(sid), c.SessionEnded(sid)
			if isClosed(es1) || isClosed(se1) {
				t.Fatal("ErrorState or SessionEnded of the live session closed while connected")
			}
			for _, id := range []int64{0, sid + 1} {
				if !isClosed(c.ErrorState(id)) || !isClosed(c.SessionEnded(id)) {
					t.Errorf("ErrorState/SessionEnded(%x) of a session that is not live not closed", id)
				}
			}

			// A dropped connection: an error state under the standard policy only.
			p.CloseConnections()
			rec.expect(t, 10*time.Second, Connected, Suspended, Reconnected)
			if got, want := isClosed(es1), policy == StandardErrorPolicy; got != want {
				t.Errorf("ErrorState closed after SUSPENDED/RECONNECTED: %v, want %v", got, want)
			}
			if isClosed(se1) {
				t.Error("SessionEnded closed though the session survived")
			}
			es2 := c.ErrorState(sid)
			if isClosed(es2) {
				t.Error("ErrorState of the reconnected session already closed")
			}

			// The session expires: an error state under both, and the session has ended.
			if err := p.ExpireSession(testContext(t, 30*time.Second), testServer, sid); err != nil {
				t.Fatal(err)
			}
			rec.expect(t, 15*time.Second, Connected, Suspended, Reconnected, Suspended, Lost, Reconnected)
			for name, ch := range map[string]<-chan struct{}{"first ErrorState": es1, "second ErrorState": es2, "SessionEnded": se1} {
				if !isClosed(ch) {
					t.Errorf("%s of the expired session not closed", name)
				}
			}
			if !isClosed(c.ErrorState(sid)) || !isClosed(c.SessionEnded(sid)) {
				t.Error("ErrorState/SessionEnded asked for the expired session are not closed")
			}
			sid2 := c.SessionID()
			es3, se3 := c.ErrorState(sid2), c.SessionEnded(sid2)
			if sid2 == sid || isClosed(es3) || isClosed(se3) {
				t.Errorf("new session %x (old %x): ErrorState closed %v, SessionEnded closed %v", sid2, sid, isClosed(es3), isClosed(se3))
			}

			// Close ends everything.
			c.Close()
			if !isClosed(es3) || !isClosed(se3) {
				t.Error("Close did not close the live session's ErrorState and SessionEnded")
			}
			if !isClosed(c.ErrorState(sid2)) || !isClosed(c.SessionEnded(sid2)) || !isClosed(c.Done()) {
				t.Error("ErrorState/SessionEnded/Done not closed after Close")
			}
		})
	}
}

// TestClosed checks that after Close every operation fails with ErrClosed, and Close again is
// harmless.
func TestClosed(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	path := testPath(t)
	mustCreate(t, c, path, nil)
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if c.SessionID() != 0 {
		t.Errorf("SessionID() = %x after Close, want 0", c.SessionID())
	}
	ctx := testContext(t, 5*time.Second)
	for name, op := range closedOps(ctx, c, path) {
		start := time.Now()
		err := op()
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s after Close took %v", name, d)
		}
	}
	c.DeleteInBackground(path) // does nothing, and does not panic
	if n := c.PendingDeletes(); n != 0 {
		t.Errorf("PendingDeletes() = %d after Close", n)
	}
}

// closedOps returns every operation of c, for the tests of a closed or unstarted client.
func closedOps(ctx context.Context, c *Client, path string) map[string]func() error {
	return map[string]func() error{
		"Start":               func() error { return c.Start() },
		"BlockUntilConnected": func() error { return c.BlockUntilConnected(ctx) },
		"Get":                 func() error { _, _, err := c.Get(ctx, path); return err },
		"GetW":                func() error { _, _, _, err := c.GetW(ctx, path); return err },
		"Set":                 func() error { _, err := c.Set(ctx, path, []byte("x"), -1); return err },
		"Exists":              func() error { _, _, err := c.Exists(ctx, path); return err },
		"ExistsW":             func() error { _, _, _, err := c.ExistsW(ctx, path); return err },
		"Children":            func() error { _, _, err := c.Children(ctx, path); return err },
		"ChildrenW":           func() error { _, _, _, err := c.ChildrenW(ctx, path); return err },
		"Delete":              func() error { return c.Delete(ctx, path, -1) },
		"DeleteGuaranteed":    func() error { return c.DeleteGuaranteed(ctx, path) },
		"Create":              func() error { _, err := c.Create(ctx, path+"/x", nil, Persistent); return err },
		"Create protected": func() error {
			_, err := c.Create(ctx, path+"/x", nil, EphemeralSequential, WithProtection(), WithParents())
			return err
		},
	}
}

func TestNotStarted(t *testing.T) {
	c, err := NewClient(testServer.ConnectString())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testContext(t, 5*time.Second)
	for name, op := range closedOps(ctx, c, "/x") {
		if name == "Start" {
			continue
		}
		if err := op(); !errors.Is(err, ErrNotStarted) {
			t.Errorf("%s before Start = %v, want ErrNotStarted", name, err)
		}
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err == nil {
		t.Error("second Start = nil, want an error")
	}
	if err := c.BlockUntilConnected(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestCloseDuringOperation closes the client while an operation waits on a partitioned
// connection: the operation returns ErrClosed at once.
func TestCloseDuringOperation(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	c := newClient(t, p.Addr(), nil)
	p.Blackhole(true)
	sent := c.RequestCount()
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.Get(context.Background(), "/")
		errc <- err
	}()
	// The Get goes out on the connection, which does not know yet that it is partitioned.
	eventually(t, 5*time.Second, "the Get to be sent", func() bool { return c.RequestCount() > sent })
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Get cut short by Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Get did not return after Close")
	}
	t.Logf("Close with a partitioned connection took %v", time.Since(start))
}

// TestBlockUntilConnected checks the waits of BlockUntilConnected: a context that ends while the
// server is unreachable, and a Close.
func TestBlockUntilConnected(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	p.Blackhole(true)
	c, err := NewClient(p.Addr(), WithSessionTimeout(testSessionTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := c.BlockUntilConnected(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("BlockUntilConnected with no server = %v, want DeadlineExceeded", err)
	}
	cause := errors.New("shutting down")
	cctx, ccancel := context.WithCancelCause(context.Background())
	ccancel(cause)
	if err := c.BlockUntilConnected(cctx); !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
		t.Errorf("BlockUntilConnected with a cancelled context = %v, want it to match context.Canceled and the cause", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- c.BlockUntilConnected(context.Background()) }()
	c.Close() // before or while BlockUntilConnected waits: either way it must return ErrClosed
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("BlockUntilConnected cut short by Close = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("BlockUntilConnected did not return after Close")
	}
}

// TestContextCause checks that an operation whose context ends returns an error that matches
// both the context's error and its cause.
func TestContextCause(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	cause := errors.New("shutting down")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	_, _, err := c.Get(ctx, "/")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
		t.Errorf("Get with a cancelled context = %v, want it to match context.Canceled and the cause", err)
	}
	if _, err := c.Create(ctx, testPath(t), nil, EphemeralSequential, WithProtection()); !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
		t.Errorf("protected Create with a cancelled context = %v, want it to match context.Canceled and the cause", err)
	}
}
