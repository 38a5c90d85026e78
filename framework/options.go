package framework

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/gocurator/curator/retry"
)

// Defaults, as Curator's.
const (
	DefaultSessionTimeout    = 60 * time.Second
	DefaultConnectionTimeout = 15 * time.Second
)

// DefaultMaxRequestBytes is the largest request the client sends by default: 0xfffff bytes, the
// default of the server's jute.maxbuffer, above which the server drops the connection.
const DefaultMaxRequestBytes = 0xfffff

// minMaxRequestBytes is the least limit WithMaxRequestBytes accepts.
const minMaxRequestBytes = 1024

// Option configures a Client.
type Option func(*options)

type options struct {
	observer          Observer // nil: none
	retryPolicy       retry.Policy
	sessionTimeout    time.Duration
	connectionTimeout time.Duration
	namespace         string
	logger            *zap.Logger
	auth              []authInfo
	acl               []zk.ACL
	aclProvider       func(path string) []zk.ACL
	errorPolicy       ErrorPolicy
	defaultData       []byte
	defaultDataSet    bool
	dialer            zk.Dialer
	tlsConfig         *tls.Config
	noContainers      bool
	maxRequestBytes   int
	errs              []error
}

type authInfo struct {
	scheme string
	auth   []byte
}

// WithRetryPolicy sets the policy under which operations are retried after connection-level
// errors. The default is retry.ExponentialBackoff(time.Second, 3).
func WithRetryPolicy(p retry.Policy) Option {
	return option(invalidIf(p == nil, "retry policy is nil"), func(o *options) { o.retryPolicy = p })
}

// WithSessionTimeout sets the session timeout asked of the server (default 60s, as Curator). The
// server may clamp it to between 2 and 20 of its ticks.
func WithSessionTimeout(d time.Duration) Option {
	return option(invalidIf(d <= 0, "session timeout %v is not positive", d), func(o *options) { o.sessionTimeout = d })
}

// option is the Option that records err, the bad input it names, if err is not nil, and else
// applies set.
func option(err error, set func(*options)) Option {
	return func(o *options) {
		if err != nil {
			o.errs = append(o.errs, err)
			return
		}
		set(o)
	}
}

