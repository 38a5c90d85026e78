package framework

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

// ErrTLSHandshake is wrapped by the error of a connection whose TLS handshake failed, or whose
// server refused the client's certificate (under TLS 1.3 a server does so after the handshake,
// on the first exchange): the server's certificate is not signed by a trusted CA or not valid for
// the server's name, the server wants a client certificate that was not given or that it does not
// trust, the server does not speak TLS on the port, or it did not finish the handshake within the
// connection timeout. The error's text says which, and wraps the error of crypto/tls (so that
// errors.As finds an x509.UnknownAuthorityError, an x509.HostnameError, a tls.AlertError...).
//
// A client keeps trying to connect, as it does after any failure to connect, and logs each new
// reason; BlockUntilConnected and operations that end without a connection return an error that
// wraps the newest one.
var ErrTLSHandshake = errors.New("curator: TLS handshake failed")

// WithTLS makes the client connect to every server over TLS with cfg (of which it keeps a copy:
// later changes to cfg do not apply; to rotate a client certificate, set GetClientCertificate).
// The TLS connection runs over the connection that the dialer of WithDialer, if given, opens; the
// handshake must end within the connection timeout (WithConnectionTimeout).
//
// The client checks each server's certificate against cfg.RootCAs (the system's roots if nil) and
// against cfg.ServerName or, if that is empty, the host of the server's address in the connect
// string (an IP address or a DNS name), as crypto/tls does when it dials. It presents a client
// certificate, for mutual TLS, when cfg has Certificates or GetClientCertificate and the server
// asks for one.
//
// A nil cfg makes NewClient fail with an error wrapping ErrInvalidArgument. A handshake that fails
// fails the connection with an error wrapping ErrTLSHandshake.
func WithTLS(cfg *tls.Config) Option {
	cfg = cloneTLSConfig(cfg) // nil stays nil
	return func(o *options) {
		if cfg == nil {
			o.errs = append(o.errs, fmt.Errorf("%w: TLS config is nil", ErrInvalidArgument))
			return
		}
		o.tlsConfig = cfg
	}
}

// cloneTLSConfig copies cfg deeply enough that changes to the caller's config, its CA pool and
// certificate list included, do not reach the copy (tls.Config.Clone shares them).
func cloneTLSConfig(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return nil
	}
	c := cfg.Clone()
	if cfg.RootCAs != nil {
		c.RootCAs = cfg.RootCAs.Clone()
	}
	if cfg.ClientCAs != nil {
		c.ClientCAs = cfg.ClientCAs.Clone()
	}
	c.Certificates = slices.Clone(cfg.Certificates)
	c.NextProtos = slices.Clone(cfg.NextProtos)
	c.CipherSuites = slices.Clone(cfg.CipherSuites)
	c.CurvePreferences = slices.Clone(cfg.CurvePreferences)
	return c
}

// tlsDialer returns a dialer that opens a connection with dial and runs a TLS handshake over it,
// for the connection of generation gen. A failed handshake is logged (at Warn when its reason is
// new) and its error wraps ErrTLSHandshake.
func (c *Client) tlsDialer(dial zk.Dialer, gen uint64) zk.Dialer {
	rep := &tlsReporter{c: c, gen: gen}
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		raw, err := dial(network, address, timeout)
		if err != nil {
			return nil, err
		}
		conn, err := c.handshake(raw, address, rep)
		if err != nil {
			raw.Close()
			if !c.isClosed() {
				rep.report(address, err)
			}
			return nil, err
		}
		return conn, nil
	}
}

// tlsReporter logs the failed TLS handshakes of the connection of one generation: at Warn when
// the reason is new, else at Debug, so that a client that keeps failing says so once per reason.
type tlsReporter struct {
	c      *Client
	gen    uint64
	mu     sync.Mutex
	logged string // the text of the newest error logged at Warn
}

func (r *tlsReporter) report(address string, err error) {
	msg := err.Error()
	r.mu.Lock()
	fresh := msg != r.logged
	r.logged = msg
	r.mu.Unlock()
	level := zap.DebugLevel
	if fresh && r.gen == r.c.curGen.Load() {
		level = zap.WarnLevel
	}
	r.c.log.Log(level, "zookeeper TLS handshake failed; trying again", zap.String("server", address), zap.Error(err))
}

