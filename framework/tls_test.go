package framework

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gocurator/curator/retry"
	"github.com/gocurator/curator/zktest"
)

func TestWithTLSNil(t *testing.T) {
	_, err := NewClient("127.0.0.1:2181", WithTLS(nil))
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "TLS config is nil") {
		t.Fatalf("NewClient with WithTLS(nil): %v; want ErrInvalidArgument naming the nil TLS config", err)
	}
}

// countingDialer returns a dialer that counts its dials.
func countingDialer(n *atomic.Int32) zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		n.Add(1)
		return net.DialTimeout(network, address, timeout)
	}
}

// checkReadWrite creates, reads and deletes a node, and takes and lets go of a lock node (an
// ephemeral sequential node made in protected mode, as a lock recipe does) through c.
func checkReadWrite(t *testing.T, c *Client) {
	t.Helper()
	ctx := testContext(t, 20*time.Second)
	p := testPath(t)
	if _, err := c.Create(ctx, p, []byte("over TLS"), Persistent, WithParents()); err != nil {
		t.Fatal(err)
	}
	data, _, err := c.Get(ctx, p)
	if err != nil || string(data) != "over TLS" {
		t.Fatalf("Get(%s) = %q, %v", p, data, err)
	}
	lock, err := c.Create(ctx, p+"/locks/lock-", nil, EphemeralSequential, WithProtection(), WithParents())
	if err != nil {
		t.Fatal(err)
	}
	if lock.SessionID != c.SessionID() {
		t.Errorf("lock node's session 0x%x, want the client's 0x%x", lock.SessionID, c.SessionID())
	}
	if names, _, err := c.Children(ctx, p+"/locks"); err != nil || len(names) != 1 {
		t.Fatalf("Children(%s/locks) = %v, %v; want the lock node", p, names, err)
	}
	if err := c.Delete(ctx, lock.Path, -1); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, p+"/locks", -1); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, p, -1); err != nil {
		t.Fatal(err)
	}
}

func TestTLSConnect(t *testing.T) {
	mutual := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{}))
	serverOnly := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{ClientAuth: zktest.ClientAuthNone}))
	port := func(s *zktest.Server) string {
		_, p, _ := net.SplitHostPort(s.SecureServers()[0])
		return p
	}
	var dials atomic.Int32
	tests := []struct {
		name    string
		addr    string
		cfg     func() *tls.Config
		opts    []Option
		checkFn func(t *testing.T)
	}{
		{name: "mutual TLS", addr: mutual.SecureConnectString(), cfg: mutual.ClientTLSConfig},
		{name: "mutual TLS 1.2", addr: mutual.SecureConnectString(), cfg: func() *tls.Config {
			cfg := mutual.ClientTLSConfig()
			cfg.MaxVersion = tls.VersionTLS12
			return cfg
		}},
		{name: "client certificate from GetClientCertificate", addr: mutual.SecureConnectString(), cfg: func() *tls.Config {
			cfg := mutual.ClientTLSConfig()
			cert := cfg.Certificates[0]
			cfg.Certificates = nil
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			return cfg
		}},
		{name: "server authentication only", addr: serverOnly.SecureConnectString(), cfg: func() *tls.Config {
			cfg := serverOnly.ClientTLSConfig()
			cfg.Certificates = nil
			return cfg
		}},
		{name: "server name localhost from the connect string", addr: "localhost:" + port(mutual), cfg: mutual.ClientTLSConfig},
		{name: "server name set", addr: mutual.SecureConnectString(), cfg: func() *tls.Config {
			cfg := mutual.ClientTLSConfig()
			cfg.ServerName = "localhost"
			return cfg
		}},
		{name: "over a dialer of WithDialer", addr: mutual.SecureConnectString(), cfg: mutual.ClientTLSConfig,
			opts: []Option{WithDialer(countingDialer(&dials))},
			checkFn: func(t *testing.T) {
				if dials.Load() == 0 {
					t.Error("the dialer of WithDialer was not used")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.addr, nil, append([]Option{WithTLS(tt.cfg())}, tt.opts...)...)
			checkReadWrite(t, c)
			if tt.checkFn != nil {
				tt.checkFn(t)
			}
		})
	}
}

// TestTLSConfigCopied checks that WithTLS keeps a copy of the config, so that a change the caller
// makes later does not apply.
func TestTLSConfigCopied(t *testing.T) {
	s := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{}))
	cfg := s.ClientTLSConfig()
	opt := WithTLS(cfg)
	cfg.RootCAs = x509.NewCertPool() // trusts nothing
	c := newClient(t, s.SecureConnectString(), nil, opt)
	checkReadWrite(t, c)
}

