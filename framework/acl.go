package framework

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

// The ACL of a node the client creates is, in order of precedence:
//
//  1. the create's own, given with WithNodeACL (for that node only, not for the parents that
//     WithParents makes);
//  2. the ACL provider's for the node's path (WithACLProvider), if it returns a non-empty list;
//  3. the client's (WithACL);
//  4. zk.WorldACL(zk.PermAll), Curator's default, open to all.
//
// Every one is checked with ValidateACL before it is sent.

// WithACLProvider sets a function that gives the ACL of each node the client creates, by path, as
// Curator's ACLProvider: the nodes of Create, CreateAndList and CreateOp, and every parent that
// WithParents makes. path is the node's path as the caller names it, without the namespace: for a
// create, the path given to Create (without the protected prefix or a sequence number, which are
// not known beforehand); for a parent, the parent's path; the namespace's own node is "/". The
// nodes of a chroot above the namespace, which the caller cannot name, get the client's ACL.
//
// A nil or empty result means the client's ACL (WithACL's, or the default zk.WorldACL(zk.PermAll)),
// so WithACL and WithACLProvider together mean a default and exceptions by path; WithNodeACL wins
// over both for its node. A result that ValidateACL refuses fails the create with an error
// wrapping ErrInvalidArgument and zk.ErrInvalidACL that names the path.
//
// p is called on the goroutine of the create, possibly several times for one path (once per try
// of a create of its parents), and must be safe for concurrent use. A nil p is an error wrapping
// ErrInvalidArgument.
func WithACLProvider(p func(path string) []zk.ACL) Option {
	return func(o *options) {
		if p == nil {
			o.errs = append(o.errs, fmt.Errorf("%w: ACL provider is nil", ErrInvalidArgument))
			return
		}
		o.aclProvider = p
	}
}

// minDigestBytes is the size of the smallest digest the server's DigestAuthenticationProvider
// makes (SHA-1, the default; newer servers may be configured for SHA-256 and larger).
const minDigestBytes = 20

// ValidateACL reports whether acl is an ACL list the server accepts and whose entries can match a
// client. It refuses what the server refuses with zk.ErrInvalidACL (an empty list; an entry of no
// scheme; scheme "world" with an id other than "anyone"; scheme "digest" with an id that is not
// one user, a colon, and a digest), and also:
//
//   - an entry that grants no permission, or bits outside zk.PermAll;
//   - a "digest" id whose part after the colon is not a base64 digest, as zk.DigestACL makes:
//     the server takes "user:password" in clear, and then no credential ever matches it.
//
// Entries of other schemes ("auth", "ip", "x509", "sasl", ...) are the server's to check: whether
// it accepts them depends on its configuration and on the creating session (an "auth" entry needs
// a credential on the session, see WithAuth). The error wraps ErrInvalidArgument and
// zk.ErrInvalidACL and names the entry, without the digest.
func ValidateACL(acl []zk.ACL) error {
	if len(acl) == 0 {
		return fmt.Errorf("%w: %w: ACL is empty", ErrInvalidArgument, zk.ErrInvalidACL)
	}
	for i, a := range acl {
		if why := checkACL(a); why != "" {
			return fmt.Errorf("%w: %w: ACL entry %d (%s, perms %#x) %s", ErrInvalidArgument, zk.ErrInvalidACL, i, aclName(a), a.Perms, why)
		}
	}
	return nil
}

// checkACL returns why the server would refuse a, or a could never match, or "" if it is fine.
func checkACL(a zk.ACL) string {
	switch {
	case a.Perms == 0:
		return "grants no permission"
	case a.Perms&^zk.PermAll != 0:
		return fmt.Sprintf("has permission bits %#x outside zk.PermAll", a.Perms&^zk.PermAll)
	}
	switch a.Scheme {
	case "":
		return "has no scheme"
	case "world":
		if a.ID != "anyone" {
			return `has scheme "world" with an id other than "anyone"`
		}
	case "digest":
		user, digest, ok := strings.Cut(a.ID, ":")
		switch {
		case !ok:
			return `has scheme "digest" with an id that is not user:digest (no colon)`
		case user == "":
			return `has scheme "digest" with an id that is not user:digest (no user)`
		case strings.Contains(digest, ":"):
			return `has scheme "digest" with an id of more than one colon`
		}
		if b, err := base64.StdEncoding.DecodeString(digest); err != nil || len(b) < minDigestBytes {
			return `has scheme "digest" with an id whose digest is not base64 of a password digest ` +
				"(make it with zk.DigestACL, not from a password in clear)"
		}
	}
	return ""
}

// aclName names an ACL entry's scheme and id for an error; of a digest id only the user, so that a
// password given in clear by mistake is not repeated.
func aclName(a zk.ACL) string {
	if a.Scheme == "digest" {
		user, _, ok := strings.Cut(a.ID, ":")
		if !ok {
			return "digest id (not shown)"
		}
		return fmt.Sprintf("digest user %q", user)
	}
	return fmt.Sprintf("%q:%q", a.Scheme, a.ID)
}

