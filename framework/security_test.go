package framework

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gocurator/curator/internal/testkit/zkenv"

	"github.com/gocurator/curator/retry"
	"github.com/gocurator/curator/zktest"
)

// WithTLS keeps a copy of cfg: later changes to cfg, in place in its CA pool and certificate list
// included, do not apply to the client.
func TestSecurityTLSConfigChangedAfterWithTLS(t *testing.T) {
	s := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{}))
	other, err := zktest.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	connects := func(opt Option) error {
		c, err := NewClient(s.SecureConnectString(), opt, WithSessionTimeout(testSessionTimeout),
			WithConnectionTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.BlockUntilConnected(testContext(t, 3*time.Second))
	}

	t.Run("a CA added to RootCAs after WithTLS is trusted", func(t *testing.T) {
		cfg := s.ClientTLSConfig()
		cfg.RootCAs = other.Pool() // does not trust the server's CA
		opt := WithTLS(cfg)
		cfg.RootCAs.AddCert(s.CA().Certificate()) // a later change, in place
		if err := connects(opt); err == nil {
			t.Error("the client trusts a CA added to cfg.RootCAs after WithTLS: the change applied")
		} else {
			t.Logf("refused as WithTLS promises: %v", err)
		}
	})

	t.Run("a certificate replaced in Certificates after WithTLS is the one sent", func(t *testing.T) {
		cfg := s.ClientTLSConfig()
		opt := WithTLS(cfg)
		stranger, err := other.ClientCertificate("stranger")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates[0] = stranger // a later change, in place
		if err := connects(opt); err != nil {
			t.Errorf("the client sends the certificate put into cfg.Certificates after WithTLS: the change applied: %v", err)
		}
	})
}

// guardDialer dials target and watches every connection: it records a violation when a request
// other than a ping, a credential or a close is written on a connection before the server's
// acceptance of a credential has been read on that connection. It can also cut the next
// credential (the connection drops in its place) or refuse it as the server does (a reply with
// zk.ErrAuthFailed, then the connection closes).
type guardDialer struct {
	target     string
	cut        atomic.Int32
	refuse     atomic.Int32
	cutAfterOK atomic.Int32 // connections to close right after a credential's acceptance is read
	mu         sync.Mutex
	violations []string
	conns      int
	accepted   int
	refused    int
}

func (g *guardDialer) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	target := g.target
	if target == "" {
		target = addr
	}
	conn, err := net.DialTimeout(network, target, timeout)
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.conns++
	id := g.conns
	g.mu.Unlock()
	return &guardConn{Conn: conn, g: g, id: id, auth: map[int32]bool{}}, nil
}

func take(n *atomic.Int32) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

func (g *guardDialer) report() (violations []string, conns, accepted, refused int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.violations), g.conns, g.accepted, g.refused
}

type guardConn struct {
	net.Conn
	g  *guardDialer
	id int

	mu     sync.Mutex
	wrote  bool
	auth   map[int32]bool // xids of credentials written
	authed bool           // a credential's acceptance has been read
	inject []byte         // (the rest of) a refusal to hand to the reader, then EOF
	rbuf   []byte
	rfirst bool // the connect response has been read
}

func (c *guardConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	first := !c.wrote
	c.wrote = true
	c.mu.Unlock()
	if first || len(b) < 12 {
		return c.Conn.Write(b)
	}
	xid := int32(binary.BigEndian.Uint32(b[4:8]))
	op := int32(binary.BigEndian.Uint32(b[8:12]))
	switch op {
	case opSetAuth:
		if take(&c.g.cut) {
			c.Conn.Close()
			return len(b), nil
		}
		if take(&c.g.refuse) {
			reply := make([]byte, 20)
			binary.BigEndian.PutUint32(reply[0:4], 16)
			binary.BigEndian.PutUint32(reply[4:8], uint32(xid))
			binary.BigEndian.PutUint32(reply[16:20], 0xffffff8d) // AUTHFAILED
			c.mu.Lock()
			c.inject = reply
			c.mu.Unlock()
			c.g.mu.Lock()
			c.g.refused++
			c.g.mu.Unlock()
			c.Conn.Close()
			return len(b), nil
		}
		c.mu.Lock()
		c.auth[xid] = true
		c.mu.Unlock()
	case 11, -11: // ping, closeSession
	default:
		c.mu.Lock()
		authed := c.authed
		c.mu.Unlock()
		if !authed {
			c.g.mu.Lock()
			c.g.violations = append(c.g.violations, fmt.Sprintf("connection %d: request op %d (xid %d) written before a credential was accepted on it", c.id, op, xid))
			c.g.mu.Unlock()
		}
	}
	return c.Conn.Write(b)
}

