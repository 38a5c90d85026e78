package zktest_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/zktest"
)

// roundTrip times one Exists through c.
func roundTrip(t *testing.T, c *client) time.Duration {
	t.Helper()
	begin := time.Now()
	if _, _, err := c.Exists("/"); err != nil {
		t.Fatalf("Exists: %v", err)
	}
	return time.Since(begin)
}

func TestProxyDelay(t *testing.T) {
	t.Parallel()
	s := zktest.Start(t)
	p := s.Proxy(t)
	c := connect(t, p.Addr())
	const d = 300 * time.Millisecond
	for _, tc := range []struct {
		dirs     zktest.Direction
		d        time.Duration
		min, max time.Duration // bounds of one round trip
	}{
		{zktest.ToServer, d, d, 2*d - 50*time.Millisecond},
		{zktest.ToClient, d, d, 2*d - 50*time.Millisecond},
		{zktest.ToServer | zktest.ToClient, d, 2 * d, 3 * d},
		{zktest.ToServer | zktest.ToClient, 0, 0, d - 50*time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%v=%v", tc.dirs, tc.d), func(t *testing.T) {
			p.Delay(zktest.ToServer|zktest.ToClient, 0)
			p.Delay(tc.dirs, tc.d)
			for range 3 {
				if rt := roundTrip(t, c); rt < tc.min || rt > tc.max {
					t.Errorf("round trip took %v; want from %v to %v", rt, tc.min, tc.max)
				}
			}
		})
	}
}