// checkAuth checks credentials given to WithAuth: a digest credential must be user:password. The
// error does not quote auth.
func checkAuth(scheme string, auth []byte) error {
	if scheme != "digest" {
		return nil
	}
	user, _, ok := strings.Cut(string(auth), ":")
	if !ok || user == "" {
		return fmt.Errorf("%w: digest auth data is not user:password (no user before a colon)", ErrInvalidArgument)
	}
	return nil
}

// aclFor returns the ACL of a node at path, as the caller names it (without the namespace): the
// provider's for path if it gives one, else the client's.
func (c *Client) aclFor(path string) ([]zk.ACL, error) {
	if p := c.opts.aclProvider; p != nil {
		if acl := p(path); len(acl) > 0 {
			if err := ValidateACL(acl); err != nil {
				return nil, fmt.Errorf("curator: the ACL provider's ACL for %q: %w", path, err)
			}
			return acl, nil
		}
	}
	return c.opts.acl, nil
}

// aclForServer is aclFor for a node at server path p (namespace included). A node above the
// namespace, which the caller cannot name, gets the client's ACL.
func (c *Client) aclForServer(p string) ([]zk.ACL, error) {
	if c.prefix != "" && p != c.prefix && !strings.HasPrefix(p, c.prefix+"/") {
		return c.opts.acl, nil
	}
	return c.aclFor(c.userPath(p))
}

// createOptionsFor applies opts to o for a create of path (as the caller names it), and sets its
// ACL: WithNodeACL's, checked with ValidateACL, else the one aclFor gives.
func (c *Client) createOptionsFor(path string, o createOptions, opts []CreateOption) (createOptions, error) {
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if o.aclSet {
		if err := ValidateACL(o.acl); err != nil {
			return createOptions{}, fmt.Errorf("curator: create %s: WithNodeACL: %w", path, err)
		}
		return o, nil
	}
	acl, err := c.aclFor(path)
	if err != nil {
		return createOptions{}, fmt.Errorf("curator: create %s: %w", path, err)
	}
	o.acl = acl
	return o, nil
}

// Credentials (WithAuth) are part of establishing a session. go-zookeeper reports a session up
// (StateHasSession) as soon as the server answers the connect request, before anything else is
// sent on the connection; it then re-sends the credentials that the server accepted earlier on the
// same go-zookeeper connection (the same session after a reconnect, or the new session that
// go-zookeeper makes after an expiry), waits for their replies, and only then sends the requests
// queued meanwhile. A credential that was never accepted (its AddAuth failed, or it was never sent,
// as on a connection the client has just opened) is not re-sent. So, on every connected period of
// the connection, the client itself sends the credentials not yet accepted on that connection (or,
// when all were, a request that go-zookeeper sends only after its re-sending is done) and reports
// the session up only once the server has answered: until then no request of the client's is sent
// (connForTry refuses to hand out the connection) and the state stays as it was.

// authState is what the client knows of its credentials on its current go-zookeeper connection.
// c.mu guards it.
type authState struct {
	gen uint64 // the connection the confirmations are of
	// accepted tells, per credential, whether the server accepted it on connection gen, so that
	// go-zookeeper re-sends it, ahead of every other request, after each reconnect.
	accepted []bool
	// period counts the session events of the current connection: the events between two are a
	// connected period, and an establishment counts only in the period it began in.
	period uint64
	// refused is why the server refused a credential, until it accepts them all; refusedCh is
	// closed when refused is set, to end the waits of connForTry.
	refused   error
	refusedCh chan struct{}
}

// errAuthPending is the error of a try that connForTry did not make because the session's
// credentials have not been accepted yet. It is retryable: nothing was sent.
var errAuthPending = fmt.Errorf("%w (the session's credentials are not accepted yet; nothing sent)", zk.ErrNoServer)

// authRetryWait is how long the client waits before sending the credentials again within a
// connected period after a failure that did not end the period (yet).
const authRetryWait = 100 * time.Millisecond

// sessionEventLocked counts a session event of connection gen (the current one).
func (c *Client) sessionEventLocked(gen uint64) {
	if c.auth.gen != gen {
		c.auth.gen = gen
		c.auth.accepted = make([]bool, len(c.opts.auth))
	}
	c.auth.period++
}

// establishLocked starts establishing the credentials of the session that event ev reports up on
// connection gen, and reports whether it did: it did not if the client has none, and the session
// is up at once.
func (c *Client) establishLocked(gen uint64, ev zk.Event) bool {
	if len(c.opts.auth) == 0 {
		return false
	}
	conn, period := c.conn, c.auth.period
	c.wg.Add(1)
	go c.establish(conn, gen, period, ev)
	return true
}

