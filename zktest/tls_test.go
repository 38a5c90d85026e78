package zktest_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/zktest"
)

// exchange sends a four-letter word to addr over TLS with cfg (ServerName
// taken from addr) and returns the reply. A server that refuses the client
// makes the handshake fail, or, under TLS 1.3, the first read.
func exchange(addr string, cfg *tls.Config, cmd string) (string, error) {
	return sendWord(tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg))(cmd)
}

// plainExchange sends a four-letter word to addr over plain TCP.
func plainExchange(addr, cmd string) (string, error) {
	return sendWord(net.DialTimeout("tcp", addr, 10*time.Second))(cmd)
}

// sendWord takes what a dial returned and gives a function that writes a
// four-letter word on conn and returns all the server sends back within
// 10s, then closes conn; it returns the dial's error, if any, as it is.
func sendWord(conn net.Conn, err error) func(cmd string) (string, error) {
	return func(cmd string) (string, error) {
		if err != nil {
			return "", err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, cmd); err != nil {
			return "", err
		}
		b, err := io.ReadAll(conn)
		return string(b), err
	}
}

// connectTLS connects go-zookeeper to servers over TLS with cfg and waits
// until the client has a session.
func connectTLS(t *testing.T, servers []string, cfg *tls.Config) *client {
	t.Helper()
	return connectDialing(t, servers, sessionTimeout, func(network, addr string, timeout time.Duration) (net.Conn, error) {
		return tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, network, addr, cfg)
	})
}

func TestTLSServer(t *testing.T) {
	tests := []struct {
		name         string
		opts         zktest.TLSOptions
		noCertOK     bool // a client without a certificate is served
		foreignOK    bool // a client with a certificate of another CA is served
		plainClients bool // the server has a plain port too
	}{
		{name: "need, TLS only", opts: zktest.TLSOptions{}},
		// Under "want", ZooKeeper 3.8 serves a client whose certificate it does not trust as well.
		{name: "want, plain port too", opts: zktest.TLSOptions{ClientAuth: zktest.ClientAuthWant, PlainPort: true},
			noCertOK: true, foreignOK: true, plainClients: true},
		{name: "none", opts: zktest.TLSOptions{ClientAuth: zktest.ClientAuthNone}, noCertOK: true, foreignOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := zktest.Start(t, zktest.WithTLS(tt.opts))
			secure := s.SecureServers()
			if len(secure) != 1 || s.SecureConnectString() != secure[0] {
				t.Fatalf("SecureServers() = %v, SecureConnectString() = %q; want one address", secure, s.SecureConnectString())
			}
			if s.CA() == nil || s.ClientTLSConfig() == nil {
				t.Fatal("CA() or ClientTLSConfig() is nil for a TLS server")
			}
			if s.ClientTLSConfig() == s.ClientTLSConfig() {
				t.Error("ClientTLSConfig returns the same config twice; want a new one each time")
			}

			// zktest's own four-letter words reach the server, over TLS when it has no plain port.
			if reply, err := s.FourLetter("ruok"); err != nil || reply != "imok" {
				t.Fatalf("FourLetter(ruok) = %q, %v; want imok", reply, err)
			}
			if reply, err := exchange(secure[0], s.ClientTLSConfig(), "ruok"); err != nil || reply != "imok" {
				t.Fatalf("ruok over TLS with the client certificate = %q, %v; want imok", reply, err)
			}

			// The plain port serves plain clients; the TLS port does not.
			if tt.plainClients {
				if s.ConnectString() == s.SecureConnectString() {
					t.Fatalf("ConnectString() = SecureConnectString() = %q; want a plain port of its own", s.ConnectString())
				}
				if reply, err := plainExchange(s.Addr(), "ruok"); err != nil || reply != "imok" {
					t.Errorf("plain ruok to the plain port = %q, %v; want imok", reply, err)
				}
			} else if s.ConnectString() != s.SecureConnectString() {
				t.Errorf("ConnectString() = %q, want the TLS address %q on a server without a plain port",
					s.ConnectString(), s.SecureConnectString())
			}
			// Five bytes: the TLS port reads a whole record header before it refuses what is no TLS record.
			if reply, _ := plainExchange(secure[0], "ruok\n"); reply == "imok" {
				t.Error("the TLS port answered a plain ruok")
			}

			noCert := s.ClientTLSConfig()
			noCert.Certificates = nil
			reply, err := exchange(secure[0], noCert, "ruok")
			if served := err == nil && reply == "imok"; served != tt.noCertOK {
				t.Errorf("ruok without a client certificate = %q, %v; served = %v, want %v", reply, err, served, tt.noCertOK)
			}
			foreign := s.ClientTLSConfig()
			intruder, err := zktest.ForeignClientCertificate("intruder")
			if err != nil {
				t.Fatal(err)
			}
			foreign.Certificates = []tls.Certificate{intruder}
			reply, err = exchange(secure[0], foreign, "ruok")
			if served := err == nil && reply == "imok"; served != tt.foreignOK {
				t.Errorf("ruok with another CA's client certificate = %q, %v; served = %v, want %v", reply, err, served, tt.foreignOK)
			}

			// A session over TLS reads and writes.
			c := connectTLS(t, secure, s.ClientTLSConfig())
			if _, err := c.Create("/tls", []byte("over TLS"), 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatal(err)
			}
			if data, _, err := c.Get("/tls"); err != nil || string(data) != "over TLS" {
				t.Fatalf("Get(/tls) = %q, %v", data, err)
			}
		})
	}
}

