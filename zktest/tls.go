package zktest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ClientAuth says whether a server that serves TLS asks its clients for a
// certificate, as ZooKeeper's ssl.clientAuth setting.
type ClientAuth string

// The client authentication modes.
const (
	// ClientAuthNeed makes the server refuse a client that presents no
	// certificate, or one that no CA it trusts has signed: mutual TLS. It is
	// ZooKeeper's default, and the zero value of TLSOptions.ClientAuth means
	// it too.
	ClientAuthNeed ClientAuth = "need"
	// ClientAuthWant makes the server ask for a certificate but accept a
	// client that presents none. ZooKeeper 3.8 then accepts a client whose
	// certificate it does not trust, too.
	ClientAuthWant ClientAuth = "want"
	// ClientAuthNone makes the server ask for no certificate.
	ClientAuthNone ClientAuth = "none"
)

// TLSOptions configure the TLS a server serves clients with; see WithTLS.
type TLSOptions struct {
	// ClientAuth says whether clients must present a certificate. The zero
	// value is ClientAuthNeed.
	ClientAuth ClientAuth
	// PlainPort makes the server serve plain (unencrypted) clients too, on
	// a client port of its own. Without it, the server serves only TLS.
	PlainPort bool
}

// WithTLS makes the server (or every member of an ensemble) serve clients
// over TLS, on a secure client port of its own (see Server.SecureConnectString),
// and over plain TCP too if o.PlainPort is set. The server runs ZooKeeper's
// Netty connection factory, which needs the Netty jars (Debian's
// libnetty-java, in /usr/share/java, or a release's lib directory).
//
// Start (or StartEnsemble) makes a new CA for the server, a server
// certificate valid for 127.0.0.1, ::1 and localhost, and a client
// certificate, all ECDSA P-256 and signed by that CA, and writes the server's
// key store and trust store, as PEM files, into the server's directory. The
// server trusts that CA alone; Server.ClientTLSConfig returns a client
// configuration that trusts it and presents the client certificate, and
// NewCA makes another CA, whose certificates the server refuses. The server
// speaks TLS 1.3 and 1.2. Quorum traffic between the members of an ensemble
// stays plain.
//
// Only servers of the test's own serve TLS: when ZK_SERVERS names an external
// ensemble, Start skips a test that asks for TLS, and StartServer returns an
// error. A TLSOptions with an unknown ClientAuth makes Start fail the test,
// and StartServer return an error, naming it.
func WithTLS(o TLSOptions) Option {
	return func(c *config) { c.tls = &o }
}

// certValidity is how long the certificates of a CA are valid: long enough
// for any test run, short enough that a leaked one is soon worthless. They
// are valid from an hour before they are made, so that clocks a little apart
// do not matter.
const certValidity = 7 * 24 * time.Hour

// certHosts are the names and addresses every server certificate is valid
// for: the loopback addresses on which zktest's servers listen.
var certHosts = []string{"127.0.0.1", "::1", "localhost"}