// establish sends the credentials not yet accepted on conn, of generation gen, in the connected
// period period that ev began, and reports the session up once the server has accepted them.
func (c *Client) establish(conn *zk.Conn, gen, period uint64, ev zk.Event) {
	defer c.wg.Done()
	for {
		todo, ok := c.unaccepted(gen, period)
		if !ok {
			return
		}
		err := c.sendCredentials(conn, gen, todo)
		if !c.established(gen, period, ev, err) {
			return
		}
		t := time.NewTimer(authRetryWait)
		select {
		case <-t.C:
		case <-c.closedCh:
			t.Stop()
			return
		}
	}
}

// unaccepted returns the indexes of the credentials not yet accepted on connection gen, and false
// if period is not the current connected period of connection gen.
func (c *Client) unaccepted(gen, period uint64) ([]int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || gen != c.gen || c.auth.gen != gen || c.auth.period != period {
		return nil, false
	}
	var todo []int
	for i, ok := range c.auth.accepted {
		if !ok {
			todo = append(todo, i)
		}
	}
	return todo, true
}

// sendCredentials sends the credentials todo on conn, of generation gen, one after another, and
// records each that the server accepts. With none to send, it sends a request that go-zookeeper
// writes only after it has re-sent the credentials accepted before and seen them accepted (it
// closes the connection if one is refused), so its reply says they were.
func (c *Client) sendCredentials(conn *zk.Conn, gen uint64, todo []int) error {
	if len(todo) == 0 {
		c.requests.Add(1)
		_, _, err := conn.Exists("/")
		return err
	}
	for _, i := range todo {
		a := c.opts.auth[i]
		c.requests.Add(1)
		if err := conn.AddAuth(a.scheme, a.auth); err != nil {
			if errors.Is(err, zk.ErrAuthFailed) {
				return fmt.Errorf("curator: the server refused the credentials of scheme %q (WithAuth number %d): %w", a.scheme, i+1, err)
			}
			return err
		}
		c.mu.Lock()
		if c.auth.gen == gen {
			c.auth.accepted[i] = true
		}
		c.mu.Unlock()
	}
	return nil
}

// established records how sending the credentials in connected period period of connection gen
// ended (err), and reports the session up if they were all accepted. It returns true if they
// should be sent again in the same period: the send failed for a reason that did not end it (the
// connection may yet be seen to drop).
func (c *Client) established(gen, period uint64, ev zk.Event, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || gen != c.gen || c.conn == nil {
		return false
	}
	current := c.auth.period == period
	switch {
	case err == nil:
		if !current {
			return false // the connection dropped meanwhile: the next period establishes again
		}
		if c.auth.refused != nil {
			c.log.Info("the server accepted the credentials")
			c.auth.refused = nil
		}
		c.sessionUpLocked(gen, ev)
		return false
	case errors.Is(err, zk.ErrAuthFailed):
		c.noteAuthRefusedLocked(gen, err)
		return false // the server closes the connection: the next period tries again
	}
	c.log.Debug("sending the credentials failed", zap.Error(err))
	return current
}

// noteAuthRefusedLocked records that the server refused the credentials on connection gen: operations
// fail at once with err (wrapping zk.ErrAuthFailed) until it accepts them.
func (c *Client) noteAuthRefusedLocked(gen uint64, err error) {
	if c.auth.refused == nil {
		c.log.Error("the server refused the client's credentials; operations fail until it accepts them", zap.Error(err))
	} else {
		c.log.Debug("the server refused the client's credentials again", zap.Error(err))
	}
	c.auth.refused = err
	if c.auth.refusedCh != nil {
		close(c.auth.refusedCh)
		c.auth.refusedCh = nil
	}
	c.noteConnErr(gen, err)
}

// authReadyLocked returns nil if the current connection may carry requests as far as the
// credentials go (the client has none, or the server accepted them all on it), else why not: the
// server's refusal of the credentials (not retryable), or errAuthPending.
func (c *Client) authReadyLocked() error {
	if len(c.opts.auth) == 0 {
		return nil
	}
	if c.auth.refused != nil {
		return c.auth.refused
	}
	if c.auth.gen != c.gen {
		return errAuthPending
	}
	for _, ok := range c.auth.accepted {
		if !ok {
			return errAuthPending
		}
	}
	return nil
}

// authRefusedLocked returns a channel that is closed when the server refuses the credentials (nil
// if the client has none), and the refusal if it stands.
func (c *Client) authRefusedLocked() (<-chan struct{}, error) {
	if len(c.opts.auth) == 0 {
		return nil, nil
	}
	if c.auth.refused != nil {
		return closedChan, c.auth.refused
	}
	if c.auth.refusedCh == nil {
		c.auth.refusedCh = make(chan struct{})
	}
	return c.auth.refusedCh, nil
}