func TestTLSRefused(t *testing.T) {
	s := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{PlainPort: true}))
	other, err := zktest.NewCA("other CA")
	if err != nil {
		t.Fatal(err)
	}
	with := func(change func(*tls.Config)) *tls.Config {
		cfg := s.ClientTLSConfig()
		change(cfg)
		return cfg
	}
	noCert := func(cfg *tls.Config) { cfg.Certificates = nil }
	intruder, err := zktest.ForeignClientCertificate("intruder")
	if err != nil {
		t.Fatal(err)
	}
	foreign := func(cfg *tls.Config) { cfg.Certificates = []tls.Certificate{intruder} }
	foreignFunc := func(cfg *tls.Config) {
		cfg.Certificates = nil
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &intruder, nil }
	}
	tls12 := func(change func(*tls.Config)) func(*tls.Config) {
		return func(cfg *tls.Config) { change(cfg); cfg.MaxVersion = tls.VersionTLS12 }
	}
	tests := []struct {
		name    string
		addr    string
		cfg     *tls.Config // nil: a plain client
		tlsErr  bool        // the error wraps ErrTLSHandshake
		says    []string    // the error's text holds these
		errIs   error       // and wraps this too, if not nil
		errAsFn func(error) bool
	}{
		{name: "no client certificate", addr: s.SecureConnectString(), cfg: with(noCert), tlsErr: true,
			says: []string{"remote error: tls: bad certificate", "asked for a client certificate and none was given"}},
		{name: "no client certificate, TLS 1.2", addr: s.SecureConnectString(), cfg: with(tls12(noCert)), tlsErr: true,
			says: []string{"remote error: tls: bad certificate", "asked for a client certificate and none was given"}},
		// The server names the CAs it trusts: crypto/tls sends no certificate of another.
		{name: "client certificate of another CA", addr: s.SecureConnectString(), cfg: with(foreign), tlsErr: true,
			says: []string{"remote error: tls: bad certificate", "asked for a client certificate issued by CN=zktest CA",
				"none of tls.Config.Certificates suiting it (CN=intruder,O=zktest, issued by CN=foreign CA"}},
		{name: "client certificate of another CA, TLS 1.2", addr: s.SecureConnectString(), cfg: with(tls12(foreign)), tlsErr: true,
			says: []string{"remote error: tls: bad certificate", "none of tls.Config.Certificates suiting it (CN=intruder"}},
		// GetClientCertificate has the last word: the server gets the certificate, and refuses it.
		{name: "client certificate of another CA from GetClientCertificate", addr: s.SecureConnectString(), cfg: with(foreignFunc), tlsErr: true,
			says: []string{"remote error: tls: unknown certificate", "refused the client certificate CN=intruder,O=zktest, issued by CN=foreign CA"}},
		{name: "client certificate of another CA from GetClientCertificate, TLS 1.2", addr: s.SecureConnectString(),
			cfg: with(tls12(foreignFunc)), tlsErr: true,
			says: []string{"remote error: tls: unknown certificate", "refused the client certificate CN=intruder"}},
		{name: "server certificate of an untrusted CA", addr: s.SecureConnectString(),
			cfg: with(func(cfg *tls.Config) { cfg.RootCAs = other.Pool() }), tlsErr: true,
			says:    []string{"x509: certificate signed by unknown authority", "not signed by a CA that tls.Config.RootCAs holds"},
			errAsFn: func(err error) bool { var e x509.UnknownAuthorityError; return errors.As(err, &e) }},
		{name: "server name that the certificate does not hold", addr: s.SecureConnectString(),
			cfg: with(func(cfg *tls.Config) { cfg.ServerName = "zk.example.com" }), tlsErr: true,
			says:    []string{`not valid for "zk.example.com"`},
			errAsFn: func(err error) bool { var e x509.HostnameError; return errors.As(err, &e) }},
		{name: "TLS client on the plain port", addr: s.ConnectString(), cfg: s.ClientTLSConfig(), tlsErr: true,
			says: []string{"closed the connection during the handshake (does it serve TLS on this port?)"}, errIs: io.EOF},
		{name: "plain client on the TLS port", addr: s.SecureConnectString(),
			says: []string{"session handshake: EOF", "serves only TLS"}, errIs: io.EOF},
	}
	const connTimeout = time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			core, logs := observer.New(zapcore.WarnLevel)
			opts := []Option{
				WithSessionTimeout(testSessionTimeout),
				WithConnectionTimeout(connTimeout),
				WithRetryPolicy(retry.NTimes(0, 0)),
				WithLogger(zap.New(core)),
			}
			if tt.cfg != nil {
				opts = append(opts, WithTLS(tt.cfg))
			}
			c, err := NewClient(tt.addr, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer c.Close()

			check := func(what string, err error) {
				t.Helper()
				if err == nil {
					t.Fatalf("%s: no error", what)
				}
				t.Logf("%s: %v", what, err)
				if got := errors.Is(err, ErrTLSHandshake); got != tt.tlsErr {
					t.Errorf("%s: errors.Is(err, ErrTLSHandshake) = %v, want %v; err: %v", what, got, tt.tlsErr, err)
				}
				if tt.errIs != nil && !errors.Is(err, tt.errIs) {
					t.Errorf("%s: error does not wrap %v: %v", what, tt.errIs, err)
				}
				if tt.errAsFn != nil && !tt.errAsFn(err) {
					t.Errorf("%s: error does not wrap crypto/x509's: %v", what, err)
				}
				for _, s := range tt.says {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("%s: error does not say %q: %v", what, s, err)
					}
				}
			}

			// BlockUntilConnected ends with its context, and says why it could not connect.
			const wait = 2 * time.Second
			start := time.Now()
			err = c.BlockUntilConnected(testContext(t, wait))
			if el := time.Since(start); el > wait+time.Second {
				t.Errorf("BlockUntilConnected took %v with a context of %v", el, wait)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("BlockUntilConnected: %v; want the context's error", err)
			}
			check("BlockUntilConnected", err)

			// An operation fails within the connection timeout (no retries), saying why.
			start = time.Now()
			_, _, err = c.Exists(context.Background(), "/")
			t.Logf("Exists took %v", time.Since(start))
			if el := time.Since(start); el > connTimeout+time.Second {
				t.Errorf("Exists took %v with a connection timeout of %v", el, connTimeout)
			}
			if !errors.Is(err, zk.ErrNoServer) {
				t.Errorf("Exists: %v; want zk.ErrNoServer", err)
			}
			check("Exists", err)

			// The client does not retry silently: it logged the failure.
			if tt.tlsErr && logs.FilterMessageSnippet("TLS handshake failed").Len() == 0 {
				t.Errorf("no warning logged of the failed handshakes; logged: %v", logs.All())
			}
		})
	}
}