func (c *guardConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.inject) > 0 {
			k := copy(b, c.inject)
			c.inject = c.inject[k:]
			return k, nil
		}
		return n, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rbuf = append(c.rbuf, b[:n]...)
	for len(c.rbuf) >= 4 {
		size := int(binary.BigEndian.Uint32(c.rbuf[:4]))
		if len(c.rbuf) < 4+size {
			break
		}
		pkt := c.rbuf[4 : 4+size]
		if !c.rfirst {
			c.rfirst = true
		} else if len(pkt) >= 16 {
			xid := int32(binary.BigEndian.Uint32(pkt[0:4]))
			code := int32(binary.BigEndian.Uint32(pkt[12:16]))
			if c.auth[xid] && code == 0 {
				if !c.authed {
					c.g.mu.Lock()
					c.g.accepted++
					c.g.mu.Unlock()
				}
				c.authed = true
				if take(&c.g.cutAfterOK) {
					c.Conn.Close() // the reply is delivered; the next read fails
				}
			}
		}
		c.rbuf = c.rbuf[4+size:]
	}
	return n, nil
}

// Credentials go first on every connection, whatever happens around them. A worker keeps making nodes that need the credential (zk.AuthACL, and children of a
// creator-only parent) while the connection is cut, credentials are cut on the way or refused
// then accepted, the server expires the session, and the client presumes the session lost (a
// black hole). On every TCP connection, no request but a ping, a credential or a close may be
// written before the server's acceptance of a credential was read on it; no create may fail with
// zk.ErrNoAuth or zk.ErrInvalidACL.
func TestSecurityCredentialsFirstUnderChaos(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d proxies", n), func(t *testing.T) { credentialsFirstUnderChaos(t, n) })
	}
}

// pair is one or more proxies of the test server, each its own address in the connect string:
// with two, go-zookeeper reconnects at once to the other instead of waiting a second.
type pair []*zktest.Proxy

func (ps pair) addrs() string {
	var a []string
	for _, p := range ps {
		a = append(a, p.Addr())
	}
	return strings.Join(a, ",")
}
func (ps pair) CloseConnections() {
	for _, p := range ps {
		p.CloseConnections()
	}
}
func (ps pair) Blackhole(on bool) {
	for _, p := range ps {
		p.Blackhole(on)
	}
}
func (ps pair) ExpireSession(ctx context.Context, s *zktest.Server, sid int64) error {
	ps[1:].Blackhole(true)
	defer ps[1:].Blackhole(false)
	return ps[0].ExpireSession(ctx, s, sid)
}