// TestProxyDelayKeepsOrder sends numbered messages through a proxy to an
// echo server while the delay changes, down to 0 at last: they come back in
// order, and none sooner than its delay allows.
func TestProxyDelayKeepsOrder(t *testing.T) {
	t.Parallel()
	p, err := zktest.NewProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	conn, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 30
	sent := make([]time.Time, n)
	delays := make([]time.Duration, n)
	go func() {
		for i := range n {
			delays[i] = []time.Duration{200 * time.Millisecond, 50 * time.Millisecond, 0}[i*3/n]
			p.Delay(zktest.ToServer, delays[i])
			sent[i] = time.Now()
			if _, err := fmt.Fprintf(conn, "%04d", i); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	conn.SetDeadline(time.Now().Add(waitTimeout))
	buf := make([]byte, 4)
	for i := range n {
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.Fatalf("reading message %d: %v", i, err)
		}
		got := time.Now()
		if want := fmt.Sprintf("%04d", i); string(buf) != want {
			t.Fatalf("message %d came back as %q; want %q (out of order)", i, buf, want)
		}
		if took := got.Sub(sent[i]); took < delays[i] {
			t.Errorf("message %d came back after %v; want at least its delay %v", i, took, delays[i])
		}
	}
}

// TestProxyHoldNextReply holds the reply to each kind of request, and then
// delivers it or drops the connection. Only the reply to the first request
// of the armed kind is held; the server performs the request meanwhile.
func TestProxyHoldNextReply(t *testing.T) {
	t.Parallel()
	s := zktest.Start(t)
	direct := connect(t, s.ConnectString())
	acl := zk.WorldACL(zk.PermAll)
	root := s.Root() + "/hold"
	if _, err := direct.Create(root, nil, zk.FlagPersistent, acl); err != nil {
		t.Fatal(err)
	}
	// hold is shorter than two thirds of the session timeout, after which
	// the client would give up the connection on its own.
	const hold = 600 * time.Millisecond
	for _, tc := range []struct {
		op     zktest.Op
		do     func(c *client, path string) error
		effect func(path string) bool // the server performed the request
	}{
		{zktest.OpCreate, func(c *client, path string) error {
			_, err := c.Create(path+"/new", []byte("x"), zk.FlagPersistent, acl)
			return err
		}, func(path string) bool { ok, _, _ := direct.Exists(path + "/new"); return ok }},
		{zktest.OpDelete, func(c *client, path string) error { return c.Delete(path, -1) },
			func(path string) bool { ok, _, _ := direct.Exists(path); return !ok }},
		{zktest.OpSetData, func(c *client, path string) error {
			_, err := c.Set(path, []byte("set"), -1)
			return err
		}, func(path string) bool { b, _, _ := direct.Get(path); return string(b) == "set" }},
		{zktest.OpGetData, func(c *client, path string) error { _, _, err := c.Get(path); return err }, nil},
		{zktest.OpExists, func(c *client, path string) error { _, _, err := c.Exists(path); return err }, nil},
		{zktest.OpGetChildren, func(c *client, path string) error { _, _, err := c.Children(path); return err }, nil},
		{zktest.OpGetChildren, func(c *client, path string) error { _, _, _, err := c.ChildrenW(path); return err }, nil},
	} {
		for _, mode := range []zktest.HoldMode{zktest.Deliver, zktest.Drop} {
			name := fmt.Sprintf("%v/%v", tc.op, mode)
			t.Run(name, func(t *testing.T) {
				path := root + "/" + strings.ReplaceAll(name, "/", "-") + fmt.Sprint(time.Now().UnixNano())
				if _, err := direct.Create(path, nil, zk.FlagPersistent, acl); err != nil {
					t.Fatal(err)
				}
				p := s.Proxy(t)
				c := connect(t, p.Addr())
				sid := c.SessionID()
				started := p.HoldNextReply(tc.op, hold, mode)
				// A request of another kind passes.
				other := zktest.OpSync
				if _, err := c.Sync(path); err != nil {
					t.Fatalf("%v with a hold of %v armed: %v", other, tc.op, err)
				}
				select {
				case <-started:
					t.Fatalf("hold started on a request of another kind")
				default:
				}
				mark := c.mark()
				begin := time.Now()
				done := make(chan error, 1)
				go func() { done <- tc.do(c, path) }()
				select {
				case <-started:
				case <-time.After(waitTimeout):
					t.Fatal("the hold never started")
				}
				if tc.effect != nil && !tc.effect(path) {
					t.Errorf("the server has not performed the %v once the hold started", tc.op)
				}
				select {
				case err := <-done:
					t.Fatalf("request returned %v after %v, while its reply is held", err, time.Since(begin))
				case <-time.After(hold / 2):
				}
				var err error
				select {
				case err = <-done:
				case <-time.After(waitTimeout):
					t.Fatal("request never returned")
				}
				took := time.Since(begin)
				if took < hold {
					t.Errorf("request returned after %v; want at least the hold %v", took, hold)
				}
				switch mode {
				case zktest.Deliver:
					if err != nil {
						t.Errorf("request = %v; want success once delivered", err)
					}
				case zktest.Drop:
					if !errors.Is(err, zk.ErrConnectionClosed) {
						t.Errorf("request = %v; want %v", err, zk.ErrConnectionClosed)
					}
					c.waitFor(mark, zk.StateHasSession)
					if c.SessionID() != sid {
						t.Errorf("session 0x%x after the drop; want the same 0x%x", c.SessionID(), sid)
					}
				}
				// The proxy is disarmed: the same request again is answered at once.
				begin = time.Now()
				tc.do(c, path)
				if took := time.Since(begin); took > hold/2 {
					t.Errorf("the next %v took %v: still held?", tc.op, took)
				}
			})
		}
	}
}

// TestEnsembleProxyHoldNextReply holds one reply, whichever member the
// client is connected to, and then no other: the proxies in front of the
// other members are disarmed too.
func TestEnsembleProxyHoldNextReply(t *testing.T) {
	t.Parallel()
	e := zktest.StartEnsemble(t, 3)
	ep := e.Proxy(t)
	c := connectServers(t, ep.Servers())
	acl := zk.WorldACL(zk.PermAll)
	const hold = 500 * time.Millisecond

	started := ep.HoldNextReply(zktest.OpCreate, hold, zktest.Drop)
	begin := time.Now()
	_, err := c.Create("/held", nil, zk.FlagPersistent, acl)
	if !errors.Is(err, zk.ErrConnectionClosed) {
		t.Fatalf("create with its reply dropped = %v; want %v", err, zk.ErrConnectionClosed)
	}
	if took := time.Since(begin); took < hold {
		t.Errorf("create returned after %v; want at least the hold %v", took, hold)
	}
	select {
	case <-started:
	default:
		t.Fatal("the channel HoldNextReply returned is not closed")
	}
	// No proxy holds anything any more.
	for i := range e.Size() {
		ci := connectServers(t, []string{ep.Proxy(i).Addr()})
		begin := time.Now()
		if _, err := ci.Create(fmt.Sprintf("/after-%d", i), nil, zk.FlagPersistent, acl); err != nil {
			t.Errorf("create through the proxy of member %d after the hold: %v", i, err)
		}
		if took := time.Since(begin); took > hold/2 {
			t.Errorf("create through the proxy of member %d took %v: held?", i, took)
		}
	}
	// Delay reaches every proxy.
	ep.Delay(zktest.ToServer, hold)
	for i := range e.Size() {
		ci := connectServers(t, []string{ep.Proxy(i).Addr()})
		begin := time.Now()
		if _, _, err := ci.Exists("/"); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(begin); took < hold {
			t.Errorf("Exists through the proxy of member %d took %v; want at least the delay %v", i, took, hold)
		}
	}
}