// handshake runs the client side of a TLS handshake with the server at address over raw, ending
// it when the connection timeout passes or the client is closed.
func (c *Client) handshake(raw net.Conn, address string, rep *tlsReporter) (net.Conn, error) {
	cfg, probe := c.tlsConfigFor(address)
	tc := tls.Client(raw, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.connectionTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.closedCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := tc.HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil && c.isClosed() {
			return nil, fmt.Errorf("%w with %s: %w", ErrTLSHandshake, address, ErrClosed)
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w with %s: not done within the connection timeout %v: %w",
				ErrTLSHandshake, address, c.opts.connectionTimeout, err)
		}
		return nil, probe.explain(address, err, true)
	}
	return &tlsConn{Conn: tc, address: address, probe: probe, rep: rep}, nil
}

// tlsConfigFor returns the configuration of one TLS connection to address: a copy of the client's,
// with ServerName set to address's host if it is empty, and a probe that learns whether the server
// asks for a client certificate and which one the client gives.
func (c *Client) tlsConfigFor(address string) (*tls.Config, *certProbe) {
	cfg := c.opts.tlsConfig.Clone()
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		cfg.ServerName = host
	}
	probe := &certProbe{}
	user, certs := cfg.GetClientCertificate, cfg.Certificates
	cfg.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		probe.requested.Store(true)
		probe.setRequest(cri, certs, user != nil)
		var cert *tls.Certificate
		if user != nil {
			var err error
			if cert, err = user(cri); err != nil {
				return nil, err
			}
		} else {
			// As crypto/tls chooses when GetClientCertificate is nil: the first certificate that
			// suits the server's request.
			for i := range certs {
				if cri.SupportsCertificate(&certs[i]) == nil {
					cert = &certs[i]
					break
				}
			}
		}
		if cert == nil {
			cert = &tls.Certificate{} // none: crypto/tls wants an empty certificate, not nil
		}
		if len(cert.Certificate) > 0 {
			probe.sent.Store(cert)
		}
		return cert, nil
	}
	return cfg, probe
}

// certProbe records, for one TLS connection, whether the server asked for a client certificate
// and which certificate the client gave.
type certProbe struct {
	requested atomic.Bool
	sent      atomic.Pointer[tls.Certificate]

	mu         sync.Mutex
	acceptable []string // the CAs whose certificates the server said it accepts, as text
	unsuitable []string // the client's certificates that do not suit the request, as text
}

// setRequest records the server's request for a client certificate, and which of the client's
// certificates (those of tls.Config.Certificates, unless fromFunc) do not suit it.
func (p *certProbe) setRequest(cri *tls.CertificateRequestInfo, certs []tls.Certificate, fromFunc bool) {
	var acceptable, unsuitable []string
	for _, der := range cri.AcceptableCAs {
		acceptable = append(acceptable, distinguishedName(der))
	}
	if !fromFunc {
		for i := range certs {
			if cri.SupportsCertificate(&certs[i]) != nil {
				unsuitable = append(unsuitable, describeCert(&certs[i]))
			}
		}
	}
	p.mu.Lock()
	p.acceptable, p.unsuitable = acceptable, unsuitable
	p.mu.Unlock()
}

// distinguishedName returns a DER-encoded distinguished name as text.
func distinguishedName(der []byte) string {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdn); err != nil || len(rest) > 0 {
		return "(a name that does not parse)"
	}
	var name pkix.Name
	name.FillFromRDNSequence(&rdn)
	return name.String()
}

