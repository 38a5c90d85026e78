package framework

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/gocurator/curator/retry"
)

// CreateMode says what kind of node Create makes.
type CreateMode int

// The create modes.
const (
	Persistent CreateMode = iota
	PersistentSequential
	Ephemeral
	EphemeralSequential
	Container
)

// String returns the mode's name, as ZooKeeper's CreateMode prints it.
func (m CreateMode) String() string {
	switch m {
	case Persistent:
		return "PERSISTENT"
	case PersistentSequential:
		return "PERSISTENT_SEQUENTIAL"
	case Ephemeral:
		return "EPHEMERAL"
	case EphemeralSequential:
		return "EPHEMERAL_SEQUENTIAL"
	case Container:
		return "CONTAINER"
	}
	return fmt.Sprintf("CreateMode(%d)", int(m))
}

// IsEphemeral reports whether nodes of this mode die with their session.
func (m CreateMode) IsEphemeral() bool { return m == Ephemeral || m == EphemeralSequential }

func (m CreateMode) flags() int32 {
	switch m {
	case PersistentSequential:
		return zk.FlagSequence
	case Ephemeral:
		return zk.FlagEphemeral
	case EphemeralSequential:
		return zk.FlagEphemeral | zk.FlagSequence
	case Container:
		return zk.FlagContainer
	}
	return 0
}

// CreateOption modifies a Create.
type CreateOption func(*createOptions)

type createOptions struct {
	protected bool
	parents   bool
	acl       []zk.ACL
}

// WithProtection creates the node in protected mode, as Curator's withProtection: its name gets
// the prefix "_c_<uuid>-", and a create that fails with a connection loss is resolved after the
// reconnect by looking for that prefix among the parent's children, so that it neither leaves an
// orphan node nor makes a second one. A protected create that finally fails, or whose context ends,
// removes its node in the background if the server made it after all.
func WithProtection() CreateOption { return func(o *createOptions) { o.protected = true } }

// WithParents creates missing parents first, as container nodes (persistent nodes with
// WithoutContainers, or where the server lacks containers), as Curator's
// creatingParentContainersIfNeeded.
func WithParents() CreateOption { return func(o *createOptions) { o.parents = true } }

// WithNodeACL sets the ACL of the created node instead of the client's.
func WithNodeACL(acl []zk.ACL) CreateOption { return func(o *createOptions) { o.acl = acl } }

// Created describes a node that Create made.
type Created struct {
	// Path is the node's path as the caller sees it (without namespace), including the protected
	// prefix and the sequence number where those apply.
	Path string
	// SessionID is the session that owns the node if it is ephemeral, else 0.
	SessionID int64
}

// serverPath puts the namespace in front of p.
func (c *Client) serverPath(p string) string {
	if c.prefix == "" {
		return p
	}
	if p == "/" {
		return c.prefix
	}
	return c.prefix + p
}

// userPath strips the namespace from a server path.
func (c *Client) userPath(p string) string {
	if c.prefix == "" {
		return p
	}
	if p == c.prefix {
		return "/"
	}
	return strings.TrimPrefix(p, c.prefix)
}

// connForTry returns the connection to try an operation on, after waiting up to the connection
// timeout for the client to be connected (the operation is tried anyway after that, and fails to
// be retried under the policy; if attempts to connect are failing, it fails at once with
// zk.ErrNoServer, saying why). If ctx ends first, the error wraps ctx's and says why the last
// attempt to connect failed. It never returns a nil connection without an error.
func (c *Client) connForTry(ctx context.Context) (*zk.Conn, int64, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, 0, ErrClosed
	}
	if !c.started {
		c.mu.Unlock()
		return nil, 0, ErrNotStarted
	}
	ch := c.connectedCh
	c.mu.Unlock()
	select {
	case <-ch:
	default:
		if err := ctx.Err(); err != nil {
			return nil, 0, c.unreachable(ctxErr(ctx))
		}
		t := time.NewTimer(c.opts.connectionTimeout)
		select {
		case <-ch:
		case <-t.C:
			if err := c.lastConnErr(); err != nil {
				// Attempts to connect are failing: say why, as a retryable connection error.
				return nil, 0, fmt.Errorf("%w (no server reachable: %w)", zk.ErrNoServer, err)
			}
		case <-c.closedCh:
		case <-ctx.Done():
			t.Stop()
			return nil, 0, c.unreachable(ctxErr(ctx))
		}
		t.Stop()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, ErrClosed
	}
	if c.conn == nil {
		// No session could even be started yet; the client is trying again.
		return nil, 0, c.unreachable(zk.ErrNoServer)
	}
	return c.conn, c.sessionID, nil
}