func TestTLSServerRestart(t *testing.T) {
	s := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{}))
	before := s.SecureConnectString()
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if s.SecureConnectString() != before {
		t.Fatalf("SecureConnectString() = %q after Restart, want %q", s.SecureConnectString(), before)
	}
	if reply, err := exchange(s.SecureServers()[0], s.ClientTLSConfig(), "ruok"); err != nil || reply != "imok" {
		t.Fatalf("ruok over TLS after Restart = %q, %v; want imok", reply, err)
	}
}

func TestTLSEnsemble(t *testing.T) {
	e := zktest.StartEnsemble(t, 3, zktest.WithTLS(zktest.TLSOptions{}))
	secure := e.SecureServers()
	if len(secure) != 3 || e.SecureConnectString() != strings.Join(secure, ",") {
		t.Fatalf("SecureServers() = %v, SecureConnectString() = %q; want three addresses", secure, e.SecureConnectString())
	}
	if e.ConnectString() != e.SecureConnectString() {
		t.Errorf("ConnectString() = %q, want the TLS addresses %q", e.ConnectString(), e.SecureConnectString())
	}
	// Leader asks every member over TLS.
	if _, err := e.Leader(); err != nil {
		t.Fatal(err)
	}
	for i, addr := range secure {
		noCert := e.ClientTLSConfig()
		noCert.Certificates = nil
		if reply, err := exchange(addr, noCert, "ruok"); err == nil && reply == "imok" {
			t.Errorf("member %d served a client without a certificate", i)
		}
	}
	c := connectTLS(t, secure, e.ClientTLSConfig())
	if _, err := c.Create("/tls", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	// Every member has it: the members replicate as usual.
	for i, addr := range secure {
		m := connectTLS(t, []string{addr}, e.ClientTLSConfig())
		if _, err := m.Sync("/tls"); err != nil {
			t.Fatal(err)
		}
		if ok, _, err := m.Exists("/tls"); err != nil || !ok {
			t.Errorf("member %d: Exists(/tls) = %v, %v", i, ok, err)
		}
	}
}

func TestWithTLSBadOptions(t *testing.T) {
	tests := []struct {
		name  string
		start func() error
	}{
		{"server", func() error {
			s, err := zktest.StartServer(zktest.WithTLS(zktest.TLSOptions{ClientAuth: "sometimes"}))
			if err == nil {
				s.Close()
			}
			return err
		}},
		{"ensemble", func() error {
			e, err := zktest.StartEnsembleServer(1, zktest.WithTLS(zktest.TLSOptions{ClientAuth: "sometimes"}))
			if err == nil {
				e.Close()
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.start(); err == nil || !strings.Contains(err.Error(), `"sometimes"`) {
				t.Fatalf("start with ClientAuth \"sometimes\": %v; want an error naming it", err)
			}
		})
	}
}

func TestWithoutTLSAccessors(t *testing.T) {
	var s zktest.Server
	var e zktest.Ensemble
	if s.SecureConnectString() != "" || s.SecureServers() != nil || s.CA() != nil || s.ClientTLSConfig() != nil {
		t.Error("a Server without TLS has TLS addresses, a CA or a client TLS config")
	}
	if e.SecureConnectString() != "" || e.SecureServers() != nil || e.CA() != nil || e.ClientTLSConfig() != nil {
		t.Error("an Ensemble without TLS has TLS addresses, a CA or a client TLS config")
	}
}

func TestCA(t *testing.T) {
	ca, err := zktest.NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	other, err := zktest.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.ServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.ClientCertificate("alice")
	if err != nil {
		t.Fatal(err)
	}
	if client.Leaf.Subject.CommonName != "alice" {
		t.Errorf("client certificate's common name = %q, want alice", client.Leaf.Subject.CommonName)
	}
	tests := []struct {
		name  string
		cert  *x509.Certificate
		roots *x509.CertPool
		host  string
		usage x509.ExtKeyUsage
		ok    bool
	}{
		{"server on 127.0.0.1", server.Leaf, ca.Pool(), "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"server on ::1", server.Leaf, ca.Pool(), "::1", x509.ExtKeyUsageServerAuth, true},
		{"server on localhost", server.Leaf, ca.Pool(), "localhost", x509.ExtKeyUsageServerAuth, true},
		{"server on another host", server.Leaf, ca.Pool(), "zk.example.com", x509.ExtKeyUsageServerAuth, false},
		{"server under another CA", server.Leaf, other.Pool(), "127.0.0.1", x509.ExtKeyUsageServerAuth, false},
		{"client", client.Leaf, ca.Pool(), "", x509.ExtKeyUsageClientAuth, true},
		{"client as a server", client.Leaf, ca.Pool(), "", x509.ExtKeyUsageServerAuth, false},
		{"client under another CA", client.Leaf, other.Pool(), "", x509.ExtKeyUsageClientAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cert.Verify(x509.VerifyOptions{Roots: tt.roots, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if (err == nil) != tt.ok {
				t.Fatalf("Verify: %v; want ok = %v", err, tt.ok)
			}
		})
	}
	if ca.Name() != "zktest CA" || other.Name() != "other" {
		t.Errorf("names %q, %q; want \"zktest CA\", \"other\"", ca.Name(), other.Name())
	}
	if !strings.Contains(string(ca.CertPEM()), "BEGIN CERTIFICATE") {
		t.Errorf("CertPEM() = %q, want a PEM certificate", ca.CertPEM())
	}
}

// A foreign client certificate carries the name asked for, with its key, and is issued by a CA of
// its own: a server's CA does not trust it, and no two foreign certificates share their CA.
func TestForeignClientCertificate(t *testing.T) {
	server, err := zktest.NewCA("")
	if err != nil {
		t.Fatal(err)
	}
	first, err := zktest.ForeignClientCertificate("intruder")
	if err != nil {
		t.Fatal(err)
	}
	second, err := zktest.ForeignClientCertificate("")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Certificate) != 1 || first.PrivateKey == nil {
		t.Fatalf("foreign certificate: %d certificates, key %T; want one with its key", len(first.Certificate), first.PrivateKey)
	}
	tests := []struct {
		name string
		cert *x509.Certificate
		cn   string
	}{
		{"named", first.Leaf, "intruder"},
		{"unnamed", second.Leaf, "zktest client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cert.Subject.CommonName != tt.cn {
				t.Errorf("common name %q, want %q", tt.cert.Subject.CommonName, tt.cn)
			}
			if tt.cert.Issuer.CommonName != "foreign CA" {
				t.Errorf("issuer %q, want \"foreign CA\"", tt.cert.Issuer.CommonName)
			}
			client := x509.VerifyOptions{Roots: server.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
			var unknown x509.UnknownAuthorityError
			if _, err := tt.cert.Verify(client); !errors.As(err, &unknown) {
				t.Errorf("Verify under a server's CA: %v, want an unknown authority", err)
			}
		})
	}
	if first.Leaf.AuthorityKeyId == nil || string(first.Leaf.AuthorityKeyId) == string(second.Leaf.AuthorityKeyId) {
		t.Errorf("two foreign certificates share their CA (authority key ids %x, %x)", first.Leaf.AuthorityKeyId, second.Leaf.AuthorityKeyId)
	}
}

func TestNilCA(t *testing.T) {
	var ca *zktest.CA
	if ca.Pool() != nil || ca.Certificate() != nil || ca.CertPEM() != nil || ca.Name() != "" {
		t.Error("a nil CA has a pool, a certificate or a name")
	}
	if _, err := ca.ServerCertificate(); !errors.Is(err, zktest.ErrNoCA) {
		t.Errorf("ServerCertificate of a nil CA: %v, want ErrNoCA", err)
	}
	if _, err := ca.ClientCertificate("x"); !errors.Is(err, zktest.ErrNoCA) {
		t.Errorf("ClientCertificate of a nil CA: %v, want ErrNoCA", err)
	}
}