func credentialsFirstUnderChaos(t *testing.T, n int) {
	var p pair
	for range n {
		p = append(p, testServer.Proxy(t))
	}
	g := &guardDialer{}
	rec := newRecorder()
	c := startClient(t, p.addrs(), []func(State){rec.listen}, withAlice(), WithDialer(g.dial),
		WithRetryPolicy(retry.UntilElapsed(3*time.Second, 50*time.Millisecond)))
	base := testPath(t)
	if _, err := c.Create(testContext(t, 10*time.Second), base, nil, Persistent, WithParents(), WithNodeACL(creatorAll)); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var (
		wg                    sync.WaitGroup
		mu                    sync.Mutex
		made, authFailed, bad int
		badErrs               []string
	)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				var err error
				if i%2 == 0 {
					_, err = c.Create(ctx, base+"/n-", nil, EphemeralSequential, WithNodeACL(creatorAll))
				} else {
					_, err = c.Create(ctx, base+"/sub/m-", nil, EphemeralSequential, WithParents(), WithProtection())
				}
				cancel()
				mu.Lock()
				switch {
				case err == nil:
					made++
				case errors.Is(err, zk.ErrNoAuth), errors.Is(err, zk.ErrInvalidACL):
					bad++
					badErrs = append(badErrs, err.Error())
				case errors.Is(err, zk.ErrAuthFailed):
					authFailed++
				}
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	sid := func() int64 { return c.SessionID() }
	steps := []struct {
		name string
		do   func()
	}{
		{"reconnect", func() { p.CloseConnections() }},
		{"reconnect, credential cut", func() { g.cut.Store(1); p.CloseConnections() }},
		{"reconnect, credential refused twice then accepted", func() { g.refuse.Store(2); p.CloseConnections() }},
		{"expiry", func() {
			if err := p.ExpireSession(testContext(t, 30*time.Second), testServer, sid()); err != nil {
				t.Error(err)
			}
		}},
		{"black hole past the session timeout, credential cut", func() {
			g.cut.Store(1)
			p.Blackhole(true)
			time.Sleep(testSessionTimeout + 500*time.Millisecond)
			p.Blackhole(false)
		}},
		{"black hole, credential refused then accepted", func() {
			g.refuse.Store(1)
			p.Blackhole(true)
			time.Sleep(testSessionTimeout + 500*time.Millisecond)
			p.Blackhole(false)
		}},
	}
	for round := 0; round < 2; round++ {
		for _, s := range steps {
			from := len(rec.get())
			s.do()
			rec.waitState(t, from, Reconnected, 30*time.Second)
			time.Sleep(300 * time.Millisecond)
			t.Logf("round %d, %s: states so far %v", round, s.name, rec.get()[from:])
		}
	}
	close(stop)
	wg.Wait()

	// Close racing the set-up of a connection.
	for i := 0; i < 3; i++ {
		cc := startClient(t, p.addrs(), nil, withAlice(), WithDialer(g.dial))
		p.CloseConnections()
		time.Sleep(time.Duration(i) * 300 * time.Millisecond)
		cc.Close()
	}

	violations, conns, accepted, refused := g.report()
	t.Logf("%d connections, %d with a credential accepted, %d refusals injected; %d nodes made, %d creates failed with zk.ErrAuthFailed",
		conns, accepted, refused, made, authFailed)
	for _, v := range violations {
		t.Error(v)
	}
	if bad > 0 {
		t.Errorf("%d creates failed for want of the credential: %v", bad, badErrs[:min(3, len(badErrs))])
	}
	if made == 0 {
		t.Error("no node made")
	}
}

// When the server refuses a credential that go-zookeeper re-sends itself after a reconnect of the
// same session, operations fail at once with an error wrapping zk.ErrAuthFailed, a
// BlockUntilConnected whose context ends wraps it too, and the client logs an error, as when the
// client sends the credential itself (go-zookeeper only logs the refusal and closes the
// connection). Here the dialer plays the server's refusal (a reply with zk.ErrAuthFailed, then the
// connection closes, as the server does).
func TestSecurityResentCredentialRefusedIsReported(t *testing.T) {
	p := testServer.Proxy(t)
	g := &guardDialer{target: p.Addr()}
	core, logs := observer.New(zapcore.ErrorLevel)
	const sessionTimeout = 4 * time.Second
	c := startClient(t, p.Addr(), nil, withAlice(), WithDialer(g.dial), WithSessionTimeout(sessionTimeout),
		WithConnectionTimeout(500*time.Millisecond), WithRetryPolicy(retry.NTimes(0, 0)), WithLogger(zap.New(core)))
	g.refuse.Store(1000) // every credential from now on
	start := time.Now()
	p.CloseConnections()
	// go-zookeeper reconnects and re-sends the credential, the server refuses it: the client
	// logs that as an error.
	eventually(t, 10*time.Second, "the refusal of the re-sent credential to be logged", func() bool { return logs.Len() > 0 })

	opStart := time.Now()
	_, _, err := c.Exists(testContext(t, 10*time.Second), "/")
	opTook := time.Since(opStart)
	bucErr := c.BlockUntilConnected(testContext(t, 300*time.Millisecond))
	_, _, _, refused := g.report()
	t.Logf("%v after the cut, %d refusals: Exists (took %v) = %v; BlockUntilConnected = %v; state %v; %d errors logged",
		time.Since(start).Round(time.Millisecond), refused, opTook.Round(time.Millisecond), err, bucErr, c.State(), logs.Len())
	if refused == 0 {
		t.Fatal("no credential was refused: the test did not work")
	}
	if !errors.Is(err, zk.ErrAuthFailed) || opTook > 200*time.Millisecond {
		t.Errorf("an operation after the server refused the re-sent credential: %v after %v; want zk.ErrAuthFailed at once", err, opTook)
	}
	if !errors.Is(bucErr, zk.ErrAuthFailed) {
		t.Errorf("BlockUntilConnected = %v; want it to wrap zk.ErrAuthFailed", bucErr)
	}
	if logs.Len() == 0 {
		t.Error("no error logged for the refused credential")
	}
	// A session timeout later, the client presumes the session lost, opens a new one, sends the
	// credential itself, and only then reports the refusal.
	eventually(t, 2*sessionTimeout, "zk.ErrAuthFailed from an operation", func() bool {
		_, _, err := c.Exists(testContext(t, time.Second), "/")
		t.Logf("%v: state %v, Exists = %v", time.Since(start).Round(time.Millisecond), c.State(), err)
		time.Sleep(400 * time.Millisecond)
		return errors.Is(err, zk.ErrAuthFailed)
	})
	t.Logf("zk.ErrAuthFailed reported %v after the connection was cut", time.Since(start).Round(time.Millisecond))
}