// call runs fn, which talks to ZooKeeper, until it returns or ctx ends. go-zookeeper's calls take
// no context, so when ctx ends first the call goes on in the background and, once it returns,
// abandoned (if not nil) runs with its error, so that what the call did can be undone.
func (c *Client) call(ctx context.Context, fn func() error, abandoned func(error)) error {
	if ctx.Done() == nil {
		return fn()
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(ctx)
	}
	var (
		mu       sync.Mutex
		finished bool
		gaveUp   bool
	)
	done := make(chan error, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := fn()
		mu.Lock()
		finished = true
		g := gaveUp
		mu.Unlock()
		done <- err
		if g && abandoned != nil {
			abandoned(err)
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		mu.Lock()
		if finished {
			mu.Unlock()
			return <-done
		}
		gaveUp = true
		mu.Unlock()
		return ctxErr(ctx)
	}
}

// translate maps go-zookeeper's errors to what callers should see: after Close, ErrClosed; a
// request cut short because its connection was replaced, a connection loss.
func (c *Client) translate(err error) error {
	if err == nil {
		return nil
	}
	if c.isClosed() && !errors.Is(err, ErrClosed) {
		if errors.Is(err, zk.ErrClosing) || errors.Is(err, zk.ErrConnectionClosed) || retry.IsRetryable(err) {
			return ErrClosed
		}
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	if errors.Is(err, zk.ErrClosing) {
		return zk.ErrConnectionClosed
	}
	return err
}

// do runs fn under the retry policy: each try waits for a connection, and fn gets it.
func (c *Client) do(ctx context.Context, op, path string, fn func(conn *zk.Conn) error) error {
	err := retry.Do(ctx, c.opts.retryPolicy, func() error {
		conn, _, err := c.connForTry(ctx)
		if err != nil {
			return err
		}
		err = c.translate(c.call(ctx, func() error { return fn(conn) }, nil))
		if retry.IsRetryable(err) {
			c.log.Debug("zookeeper operation failed, retrying", zap.String("op", op), zap.String("path", path), zap.Error(err))
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("curator: %s %s: %w", op, path, c.translate(err))
	}
	return nil
}

func (c *Client) checkPath(op, p string) error {
	if err := ValidatePath(p); err != nil {
		return fmt.Errorf("curator: %s: %w", op, err)
	}
	return nil
}

// Get returns the data and Stat of the node at path.
func (c *Client) Get(ctx context.Context, path string) ([]byte, *zk.Stat, error) {
	if err := c.checkPath("get", path); err != nil {
		return nil, nil, err
	}
	var data []byte
	var st *zk.Stat
	err := c.do(ctx, "get", path, func(conn *zk.Conn) error {
		c.requests.Add(1)
		d, s, err := conn.Get(c.serverPath(path))
		data, st = d, s
		return err
	})
	if err != nil {
		return nil, nil, err // an abandoned try may still be writing data and st
	}
	return data, st, nil
}

// GetW is Get that also sets a data watch: the channel gets one event when the node changes or is
// deleted (or, with Type zk.EventNotWatching, when the watch can no longer fire). The watch is set
// only if the node exists. Event paths include the namespace.
func (c *Client) GetW(ctx context.Context, path string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	if err := c.checkPath("get", path); err != nil {
		return nil, nil, nil, err
	}
	var data []byte
	var st *zk.Stat
	var w <-chan zk.Event
	err := c.do(ctx, "get", path, func(conn *zk.Conn) error {
		c.requests.Add(1)
		d, s, ch, err := conn.GetW(c.serverPath(path))
		data, st, w = d, s, ch
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return data, st, w, nil
}

// Set writes data to the node at path if its version is version (-1 for any).
func (c *Client) Set(ctx context.Context, path string, data []byte, version int32) (*zk.Stat, error) {
	if err := c.checkPath("set", path); err != nil {
		return nil, err
	}
	var st *zk.Stat
	err := c.do(ctx, "set", path, func(conn *zk.Conn) error {
		c.requests.Add(1)
		s, err := conn.Set(c.serverPath(path), data, version)
		st = s
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Exists reports whether the node at path exists, with its Stat if it does.
func (c *Client) Exists(ctx context.Context, path string) (bool, *zk.Stat, error) {
	if err := c.checkPath("exists", path); err != nil {
		return false, nil, err
	}
	var ok bool
	var st *zk.Stat
	err := c.do(ctx, "exists", path, func(conn *zk.Conn) error {
		c.requests.Add(1)
		e, s, err := conn.Exists(c.serverPath(path))
		if !e {
			s = nil // go-zookeeper returns a zero Stat for a missing node
		}
		ok, st = e, s
		return err
	})
	if err != nil {
		return false, nil, err
	}
	return ok, st, nil
}

// ExistsW is Exists that also sets a watch, which fires when the node is created, changed or
// deleted.
func (c *Client) ExistsW(ctx context.Context, path string) (bool, *zk.Stat, <-chan zk.Event, error) {
	if err := c.checkPath("exists", path); err != nil {
		return false, nil, nil, err
	}
	var ok bool
	var st *zk.Stat
	var w <-chan zk.Event
	err := c.do(ctx, "exists", path, func(conn *zk.Conn) error {
		c.requests.Add(1)
		e, s, ch, err := conn.ExistsW(c.serverPath(path))
		if !e {
			s = nil // go-zookeeper returns a zero Stat for a missing node
		}
		ok, st, w = e, s, ch
		return err
	})
	if err != nil {
		return false, nil, nil, err
	}
	return ok, st, w, nil
}

// Children returns the names of the children of the node at path, unsorted, and the node's Stat.
func (c *Client) Children(ctx context.Context, path string) ([]string, *zk.Stat, error) {
	if err := c.checkPath("children", path); err != nil {
		return nil, nil, err
	}
	var names []string
	var st *zk.Stat
	err := c.do(ctx, "children", path, func(conn *zk.Conn) error {
		c.requests.Add(1)
		n, s, err := conn.Children(c.serverPath(path))
		names, st = n, s
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return names, st, nil
}

// ChildrenW is Children that also sets a watch, which fires when a child is created or deleted or
// the node is deleted.
func (c *Client) ChildrenW(ctx context.Context, path string) ([]string, *zk.Stat, <-chan zk.Event, error) {
	if err := c.checkPath("children", path); err != nil {
		return nil, nil, nil, err
	}
	var names []string
	var st *zk.Stat
	var w <-chan zk.Event
	err := c.do(ctx, "children", path, func(conn *zk.Conn) error {
		c.requests.Add(1)
		n, s, ch, err := conn.ChildrenW(c.serverPath(path))
		names, st, w = n, s, ch
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return names, st, w, nil
}

// Delete deletes the node at path if its version is version (-1 for any).
func (c *Client) Delete(ctx context.Context, path string, version int32) error {
	if err := c.checkPath("delete", path); err != nil {
		return err
	}
	return c.do(ctx, "delete", path, func(conn *zk.Conn) error {
		c.requests.Add(1)
		return conn.Delete(c.serverPath(path), version)
	})
}

// DeleteGuaranteed deletes the node at path, as Curator's delete().guaranteed(): a node that is
// already gone counts as deleted, and if the delete fails for connection reasons (or ctx ends) the
// client keeps trying in the background, after every reconnect, until the node is gone or the
// client is closed. It returns nil once the node is deleted or its deletion is handed to the
// background, and an error only for a logical failure (no auth, not empty) or a closed client.
func (c *Client) DeleteGuaranteed(ctx context.Context, path string) error {
	if err := c.checkPath("delete", path); err != nil {
		return err
	}
	err := c.Delete(ctx, path, -1)
	switch {
	case err == nil, errors.Is(err, zk.ErrNoNode):
		return nil
	case errors.Is(err, ErrClosed):
		return err
	case retry.IsRetryable(err), errors.Is(err, retry.ErrRetriesExhausted), ctx.Err() != nil:
		c.log.Info("delete failed, will keep trying in the background", zap.String("path", path), zap.Error(err))
		c.deleter.add(deleteJob{path: c.serverPath(path)})
		return nil
	}
	return err
}

// PendingDeletes returns how many guaranteed deletes (and clean-ups of abandoned protected
// creates) are still waiting to be done in the background.
func (c *Client) PendingDeletes() int { return c.deleter.pending() }

// Create makes a node at path with data (nil means the client's default data; use []byte{} for
// none) in the given mode, retried under the policy. With WithProtection the node's name gets
// Curator's protected prefix and a connection loss during the create is resolved without an orphan
// or a duplicate; with WithParents missing parents are created as containers.
func (c *Client) Create(ctx context.Context, path string, data []byte, mode CreateMode, opts ...CreateOption) (Created, error) {
	if err := c.checkPath("create", path); err != nil {
		return Created{}, err
	}
	if path == "/" {
		return Created{}, fmt.Errorf("curator: create: %w: path \"/\" exists always", ErrInvalidArgument)
	}
	if mode < Persistent || mode > Container {
		return Created{}, fmt.Errorf("curator: create %s: %w: create mode %d", path, ErrInvalidArgument, int(mode))
	}
	o := createOptions{acl: c.opts.acl}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if data == nil {
		data = c.data
	}
	if !o.protected {
		var res Created
		err := c.do(ctx, "create", path, func(conn *zk.Conn) error {
			sid := conn.SessionID()
			name, err := c.createOnce(conn, c.serverPath(path), data, mode, o)
			if err != nil {
				return err
			}
			res = Created{Path: c.userPath(name)}
			if mode.IsEphemeral() {
				res.SessionID, err = c.ownerOf(conn, name, sid)
			}
			return err
		})
		if err != nil {
			return Created{}, err // an abandoned try may still be writing res
		}
		return res, nil
	}
	return c.createProtected(ctx, path, data, mode, o, nil)
}

// errCreatedNodeGone reports that an ephemeral node was created in a session that ended before the
// create's reply was seen. It wraps a connection loss, so the create is tried again.
var errCreatedNodeGone = fmt.Errorf("%w: created node vanished with its session", zk.ErrConnectionClosed)

// ownerOf returns the session that owns the ephemeral node at server path name, just created on
// conn whose session was sid when the create was sent. If the session is unchanged, it is that
// one; if not, the create may have gone out on a newer session, and the node's Stat tells.
func (c *Client) ownerOf(conn *zk.Conn, name string, sid int64) (int64, error) {
	if now := conn.SessionID(); now == sid && sid != 0 {
		return sid, nil
	}
	c.requests.Add(1)
	ok, st, err := conn.Exists(name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, errCreatedNodeGone
	}
	return st.EphemeralOwner, nil
}

func (c *Client) createProtected(ctx context.Context, path string, data []byte, mode CreateMode, o createOptions, list *Listing) (Created, error) {
	parent, name := SplitPath(c.serverPath(path))
	prefix := ProtectedPrefix + newUUID() + "-"
	full := JoinPath(parent, prefix+name)
	var (
		res          Created
		recorded     int64 // the session of the last create sent
		tries        int
		maybeCreated bool
	)
	cleanup := func() { c.deleter.add(deleteJob{parent: parent, prefix: prefix}) }
	err := retry.Do(ctx, c.opts.retryPolicy, func() error {
		conn, sid, err := c.connForTry(ctx)
		if err != nil {
			return err
		}
		tries++
		try := tries
		err = c.call(ctx, func() error {
			if try > 1 {
				found, err := c.findProtected(conn, parent, prefix)
				if err != nil {
					return err
				}
				if found != "" {
					if !mode.IsEphemeral() || (sid == recorded && sid != 0) {
						res = Created{Path: c.userPath(found)}
						if mode.IsEphemeral() {
							res.SessionID = sid
						}
						return nil
					}
					// Made by a session that has ended since: not ours to hold. Remove it and
					// create anew in this session.
					c.log.Info("protected node of an ended session found, deleting it", zap.String("path", found))
					c.deleter.add(deleteJob{path: found})
				}
			}
			recorded = sid
			var (
				created string
				err     error
			)
			if list != nil && try == 1 {
				created, err = c.createThenList(conn, full, parent, data, mode, o, list)
			} else {
				created, err = c.createOnce(conn, full, data, mode, o)
			}
			if err != nil {
				return err
			}
			res = Created{Path: c.userPath(created)}
			if mode.IsEphemeral() {
				res.SessionID, err = c.ownerOf(conn, created, sid)
			}
			return err
		}, func(error) { cleanup() })
		err = c.translate(err)
		if retry.IsRetryable(err) {
			maybeCreated = true
			c.log.Debug("protected create failed, retrying", zap.String("path", full), zap.Error(err))
		}
		return err
	})
	if err != nil {
		if maybeCreated && !c.isClosed() {
			cleanup()
		}
		return Created{}, fmt.Errorf("curator: create %s: %w", path, c.translate(err))
	}
	return res, nil
}

// findProtected looks among parent's children for the one with the protected prefix.
func (c *Client) findProtected(conn *zk.Conn, parent, prefix string) (string, error) {
	c.requests.Add(1)
	names, _, err := conn.Children(parent)
	if errors.Is(err, zk.ErrNoNode) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			return JoinPath(parent, n), nil
		}
	}
	return "", nil
}

// createOnce makes one node at server path p, creating missing parents first if asked to when the
// create finds no parent.
func (c *Client) createOnce(conn *zk.Conn, p string, data []byte, mode CreateMode, o createOptions) (string, error) {
	name, err := c.rawCreate(conn, p, data, mode, o.acl)
	if errors.Is(err, zk.ErrNoNode) && o.parents {
		parent, _ := SplitPath(p)
		if err := c.mkdirs(conn, parent); err != nil {
			return "", err
		}
		name, err = c.rawCreate(conn, p, data, mode, o.acl)
	}
	return name, err
}

func (c *Client) rawCreate(conn *zk.Conn, p string, data []byte, mode CreateMode, acl []zk.ACL) (string, error) {
	c.requests.Add(1)
	if mode == Container {
		if c.opts.noContainers || c.serverLacksContainers.Load() {
			return conn.Create(p, data, 0, acl)
		}
		name, err := conn.CreateContainer(p, data, zk.FlagContainer, acl)
		if err != nil && isUnimplemented(err) {
			c.serverLacksContainers.Store(true)
			c.log.Warn("the server does not support container nodes; creating persistent nodes instead")
			c.requests.Add(1)
			return conn.Create(p, data, 0, acl)
		}
		return name, err
	}
	return conn.Create(p, data, mode.flags(), acl)
}

func isUnimplemented(err error) bool { return strings.Contains(err.Error(), "unknown error: -6") }

// mkdirs creates server path p and its missing ancestors as containers, the deepest first: it
// tries p, and on NoNode makes the parent and tries again, so existing levels cost nothing.
func (c *Client) mkdirs(conn *zk.Conn, p string) error {
	if p == "/" {
		return nil
	}
	_, err := c.rawCreate(conn, p, []byte{}, Container, c.opts.acl)
	if errors.Is(err, zk.ErrNoNode) {
		parent, _ := SplitPath(p)
		if err := c.mkdirs(conn, parent); err != nil {
			return err
		}
		_, err = c.rawCreate(conn, p, []byte{}, Container, c.opts.acl)
	}
	if err == nil || errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}

// DeleteInBackground hands the node at path to the client's guaranteed-delete worker without
// trying it here: the worker deletes it as soon as the client is connected, and keeps trying until
// the node is gone or the client is closed. It never blocks.
func (c *Client) DeleteInBackground(path string) {
	if ValidatePath(path) != nil || c.isClosed() {
		return
	}
	c.deleter.add(deleteJob{path: c.serverPath(path)})
}