// silentServer listens on a port of its own, accepts connections and never writes: a TLS
// handshake with it never ends. Each accepted connection is sent on the returned channel.
func silentServer(t *testing.T) (addr string, accepted <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case ch <- conn:
			default:
				conn.Close()
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(ch)
		for conn := range ch {
			conn.Close()
		}
	})
	return ln.Addr().String(), ch
}

func TestTLSHandshakeBounded(t *testing.T) {
	s := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{}))
	tests := []struct {
		name        string
		connTimeout time.Duration
		run         func(t *testing.T, c *Client, accepted <-chan net.Conn)
	}{
		{name: "by the connection timeout", connTimeout: time.Second, run: func(t *testing.T, c *Client, _ <-chan net.Conn) {
			err := c.BlockUntilConnected(testContext(t, 3*time.Second))
			if !errors.Is(err, ErrTLSHandshake) || !errors.Is(err, context.DeadlineExceeded) ||
				!strings.Contains(err.Error(), "not done within the connection timeout 1s") {
				t.Fatalf("BlockUntilConnected: %v; want a TLS handshake not done within the connection timeout", err)
			}
		}},
		{name: "by Close", connTimeout: time.Minute, run: func(t *testing.T, c *Client, accepted <-chan net.Conn) {
			select {
			case <-accepted:
			case <-time.After(10 * time.Second):
				t.Fatal("the client did not connect to the silent server")
			}
			start := time.Now()
			c.Close()
			if el := time.Since(start); el > connEndWait {
				t.Errorf("Close took %v during a TLS handshake", el)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, accepted := silentServer(t)
			c, err := NewClient(addr, WithTLS(s.ClientTLSConfig()), WithConnectionTimeout(tt.connTimeout),
				WithSessionTimeout(testSessionTimeout))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tt.run(t, c, accepted)
		})
	}
}