// The same with the refusal made by the server itself: a client authenticates with the x509
// scheme (its TLS client certificate) on a server that wants, but does not need, a certificate.
// After a reconnect its GetClientCertificate has no certificate any more (a rotation gone wrong),
// so the server refuses the credential that go-zookeeper re-sends.
func TestSecurityResentCredentialRefusedByServer(t *testing.T) {
	s := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{ClientAuth: zktest.ClientAuthWant}))
	cfg := s.ClientTLSConfig()
	cert := cfg.Certificates[0]
	cfg.Certificates = nil
	var rotated atomic.Bool
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if rotated.Load() {
			return &tls.Certificate{}, nil
		}
		return &cert, nil
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	dial := func(network, address string, timeout time.Duration) (net.Conn, error) {
		conn, err := net.DialTimeout(network, address, timeout)
		if err == nil {
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
		return conn, err
	}
	core, logs := observer.New(zapcore.ErrorLevel)
	const sessionTimeout = 4 * time.Second
	c := startClient(t, s.SecureConnectString(), nil, WithTLS(cfg), WithDialer(dial), WithAuth("x509", []byte("cert")),
		WithSessionTimeout(sessionTimeout), WithConnectionTimeout(500*time.Millisecond), WithRetryPolicy(retry.NTimes(0, 0)),
		WithLogger(zap.New(core)))
	if _, _, err := c.Exists(testContext(t, 5*time.Second), "/"); err != nil {
		t.Fatal(err)
	}
	rotated.Store(true)
	start := time.Now()
	mu.Lock()
	for _, conn := range conns {
		conn.Close()
	}
	mu.Unlock()
	// go-zookeeper reconnects and re-sends the credential, the server refuses it: the client
	// logs that as an error.
	eventually(t, 10*time.Second, "the refusal of the re-sent credential to be logged", func() bool { return logs.Len() > 0 })

	opStart := time.Now()
	_, _, err := c.Exists(testContext(t, 10*time.Second), "/")
	opTook := time.Since(opStart)
	t.Logf("Exists after %v (took %v) = %v; state %v; %d errors logged", time.Since(start).Round(time.Millisecond),
		opTook.Round(time.Millisecond), err, c.State(), logs.Len())
	if !errors.Is(err, zk.ErrAuthFailed) || opTook > 200*time.Millisecond {
		t.Errorf("an operation after the server refused the re-sent credential: %v after %v; want zk.ErrAuthFailed at once", err, opTook)
	}
	eventually(t, 3*sessionTimeout, "zk.ErrAuthFailed from an operation", func() bool {
		_, _, err := c.Exists(testContext(t, time.Second), "/")
		time.Sleep(200 * time.Millisecond)
		return errors.Is(err, zk.ErrAuthFailed)
	})
	t.Logf("zk.ErrAuthFailed reported %v after the connection was cut", time.Since(start).Round(time.Millisecond))
}

// tlsTerminator serves TLS with cert on a port of 127.0.0.1 of its own and forwards each
// connection, in clear, to the test server: a ZooKeeper behind a certificate of the test's choice.
func tlsTerminator(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	return zkenv.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		up, err := net.Dial("tcp", testServer.Addr())
		if err != nil {
			return
		}
		sent := make(chan struct{})
		go func() { defer close(sent); io.Copy(up, c); up.Close() }()
		io.Copy(c, up)
		c.Close()
		<-sent
	})
}

