package zktest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/internal/testkit/zkenv"
	"github.com/gocurator/curator/zktest"
)

func TestProxyForwards(t *testing.T) {
	t.Parallel()
	s, p, c := proxiedClient(t)
	path := s.Root() + "/via-proxy"
	if _, err := c.Create(path, []byte("hello"), zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	got, _, err := c.Get(path)
	if err != nil || string(got) != "hello" {
		t.Fatalf("Get(%s) = %q, %v; want \"hello\"", path, got, err)
	}
	// Traffic that is not a ZooKeeper session passes too.
	if reply := fourLetterVia(t, p.Addr(), "ruok"); reply != "imok" {
		t.Errorf("ruok through the proxy = %q; want \"imok\"", reply)
	}
}

// proxiedClient starts a server of the test's own, a proxy to it, and a client through the proxy,
// all stopped when the test ends.
func proxiedClient(t *testing.T) (*zktest.Server, *zktest.Proxy, *client) {
	t.Helper()
	s := zktest.Start(t)
	p := s.Proxy(t)
	return s, p, connect(t, p.Addr())
}

// expireThrough expires session sid of s with p.ExpireSession, allowing it 30s; the test stops if
// that fails.
func expireThrough(t *testing.T, p *zktest.Proxy, s *zktest.Server, sid int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.ExpireSession(ctx, s, sid); err != nil {
		t.Fatalf("ExpireSession: %v", err)
	}
}

func fourLetterVia(t *testing.T, addr, cmd string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, cmd); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProxyCloseConnections(t *testing.T) {
	t.Parallel()
	_, p, c := proxiedClient(t)
	sid := c.SessionID()

	mark := c.mark()
	begin := time.Now()
	p.CloseConnections()
	disc, i := c.waitFor(mark, zk.StateDisconnected)
	back, _ := c.waitFor(i, zk.StateHasSession)
	t.Logf("client saw StateDisconnected after %v and had its session back after %v; events:%s",
		disc.at.Sub(begin), back.at.Sub(begin), c.history(mark))
	if c.SessionID() != sid {
		t.Errorf("session 0x%x after reconnecting; want the same session 0x%x", c.SessionID(), sid)
	}
	if _, _, err := c.Exists("/"); err != nil {
		t.Errorf("Exists after reconnecting: %v", err)
	}
}

func TestProxyExpireSession(t *testing.T) {
	t.Parallel()
	s, p, c := proxiedClient(t)
	direct := connect(t, s.ConnectString())
	sid := c.SessionID()
	path := s.Root() + "/ephemeral"
	if _, err := c.Create(path, nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}

	mark := c.mark()
	begin := time.Now()
	expireThrough(t, p, s, sid)
	expiredAt := time.Since(begin)
	// The server has expired the session: its ephemeral node is gone.
	if ok, _, err := direct.Exists(path); err != nil || ok {
		t.Errorf("Exists(%s) after ExpireSession = %v, %v; want false", path, ok, err)
	}
	exp, i := c.waitFor(mark, zk.StateExpired)
	back, _ := c.waitFor(i, zk.StateHasSession)
	t.Logf("ExpireSession returned after %v; client saw StateExpired after %v and had a new session after %v; events:%s",
		expiredAt, exp.at.Sub(begin), back.at.Sub(begin), c.history(mark))
	if c.SessionID() == sid || c.SessionID() == 0 {
		t.Errorf("session 0x%x after expiry; want a new one (old 0x%x)", c.SessionID(), sid)
	}
	if _, _, err := c.Exists("/"); err != nil {
		t.Errorf("Exists with the new session: %v", err)
	}
}

// TestProxyExpireSessionWhileDisconnected expires a session whose client is
// between connections, so that the server does not list it.
func TestProxyExpireSessionWhileDisconnected(t *testing.T) {
	t.Parallel()
	s, p, c := proxiedClient(t)
	sid := c.SessionID()
	mark := c.mark()
	p.CloseConnections()
	c.waitFor(mark, zk.StateDisconnected)

	expireThrough(t, p, s, sid)
	_, i := c.waitFor(mark, zk.StateExpired)
	c.waitFor(i, zk.StateHasSession)
	if c.SessionID() == sid {
		t.Errorf("client kept session 0x%x", sid)
	}
}

func TestProxyExpireSessionHonoursContext(t *testing.T) {
	t.Parallel()
	s := zktest.Start(t)
	p := s.Proxy(t)
	c := connect(t, s.Addr()) // not through the proxy: it never expires
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := p.ExpireSession(ctx, s, c.SessionID()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("ExpireSession = %v; want context.DeadlineExceeded", err)
	}
	if _, _, err := c.Exists("/"); err != nil {
		t.Errorf("direct client: %v", err)
	}
	// The proxy forwards again.
	c2 := connect(t, p.Addr())
	if _, _, err := c2.Exists("/"); err != nil {
		t.Errorf("client through the proxy: %v", err)
	}
}

func TestProxyCutAfterNextCreate(t *testing.T) {
	t.Parallel()
	s, p, c := proxiedClient(t)
	direct := connect(t, s.ConnectString())
	sid := c.SessionID()
	acl := zk.WorldACL(zk.PermAll)

	for _, tc := range []struct {
		name   string
		create func(path string) error
	}{
		{"create", func(path string) error {
			_, err := c.Create(path, []byte("x"), zk.FlagPersistent, acl)
			return err
		}},
		{"createContainer", func(path string) error {
			_, err := c.CreateContainer(path, nil, zk.FlagContainer, acl)
			return err
		}},
		{"createTTL", func(path string) error {
			_, err := c.CreateTTL(path, nil, zk.FlagTTL, acl, time.Hour)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := s.Root() + "/cut-" + tc.name
			cut := p.CutAfterNextCreate()
			// Requests other than creates pass.
			if _, _, err := c.Exists("/"); err != nil {
				t.Fatalf("Exists with the proxy armed: %v", err)
			}
			mark := c.mark()
			err := tc.create(path)
			if !errors.Is(err, zk.ErrConnectionClosed) {
				t.Fatalf("create through the cutting proxy = %v; want %v", err, zk.ErrConnectionClosed)
			}
			select {
			case <-cut:
			case <-time.After(waitTimeout):
				t.Fatal("the channel CutAfterNextCreate returned was not closed")
			}
			if ok, _, err := direct.Exists(path); err != nil || !ok {
				t.Fatalf("Exists(%s) on the server = %v, %v; want true", path, ok, err)
			}
			c.waitFor(mark, zk.StateHasSession)
			if c.SessionID() != sid {
				t.Errorf("session 0x%x after the cut; want the same session 0x%x", c.SessionID(), sid)
			}
			// The proxy is disarmed: the next create goes through.
			if _, err := c.Create(path+"-after", nil, zk.FlagPersistent, acl); err != nil {
				t.Errorf("create after the cut: %v", err)
			}
		})
	}
}

// echoServer runs a TCP server that echoes what it receives, until the
// test ends.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return zkenv.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})
}