// describeCert returns the subject and issuer of a certificate's leaf, as text.
func describeCert(cert *tls.Certificate) string {
	leaf := cert.Leaf
	if leaf == nil && len(cert.Certificate) > 0 {
		leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	if leaf == nil {
		return "(a certificate that does not parse)"
	}
	return fmt.Sprintf("%s, issued by %s", leaf.Subject, leaf.Issuer)
}

// explain returns the error of a TLS connection to address that failed with err, during the
// handshake if inHandshake, else on the first read after it: it wraps ErrTLSHandshake and err, and
// says what probably went wrong.
func (p *certProbe) explain(address string, err error, inHandshake bool) error {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
	)
	alerted := isAlert(err)
	closed := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
	var why string
	switch {
	case errors.As(err, &unknown):
		why = "the server's certificate"
		if unknown.Cert != nil {
			why += fmt.Sprintf(" (%s, issued by %s)", unknown.Cert.Subject, unknown.Cert.Issuer)
		}
		why += " is not signed by a CA that tls.Config.RootCAs holds"
	case errors.As(err, &hostname):
		why = fmt.Sprintf("the server's certificate is not valid for %q (tls.Config.ServerName, or the host dialed when that is empty)", hostname.Host)
	case errors.As(err, &invalid):
		why = "the server's certificate is not valid"
	case errors.As(err, &record):
		why = "the server does not speak TLS on this port"
	case alerted || closed && p.requested.Load():
		why = p.refused(alerted)
	case closed && inHandshake:
		why = "the server closed the connection during the handshake (does it serve TLS on this port?)"
	}
	if why == "" {
		return fmt.Errorf("%w with %s: %w", ErrTLSHandshake, address, err)
	}
	return fmt.Errorf("%w with %s: %s: %w", ErrTLSHandshake, address, why, err)
}

// refused says why a server that sent a TLS alert (if alerted), or closed the connection after
// asking for a client certificate, refused the connection.
func (p *certProbe) refused(alerted bool) string {
	if !p.requested.Load() {
		return "the server refused the connection"
	}
	cert := p.sent.Load()
	if cert == nil {
		p.mu.Lock()
		acceptable, unsuitable := p.acceptable, p.unsuitable
		p.mu.Unlock()
		if len(unsuitable) == 0 {
			return "the server asked for a client certificate and none was given (tls.Config.Certificates or GetClientCertificate)"
		}
		want := "a client certificate"
		if len(acceptable) > 0 {
			want += " issued by " + strings.Join(acceptable, " or ")
		}
		return fmt.Sprintf("the server asked for %s, and no certificate was sent, none of tls.Config.Certificates suiting it (%s)",
			want, strings.Join(unsuitable, "; "))
	}
	verb := "refused"
	if !alerted {
		verb = "closed the connection after it was given"
	}
	return fmt.Sprintf("the server %s the client certificate %s (is that CA in the server's trust store?)", verb, describeCert(cert))
}

// tlsConn is a TLS connection to a server. Under TLS 1.3 a server checks the client's certificate
// after the client's side of the handshake has ended, and refuses it with an alert that the
// client reads first thing: until a read has returned data, a read's error is explained as a
// handshake's.
type tlsConn struct {
	net.Conn
	address string
	probe   *certProbe
	rep     *tlsReporter
	read    atomic.Bool // a read has returned data
}

func (t *tlsConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	if n > 0 {
		t.read.Store(true)
	} else if err != nil && !t.read.Load() {
		closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
		if isAlert(err) || closed && t.probe.requested.Load() {
			err = t.probe.explain(t.address, err, false)
			t.rep.report(t.address, err)
		}
	}
	return n, err
}

// isAlert reports whether err is a TLS alert the server sent ("remote error: tls: ...").
// crypto/tls reports one as a *net.OpError whose Op is "remote error" (tls.AlertError is for
// QUIC only).
func isAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// sessionHandshakeError returns the error of a session handshake (go-zookeeper's connect request
// and response) that failed with err. A server that closes the connection without an answer to a
// client that does not use TLS may serve only TLS on that port: the error says so.
func (c *Client) sessionHandshakeError(err error) error {
	if errors.Is(err, ErrTLSHandshake) {
		return err // a server that refused the client's certificate after the TLS handshake
	}
	if c.opts.tlsConfig == nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		return fmt.Errorf("session handshake: %w (the server closed the connection without answering; "+
			"a server that serves only TLS on the port does that to a client without WithTLS)", err)
	}
	return fmt.Errorf("session handshake: %w", err)
}