// The client checks the server's certificate against the host it dials (an IP address or a name),
// or ServerName, and against RootCAs.
func TestSecurityTLSChecksWhatItClaims(t *testing.T) {
	ca, err := zktest.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := zktest.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(ca *zktest.CA, hosts ...string) tls.Certificate {
		c, err := ca.ServerCertificate(hosts...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	nameOnly := tlsTerminator(t, issue(ca, "zk.example.com"))
	ipOnly := tlsTerminator(t, issue(ca, "127.0.0.1"))
	foreign := tlsTerminator(t, issue(other, "127.0.0.1", "localhost"))
	_, ipOnlyPort, _ := net.SplitHostPort(ipOnly)
	tests := []struct {
		name       string
		addr       string
		serverName string
		roots      *x509.CertPool
		ok         bool
	}{
		{"IP connect string, certificate for a name only", nameOnly, "", ca.Pool(), false},
		{"IP connect string, ServerName the certificate's name", nameOnly, "zk.example.com", ca.Pool(), true},
		{"IP connect string, ServerName another name", ipOnly, "zk.example.com", ca.Pool(), false},
		{"IP connect string, certificate for that IP", ipOnly, "", ca.Pool(), true},
		{"name connect string, certificate for the IP only", net.JoinHostPort("localhost", ipOnlyPort), "", ca.Pool(), false},
		{"certificate of a CA not in RootCAs", foreign, "", ca.Pool(), false},
		{"system roots (RootCAs nil)", ipOnly, "", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.addr, WithTLS(&tls.Config{RootCAs: tt.roots, ServerName: tt.serverName}),
				WithSessionTimeout(testSessionTimeout), WithConnectionTimeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = c.BlockUntilConnected(testContext(t, 3*time.Second))
			t.Logf("%v", err)
			if (err == nil) != tt.ok {
				t.Errorf("connected: %v, want %v", err == nil, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrTLSHandshake) {
				t.Errorf("error does not wrap ErrTLSHandshake: %v", err)
			}
		})
	}
}

// Odd input to the security options and to the ACL provider gives errors, never a panic.
func TestSecurityOddSecurityInput(t *testing.T) {
	s := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{PlainPort: true}))
	for _, tt := range []struct {
		name string
		opts []Option
	}{
		{"WithAuth digest nil", []Option{WithAuth("digest", nil)}},
		{"WithAuth empty scheme", []Option{WithAuth("", []byte("x"))}},
		{"WithAuth binary scheme", []Option{WithAuth("\x00\xff", []byte{0, 1, 2})}},
		{"WithAuth x509 nil on a plain port", []Option{WithAuth("x509", nil)}},
		{"WithAuth ip nil", []Option{WithAuth("ip", nil)}},
		{"WithACL nil", []Option{WithACL(nil)}},
		{"WithACL zero entry", []Option{WithACL([]zk.ACL{{}})}},
		{"WithACL digest of a colon", []Option{WithACL([]zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: ":"}})}},
		{"WithACLProvider nil", []Option{WithACLProvider(nil)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(s.ConnectString(), append(tt.opts, WithSessionTimeout(testSessionTimeout), WithConnectionTimeout(time.Second),
				WithRetryPolicy(retry.NTimes(1, 10*time.Millisecond)))...)
			if err != nil {
				t.Logf("NewClient: %v", err)
				return
			}
			defer c.Close()
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			_, err = c.Create(testContext(t, 3*time.Second), "/security-odd/x", nil, Ephemeral, WithParents())
			t.Logf("Create: %v", err)
		})
	}
	providers := map[string]func(string) []zk.ACL{
		"nil":          func(string) []zk.ACL { return nil },
		"empty":        func(string) []zk.ACL { return []zk.ACL{} },
		"zero entry":   func(string) []zk.ACL { return []zk.ACL{{}} },
		"world nobody": func(string) []zk.ACL { return []zk.ACL{{Perms: zk.PermAll, Scheme: "world", ID: "nobody"}} },
		"unknown scheme": func(string) []zk.ACL {
			return []zk.ACL{{Perms: zk.PermAll, Scheme: "nosuch", ID: "x"}}
		},
		"auth without credentials": func(string) []zk.ACL { return zk.AuthACL(zk.PermAll) },
		"huge": func(string) []zk.ACL {
			acl := make([]zk.ACL, 50000)
			for i := range acl {
				acl[i] = zk.ACL{Perms: zk.PermRead, Scheme: "ip", ID: "10.0.0.1"}
			}
			return acl
		},
	}
	for name, p := range providers {
		t.Run("provider "+name, func(t *testing.T) {
			c := newClient(t, "", nil, WithACLProvider(p), WithRetryPolicy(retry.NTimes(1, 10*time.Millisecond)))
			for _, call := range []func() error{
				func() error {
					_, err := c.Create(testContext(t, 3*time.Second), testPath(t)+"/a/b", nil, Persistent, WithParents())
					return err
				},
				func() error {
					_, err := c.Create(testContext(t, 3*time.Second), testPath(t)+"/p", nil, EphemeralSequential, WithParents(), WithProtection())
					return err
				},
				func() error {
					_, err := c.Multi(testContext(t, 3*time.Second), CreateOp(testPath(t), nil, Persistent))
					return err
				},
			} {
				t.Logf("%v", call())
			}
		})
	}
}