// echo writes msg to conn and reads the echo.
func echo(conn net.Conn, msg string) (string, error) {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, msg); err != nil {
		return "", err
	}
	b := make([]byte, len(msg))
	_, err := io.ReadFull(conn, b)
	return string(b), err
}

func TestProxyBlackhole(t *testing.T) {
	t.Parallel()
	p, err := zktest.NewProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	old, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if got, err := echo(old, "hello"); err != nil || got != "hello" {
		t.Fatalf("echo through the proxy = %q, %v", got, err)
	}

	p.Blackhole(true)

	// A new connection is closed at once.
	fresh, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	fresh.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := fresh.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Errorf("read from a connection made during black-hole mode = %d, %v; want EOF or reset", n, err)
	}
	fresh.Close()

	// The old connection stays open, but nothing gets through.
	if _, err := io.WriteString(old, "lost"); err != nil {
		t.Fatal(err)
	}
	old.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := old.Read(make([]byte, 4)); !isTimeout(err) {
		t.Fatalf("read during black-hole mode = %d, %v; want a timeout", n, err)
	}

	// Turning it off closes the old connection and forwards new ones.
	p.Blackhole(false)
	old.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := old.Read(make([]byte, 4)); err == nil || isTimeout(err) {
		t.Fatalf("read after black-hole mode = %d, %v; want EOF or reset", n, err)
	}
	again, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if got, err := echo(again, "again"); err != nil || got != "again" {
		t.Fatalf("echo after black-hole mode = %q, %v", got, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestProxySetTarget(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.ReadFull(c, make([]byte, 4))
		io.WriteString(c, "other")
		c.Close()
	}()
	defer func() {
		ln.Close()
		<-served
	}()

	s := zktest.Start(t)
	p, err := zktest.NewProxy(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if reply := fourLetterVia(t, p.Addr(), "ruok"); reply != "imok" {
		t.Fatalf("ruok through the proxy = %q; want \"imok\"", reply)
	}
	p.SetTarget(ln.Addr().String())
	if reply := fourLetterVia(t, p.Addr(), "ruok"); reply != "other" {
		t.Fatalf("reply through the retargeted proxy = %q; want \"other\"", reply)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Error("the closed proxy accepts connections")
	}
}