// invalidIf returns, if bad, an error wrapping ErrInvalidArgument with the message format makes of
// args, and else nil.
func invalidIf(bad bool, format string, args ...any) error {
	if !bad {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// WithConnectionTimeout sets how long each try of an operation waits for a connection: past it
// the try fails, retryably and with nothing sent, and is retried under the policy. Default 15s.
func WithConnectionTimeout(d time.Duration) Option {
	return option(invalidIf(d <= 0, "connection timeout %v is not positive", d), func(o *options) { o.connectionTimeout = d })
}

// WithNamespace puts every path the client is given under /ns. ns is a node name or a relative
// path ("app" or "app/locks"); a leading slash is accepted.
func WithNamespace(ns string) Option {
	return func(o *options) {
		if ns == "" {
			o.namespace = ""
			return
		}
		if ns[0] != '/' {
			ns = "/" + ns
		}
		if err := ValidatePath(ns); err != nil || ns == "/" {
			o.errs = append(o.errs, fmt.Errorf("%w: namespace %q is not a valid path", ErrInvalidArgument, ns))
			return
		}
		o.namespace = ns
	}
}

// WithLogger sets the logger for state changes, retries and go-zookeeper's own messages. The
// default discards everything.
func WithLogger(l *zap.Logger) Option {
	return option(invalidIf(l == nil, "logger is nil"), func(o *options) { o.logger = l })
}

// WithAuth adds credentials of the given scheme, for example "digest" with "user:password". They
// are part of establishing every session: the client sends them as soon as a session is up, on the
// first connection and on every new session (after Lost, whether the server expired the session or
// the client opened a new one itself), and reports Connected or Reconnected, and sends any other
// request of that session, only once the server has accepted them all. go-zookeeper re-sends
// accepted credentials, ahead of any other request, after each reconnect of a session; the client
// reports Reconnected only once that is done too.
//
// If the server refuses a credential (zk.ErrAuthFailed: the scheme is not one the server knows,
// say), the client does not go on without it: it reports no Connected or Reconnected, every
// operation fails at once with an error wrapping zk.ErrAuthFailed, the error of a
// BlockUntilConnected whose context ends wraps it too (as the reason the newest attempt to
// connect failed), and the client logs an error. The server
// closes a connection whose credentials it refused; the client sends them again on the next one,
// so it recovers once the server accepts them.
//
// The "digest" data must be user:password with a user before the colon. Nodes that only the
// holders of a credential may touch are made with an ACL naming it: zk.AuthACL(zk.PermAll) (every
// credential the creating session holds) or zk.DigestACL(zk.PermAll, user, password); see WithACL.
// Several WithAuth add several credentials. An empty scheme is an error wrapping
// ErrInvalidArgument, as is digest data without a user (the error does not quote the password).
func WithAuth(scheme string, auth []byte) Option {
	return func(o *options) {
		if scheme == "" {
			o.errs = append(o.errs, fmt.Errorf("%w: auth scheme is empty", ErrInvalidArgument))
			return
		}
		if err := checkAuth(scheme, auth); err != nil {
			o.errs = append(o.errs, err)
			return
		}
		o.auth = append(o.auth, authInfo{scheme: scheme, auth: append([]byte(nil), auth...)})
	}
}

// WithACL sets the ACL of every node the client creates: the nodes of Create, CreateAndList and
// CreateOp, and the parents that WithParents makes (a recipe's lock path and its ancestors, and the
// namespace's own nodes), unless WithNodeACL gives a create's node (not its parents) an ACL of its
// own, or WithACLProvider gives the path one. The default is zk.WorldACL(zk.PermAll), open to all.
//
// ZooKeeper checks a node's creates and deletes of children against the node's ACL (CREATE and
// DELETE), so a lock path made with, say, zk.AuthACL(zk.PermAll) by a client with WithAuth keeps
// clients without the credential from queueing in the lock or deleting its holder's node. An ACL
// naming scheme "auth" needs an authenticated identity on the session (a WithAuth credential, or a
// client certificate of WithTLS if the server authenticates those with its x509 provider), else
// the server refuses the create (zk.ErrInvalidACL).
//
// acl is checked with ValidateACL: an empty list, or an entry the server would refuse or that
// could never match (see ValidateACL), is an error from NewClient wrapping ErrInvalidArgument and
// zk.ErrInvalidACL.
func WithACL(acl []zk.ACL) Option {
	return func(o *options) {
		if err := ValidateACL(acl); err != nil {
			o.errs = append(o.errs, fmt.Errorf("WithACL: %w", err))
			return
		}
		o.acl = append([]zk.ACL(nil), acl...)
	}
}

// WithErrorPolicy sets which connection states end lock holds and leadership:
// StandardErrorPolicy (the default) or SessionErrorPolicy.
func WithErrorPolicy(p ErrorPolicy) Option {
	return option(invalidIf(p != StandardErrorPolicy && p != SessionErrorPolicy, "error policy %d is unknown", int(p)),
		func(o *options) { o.errorPolicy = p })
}

// WithDefaultData sets the data written to nodes created without data of their own (lock nodes,
// for one). The default is this host's IP address as text, as Curator's.
func WithDefaultData(data []byte) Option {
	return func(o *options) {
		o.defaultData = append([]byte{}, data...)
		o.defaultDataSet = true
	}
}

// WithDialer sets how the client opens TCP connections (for TLS, a proxy, or fault injection in
// tests).
func WithDialer(d zk.Dialer) Option {
	return option(invalidIf(d == nil, "dialer is nil"), func(o *options) { o.dialer = d })
}

// WithoutContainers makes the client create missing parents as persistent nodes rather than
// container nodes, for servers older than ZooKeeper 3.5 (Curator's dontUseContainerParents).
func WithoutContainers() Option {
	return func(o *options) { o.noContainers = true }
}

// MaxRequestBytesLimit is the largest request, in bytes without the length prefix, that the
// client can send at all: go-zookeeper encodes every request into a buffer of 1.5 MiB, length
// prefix included.
const MaxRequestBytesLimit = 1536*1024 - 4

// WithMaxRequestBytes sets the size of the largest request the client sends, in bytes as encoded
// on the wire (without the 4-byte length prefix): set it to the servers' jute.maxbuffer if they do
// not run with the default (DefaultMaxRequestBytes, 1048575). A server drops the connection of a
// client that sends a larger request, which would suspend every lock and leadership of the client
// and, retried, never succeed; so an operation whose request is larger (a create with large data or
// a long path, above all) fails at once, unsent, with an error wrapping ErrRequestTooLarge and
// ErrInvalidArgument. n must be at least 1024 and at most MaxRequestBytesLimit, the largest request
// the underlying go-zookeeper client can encode.
func WithMaxRequestBytes(n int) Option {
	return func(o *options) {
		if n < minMaxRequestBytes {
			o.errs = append(o.errs, fmt.Errorf("%w: max request bytes %d is less than %d", ErrInvalidArgument, n, minMaxRequestBytes))
			return
		}
		if n > MaxRequestBytesLimit {
			o.errs = append(o.errs, fmt.Errorf("%w: max request bytes %d is more than %d, the largest request the client can encode",
				ErrInvalidArgument, n, MaxRequestBytesLimit))
			return
		}
		o.maxRequestBytes = n
	}
}

func defaultOptions() options {
	return options{
		retryPolicy:       retry.ExponentialBackoff(time.Second, 3),
		sessionTimeout:    DefaultSessionTimeout,
		connectionTimeout: DefaultConnectionTimeout,
		logger:            zap.NewNop(),
		acl:               zk.WorldACL(zk.PermAll),
		errorPolicy:       StandardErrorPolicy,
		maxRequestBytes:   DefaultMaxRequestBytes,
	}
}

// localAddress is Curator's default node data: this host's address as text, or nothing when the
// host name does not resolve.
func localAddress() []byte {
	host, err := os.Hostname()
	if err != nil {
		return []byte{}
	}
	addrs, err := net.LookupIP(host)
	if err != nil {
		return []byte{}
	}
	for _, a := range addrs {
		if v4 := a.To4(); v4 != nil {
			return []byte(v4.String())
		}
	}
	if len(addrs) > 0 {
		return []byte(addrs[0].String())
	}
	return []byte{}
}

// parseConnectString splits "host:port,host:port[/chroot]" into servers and the chroot.
func parseConnectString(s string) (servers []string, chroot string, err error) {
	if s == "" {
		return nil, "", fmt.Errorf("%w: connect string is empty", ErrInvalidArgument)
	}
	hosts := s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		hosts, chroot = s[:i], s[i:]
		if chroot == "/" {
			chroot = ""
		} else if err := ValidatePath(chroot); err != nil {
			return nil, "", fmt.Errorf("%w: connect string %q has a bad chroot: %w", ErrInvalidArgument, s, err)
		}
	}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h == "" {
			return nil, "", fmt.Errorf("%w: connect string %q has an empty server", ErrInvalidArgument, s)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: ZooKeeper's default. Splitting again takes the brackets off an IPv6
			// address ("[::1]" is ::1 on port 2181).
			var err2 error
			if host, port, err2 = net.SplitHostPort(h + ":2181"); err2 != nil {
				return nil, "", fmt.Errorf("%w: connect string %q: bad server %q: %w", ErrInvalidArgument, s, h, err)
			}
		}
		if host == "" {
			return nil, "", fmt.Errorf("%w: connect string %q: server %q has no host", ErrInvalidArgument, s, h)
		}
		p, err := parsePort(port)
		if err != nil {
			return nil, "", fmt.Errorf("%w: connect string %q: server %q: %w", ErrInvalidArgument, s, h, err)
		}
		servers = append(servers, net.JoinHostPort(host, fmt.Sprint(p)))
	}
	return servers, chroot, nil
}

// parsePort parses a server's port: decimal digits only, 1 to 65535.
func parsePort(s string) (int, error) {
	if s == "" {
		return 0, errors.New("empty port")
	}
	n, err := strconv.ParseUint(s, 10, 16)
	switch {
	case errors.Is(err, strconv.ErrRange), err == nil && n == 0:
		return 0, fmt.Errorf("port %q is out of range", s)
	case err != nil:
		return 0, fmt.Errorf("port %q is not a number", s)
	}
	return int(n), nil
}