// A CA is a throwaway certificate authority for tests: an ECDSA P-256 key
// and a self-signed certificate, made in memory, that issues server and
// client certificates. Each CA is a new one, trusted by nothing else, so a
// certificate of one CA is refused by a peer that trusts another: tests make
// a second CA with NewCA to get a certificate a server must turn away.
//
// The methods of a CA may be called from several goroutines at once.
type CA struct {
	name    string
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// NewCA makes a new certificate authority whose certificate has the common
// name name ("zktest CA" if name is empty).
func NewCA(name string) (*CA, error) {
	if name == "" {
		name = "zktest CA"
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("zktest: CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"zktest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("zktest: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("zktest: CA certificate: %w", err)
	}
	return &CA{
		name:    name,
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}, nil
}

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("zktest: certificate serial number: %w", err)
	}
	return serial, nil
}

// ErrNoCA is the error of the methods of a nil *CA that issue certificates:
// the CA of a server that does not serve TLS, or one that NewCA failed to make.
var ErrNoCA = errors.New("zktest: no CA (a nil *CA)")

// Name returns the common name of the CA's certificate.
func (ca *CA) Name() string {
	if ca == nil {
		return ""
	}
	return ca.name
}

// Certificate returns the CA's own certificate.
func (ca *CA) Certificate() *x509.Certificate {
	if ca == nil {
		return nil
	}
	return ca.cert
}

// CertPEM returns the CA's certificate in PEM form, as a trust store holds it.
func (ca *CA) CertPEM() []byte {
	if ca == nil {
		return nil
	}
	return append([]byte(nil), ca.certPEM...)
}

// Pool returns a new certificate pool holding the CA's certificate, for the
// RootCAs of a client's tls.Config or the ClientCAs of a server's. It is nil
// for a nil CA.
func (ca *CA) Pool() *x509.CertPool {
	if ca == nil {
		return nil
	}
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// ServerCertificate issues a certificate for a server, valid for server and
// client authentication, whose subject alternative names are hosts: IP
// addresses and DNS names. With no hosts it is valid for 127.0.0.1, ::1 and
// localhost, where zktest's servers listen.
func (ca *CA) ServerCertificate(hosts ...string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = certHosts
	}
	return ca.issue("zktest server", hosts,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
}

// ClientCertificate issues a certificate for a client, valid for client
// authentication, with the common name name ("zktest client" if empty).
// ZooKeeper's x509 authentication scheme takes the certificate's subject as
// the client's identity.
func (ca *CA) ClientCertificate(name string) (tls.Certificate, error) {
	if name == "" {
		name = "zktest client"
	}
	return ca.issue(name, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
}

// ForeignClientCertificate issues a client certificate with the common name
// name ("zktest client" if empty), as CA.ClientCertificate does, from a new CA
// of its own (NewCA, named "foreign CA") that no zktest server and no other CA
// trusts: the certificate a test presents to check that a server, or a client
// that checks its peer, turns away a certificate it does not know. Each call
// makes a new CA. Its errors are those of NewCA and ClientCertificate.
func ForeignClientCertificate(name string) (tls.Certificate, error) {
	ca, err := NewCA("foreign CA")
	if err != nil {
		return tls.Certificate{}, err
	}
	return ca.ClientCertificate(name)
}

// issue makes a leaf certificate signed by the CA. The returned certificate
// holds the leaf (parsed, in Leaf, too) and its key.
func (ca *CA) issue(cn string, hosts []string, usage []x509.ExtKeyUsage) (tls.Certificate, error) {
	if ca == nil {
		return tls.Certificate{}, ErrNoCA
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("zktest: certificate key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"zktest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              ca.cert.NotAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("zktest: certificate %q: %w", cn, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("zktest: certificate %q: %w", cn, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// keyStorePEM returns cert's private key (PKCS #8) and certificate chain in
// PEM form, as ZooKeeper reads a key store of type PEM.
func keyStorePEM(cert tls.Certificate) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("zktest: encoding a private key: %w", err)
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	for _, c := range cert.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c})...)
	}
	return out, nil
}

// writeStores writes the server's key store and trust store into dir.
func writeStores(dir string, server tls.Certificate, trust *CA) (keyStore, trustStore string, err error) {
	ks, err := keyStorePEM(server)
	if err != nil {
		return "", "", err
	}
	keyStore = filepath.Join(dir, "keystore.pem")
	trustStore = filepath.Join(dir, "truststore.pem")
	if err := os.WriteFile(keyStore, ks, 0o600); err != nil {
		return "", "", fmt.Errorf("zktest: %w", err)
	}
	if err := os.WriteFile(trustStore, trust.CertPEM(), 0o644); err != nil {
		return "", "", fmt.Errorf("zktest: %w", err)
	}
	return keyStore, trustStore, nil
}

// tlsCipherSuites are the cipher suites a server accepts: those of TLS 1.3,
// and the ECDSA suites of TLS 1.2 (ZooKeeper 3.8's own default list lacks
// TLS 1.3's suites, so that without this list it speaks TLS 1.2 only).
var tlsCipherSuites = []string{
	"TLS_AES_128_GCM_SHA256",
	"TLS_AES_256_GCM_SHA384",
	"TLS_CHACHA20_POLY1305_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
}

// nettyJars are the Netty jars that ZooKeeper's Netty connection factory
// needs, by the base name of Debian's unversioned links. The manifest of
// Debian's zookeeper.jar names some of them, not all.
var nettyJars = []string{
	"netty-buffer", "netty-codec", "netty-common", "netty-handler", "netty-resolver",
	"netty-transport", "netty-transport-native-unix-common", "netty-transport-native-epoll",
}

// tlsSetup is the TLS of a server or an ensemble: its CA, the files the
// members read their keys from, and the configuration of zktest's own
// clients (four-letter words to a member that serves only TLS).
type tlsSetup struct {
	opts       TLSOptions
	ca         *CA
	client     *tls.Config // trusts ca, presents a certificate of ca
	keyStore   string
	trustStore string
}

// newWorkDir makes the directory of a server or an ensemble of this process's own, with prefix
// for its name, and prepares in it the TLS that cfg asks for (see setupTLS). It returns the
// directory, the TLS set-up (nil without TLS) and the JVM to run the servers with; on an error it
// leaves no directory behind.
func newWorkDir(cfg config, prefix string, j *jvm) (string, *tlsSetup, *jvm, error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, nil, fmt.Errorf("zktest: %w", err)
	}
	ts, j, err := setupTLS(cfg, dir, j)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, nil, err
	}
	return dir, ts, j, nil
}

// setupTLS prepares the TLS that cfg asks for, in dir: it makes a CA and
// the server's and a client's certificates, writes the server's key and
// trust stores, and returns j with the Netty jars added to its class path.
// It returns a nil setup, and j, when cfg asks for no TLS.
func setupTLS(cfg config, dir string, j *jvm) (*tlsSetup, *jvm, error) {
	if cfg.tls == nil {
		return nil, j, nil
	}
	o := *cfg.tls
	switch o.ClientAuth {
	case "":
		o.ClientAuth = ClientAuthNeed
	case ClientAuthNeed, ClientAuthWant, ClientAuthNone:
	default:
		return nil, nil, fmt.Errorf("zktest: TLS client auth %q is not %q, %q or %q",
			string(o.ClientAuth), ClientAuthNeed, ClientAuthWant, ClientAuthNone)
	}
	cp, err := withNetty(j.classpath)
	if err != nil {
		return nil, nil, err
	}
	jt := *j
	jt.classpath = cp
	ca, err := NewCA("zktest CA")
	if err != nil {
		return nil, nil, err
	}
	serverCert, err := ca.ServerCertificate()
	if err != nil {
		return nil, nil, err
	}
	clientCert, err := ca.ClientCertificate("")
	if err != nil {
		return nil, nil, err
	}
	tlsDir := filepath.Join(dir, "tls")
	if err := os.MkdirAll(tlsDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("zktest: %w", err)
	}
	ks, ts, err := writeStores(tlsDir, serverCert, ca)
	if err != nil {
		return nil, nil, err
	}
	return &tlsSetup{
		opts: o,
		ca:   ca,
		client: &tls.Config{
			RootCAs:      ca.Pool(),
			Certificates: []tls.Certificate{clientCert},
			MinVersion:   tls.VersionTLS12,
		},
		keyStore:   ks,
		trustStore: ts,
	}, &jt, nil
}

// withNetty returns the class path cp with the Netty jars that it lacks
// added from Debian's Java directory. It fails if Netty's handler jar, which
// holds its TLS, is neither on cp nor there.
func withNetty(cp []string) ([]string, error) {
	out := slices.Clone(cp)
	for _, name := range nettyJars {
		if slices.ContainsFunc(cp, func(j string) bool { return isJar(filepath.Base(j), name) }) {
			continue
		}
		p := filepath.Join(debianJavaDir, name+".jar")
		if isFile(p) {
			out = append(out, p)
			continue
		}
		if name == "netty-handler" {
			return nil, fmt.Errorf("%w: TLS needs the Netty jars on ZooKeeper's class path, and there is no %s "+
				"(install libnetty-java, or use a ZooKeeper release whose lib directory holds Netty)", errNotFound, p)
		}
	}
	return out, nil
}

// isJar reports whether base is the jar name, or name-<version>.jar.
func isJar(base, name string) bool {
	if base == name+".jar" {
		return true
	}
	v, ok := strings.CutPrefix(base, name+"-")
	return ok && v != "" && v[0] >= '0' && v[0] <= '9' && strings.HasSuffix(v, ".jar")
}

// assign returns the plain and secure client ports of a member, given two
// free ports: 0 for a port the member does not have.
func (t *tlsSetup) assign(plain, secure int) (int, int) {
	switch {
	case t == nil:
		return plain, 0
	case t.opts.PlainPort:
		return plain, secure
	}
	return 0, secure
}

// configLines returns the lines of zoo.cfg that make a member serve TLS on
// securePort. ZooKeeper turns the ssl.* settings into the system properties
// zookeeper.ssl.*.
func (t *tlsSetup) configLines(securePort int) []string {
	if t == nil {
		return nil
	}
	return []string{
		"serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
		"secureClientPort=" + strconv.Itoa(securePort),
		"secureClientPortAddress=127.0.0.1",
		"ssl.keyStore.location=" + filepath.ToSlash(t.keyStore),
		"ssl.keyStore.type=PEM",
		"ssl.trustStore.location=" + filepath.ToSlash(t.trustStore),
		"ssl.trustStore.type=PEM",
		"ssl.clientAuth=" + string(t.opts.ClientAuth),
		"ssl.protocol=TLSv1.3",
		"ssl.enabledProtocols=TLSv1.3,TLSv1.2",
		"ssl.ciphersuites=" + strings.Join(tlsCipherSuites, ","),
	}
}

// clientConfig returns a copy of the configuration of zktest's own clients,
// or nil without TLS.
func (t *tlsSetup) clientConfig() *tls.Config {
	if t == nil {
		return nil
	}
	c := t.client.Clone()
	// Clone shares the pool and the certificate list: a test that changes its copy must not
	// change everyone's (zktest's own four-letter words included).
	if c.RootCAs != nil {
		c.RootCAs = c.RootCAs.Clone()
	}
	c.Certificates = slices.Clone(c.Certificates)
	return c
}

// tlsAddrs holds, for each address on which a running member serves only
// TLS, the configuration zktest's own clients use there, so that
// four-letter words reach the member over TLS.
var tlsAddrs sync.Map // string → *tls.Config

// registerTLS records that m serves only TLS on m.addr, from now until
// unregisterTLS.
func (m *member) registerTLS() {
	if m.tls != nil && m.port == 0 {
		tlsAddrs.Store(m.addr, m.tls.client)
	}
}

// unregisterTLS forgets what registerTLS recorded, once m has stopped and
// its address may be another server's.
func (m *member) unregisterTLS() {
	if m.tls != nil && m.port == 0 {
		tlsAddrs.Delete(m.addr)
	}
}

// dialFourLetter opens a connection for a four-letter word to addr: over
// TLS, with the handshake done, if a member serves only TLS there.
func dialFourLetter(addr string, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	v, ok := tlsAddrs.Load(addr)
	if !ok {
		return conn, nil
	}
	cfg := v.(*tls.Config).Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		cfg.ServerName = host
	}
	tc := tls.Client(conn, cfg)
	conn.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("zktest: TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// SecureConnectString returns the addresses on which the server serves TLS,
// as ConnectString does the plain ones: host:port, or a comma-separated list
// of them for an ensemble. It is "" for a server that does not serve TLS
// (see WithTLS).
func (s *Server) SecureConnectString() string { return strings.Join(s.secureAddrs, ",") }

// SecureServers returns the addresses on which the server, or each member,
// serves TLS, in the form go-zookeeper's zk.Connect accepts; nil for a server
// that does not serve TLS.
func (s *Server) SecureServers() []string { return slices.Clone(s.secureAddrs) }

// CA returns the certificate authority that signed the server's certificate
// and the only one whose client certificates it accepts; nil for a server
// that does not serve TLS.
func (s *Server) CA() *CA { return s.tls.authority() }

// ClientTLSConfig returns a new client configuration for the server's TLS
// port: it trusts the server's CA alone, and presents a client certificate
// that CA signed (ZooKeeper's x509 scheme authenticates the client as its
// subject, "CN=zktest client,O=zktest"). Its ServerName is empty: clients
// check the server's certificate against the host they dial. It returns nil
// for a server that does not serve TLS.
func (s *Server) ClientTLSConfig() *tls.Config { return s.tls.clientConfig() }

// SecureConnectString returns the addresses on which the members serve TLS,
// comma-separated; "" for an ensemble that does not serve TLS (see WithTLS).
func (e *Ensemble) SecureConnectString() string { return strings.Join(e.secureAddrs, ",") }

// SecureServers returns the address on which each member serves TLS; nil for
// an ensemble that does not serve TLS.
func (e *Ensemble) SecureServers() []string { return slices.Clone(e.secureAddrs) }

// CA returns the certificate authority of the ensemble's TLS, as Server.CA.
func (e *Ensemble) CA() *CA { return e.tls.authority() }

// ClientTLSConfig returns a new client configuration for the members' TLS
// ports, as Server.ClientTLSConfig.
func (e *Ensemble) ClientTLSConfig() *tls.Config { return e.tls.clientConfig() }

func (t *tlsSetup) authority() *CA {
	if t == nil {
		return nil
	}
	return t.ca
}
