package framework

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/go-zookeeper/zk"
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