// Odd client certificates give a handshake error, never a panic.
func TestSecurityOddTLSInput(t *testing.T) {
	s := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{}))
	base := s.ClientTLSConfig()
	for name, change := range map[string]func(*tls.Config){
		"empty certificate":       func(c *tls.Config) { c.Certificates = []tls.Certificate{{}} },
		"certificate without key": func(c *tls.Config) { c.Certificates[0].PrivateKey = nil },
		"certificate of garbage":  func(c *tls.Config) { c.Certificates = []tls.Certificate{{Certificate: [][]byte{{1, 2, 3}}}} },
		"GetClientCertificate nil, nil": func(c *tls.Config) {
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return nil, nil }
		},
		"GetClientCertificate error": func(c *tls.Config) {
			c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return nil, errors.New("no cert here") }
		},
		"empty config": func(c *tls.Config) { *c = tls.Config{} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := base.Clone()
			cfg.Certificates = slices.Clone(cfg.Certificates)
			change(cfg)
			c, err := NewClient(s.SecureConnectString(), WithTLS(cfg), WithSessionTimeout(testSessionTimeout), WithConnectionTimeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				start := time.Now()
				c.Close()
				if took := time.Since(start); took > time.Second {
					t.Logf("Close took %v", took)
				}
			}()
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err = c.BlockUntilConnected(testContext(t, 2*time.Second))
			t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if err == nil || !errors.Is(err, ErrTLSHandshake) {
				t.Errorf("BlockUntilConnected = %v, want ErrTLSHandshake", err)
			}
		})
	}
}

// The narrowest window: the connection drops right after the server's acceptance of a credential
// is read, again and again, with an immediate reconnect (two addresses of the server) and busy
// CPUs. go-zookeeper records a credential for re-sending only after
// AddAuth returns, and the client marks it accepted after that: if the reconnect's re-sending
// runs in between, and the new connection's set-up then finds the credential accepted, nothing
// sends it on the new connection.
func TestSecurityCredentialAcceptedAsConnectionDrops(t *testing.T) {
	g := &guardDialer{}
	addrs := testServer.Addr() + "," + strings.Replace(testServer.Addr(), "127.0.0.1", "localhost", 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 100000; i++ {
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	const rounds = 150
	for i := 0; i < rounds; i++ {
		g.cutAfterOK.Store(1) // the first connection drops as the client's own AddAuth is answered
		c, err := NewClient(addrs, withAlice(), WithDialer(g.dial), WithSessionTimeout(4*time.Second),
			WithRetryPolicy(retry.UntilElapsed(10*time.Second, 20*time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		_, err = c.Create(testContext(t, 10*time.Second), testPath(t), nil, Ephemeral, WithNodeACL(creatorAll))
		c.Close()
		if errors.Is(err, zk.ErrNoAuth) || errors.Is(err, zk.ErrInvalidACL) {
			t.Errorf("round %d: %v", i, err)
		}
		if v, _, _, _ := g.report(); len(v) > 0 {
			break
		}
	}
	violations, conns, accepted, _ := g.report()
	t.Logf("%d connections, %d with a credential accepted", conns, accepted)
	for _, v := range violations {
		t.Error(v)
	}
}

// Credentials too large for any request the server accepts are refused by NewClient, not retried
// silently for ever.
func TestHugeCredentialRefused(t *testing.T) {
	for _, n := range []int{1200 << 10, 2 << 20} {
		_, err := NewClient("127.0.0.1:2181", WithAuth("digest", []byte("alice:"+strings.Repeat("x", n))))
		if !errors.Is(err, ErrInvalidArgument) || !errors.Is(err, ErrRequestTooLarge) {
			t.Errorf("NewClient with %d bytes of credentials: %v; want ErrInvalidArgument and ErrRequestTooLarge", n, err)
		}
	}
}
