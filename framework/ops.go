package framework

import (
	"context"
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

func (m CreateMode) isSequential() bool { return m == PersistentSequential || m == EphemeralSequential }

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
	aclSet    bool // acl was given with WithNodeACL
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

// WithNodeACL sets the ACL of the created node instead of the client's (WithACL) or the ACL
// provider's (WithACLProvider); the parents that WithParents makes still get the client's. acl is
// checked with ValidateACL: a create with an ACL it refuses (nil or empty, say) fails, unsent, with
// an error wrapping ErrInvalidArgument and zk.ErrInvalidACL.
func WithNodeACL(acl []zk.ACL) CreateOption {
	acl = slices.Clone(acl)
	return func(o *createOptions) { o.acl, o.aclSet = acl, true }
}

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

// errNotConnected is the error of a try that connForTry did not make: the client was not connected
// within the connection timeout. It is retryable: nothing was sent.
var errNotConnected = fmt.Errorf("%w (not connected within the connection timeout; nothing sent)", zk.ErrNoServer)

// errConnPeriodEnded is the error of a try that connForTry did not make because the connection it
// waited for dropped (or was replaced) before the try could be handed to it. It is retryable:
// nothing was sent.
var errConnPeriodEnded = fmt.Errorf("%w (the connection dropped as the request was about to be sent; nothing sent)", zk.ErrNoServer)

// connForTry returns the connection to try an operation on, after waiting up to the connection
// timeout for the client to be connected. It never returns a connection the client does not know
// to be up: after the connection timeout the try fails, retryably and with nothing sent, to be
// retried under the policy (with zk.ErrNoServer saying why if attempts to connect are failing,
// else errNotConnected). go-zookeeper would queue a request made while it is disconnected and send
// it whenever it reconnects, however long after its caller gave up. If ctx ends first, the error
// wraps ctx's and says why the last attempt to connect failed. It never returns a nil connection
// without an error.
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
	refused, err := c.authRefusedLocked()
	if err != nil {
		// The server refused the credentials: fail at once rather than go on without them.
		c.mu.Unlock()
		return nil, 0, err
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
		case <-refused:
		case <-t.C:
			if err := c.lastConnErr(); err != nil {
				// Attempts to connect are failing: say why, as a retryable connection error.
				return nil, 0, fmt.Errorf("%w (no server reachable: %w)", zk.ErrNoServer, err)
			}
			return nil, 0, errNotConnected
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
	if c.connectedCh != ch {
		// The connected period it waited for ended meanwhile (a drop noticed, or a new session's
		// connection): nothing is sent on a connection not known to be up.
		return nil, 0, errConnPeriodEnded
	}
	if err := c.authReadyLocked(); err != nil {
		// Never a request on a session whose credentials the server has not accepted: it would
		// go out without them.
		return nil, 0, err
	}
	return c.conn, c.sessionID, nil
}

// call runs fn, which talks to ZooKeeper, until it returns, ctx ends or the client is closed.
// go-zookeeper's calls take no context, so when ctx ends first the call goes on in the background
// and, once it returns, abandoned (if not nil) runs with its error, so that what the call did can
// be undone.
func (c *Client) call(ctx context.Context, fn func() error, abandoned func(error)) error {
	return c.callUntil(ctx, nil, fn, abandoned)
}

// errConnDropped is the error of a call that callUntil gave up because its stop channel closed
// (the connected period it was made in ended). It is a connection loss: the request may or may
// not have been applied.
var errConnDropped = fmt.Errorf("%w: the connection dropped while the request was in flight", zk.ErrConnectionClosed)

// callUntil is call that also gives up when stop (if not nil) is closed, with errConnDropped.
//
// A call that can be given up runs on a goroutine of its own, and at most maxCallsInFlight such
// calls of a client run at once: one beyond that first waits, in its caller, for one of them to
// end (and gives up as the call would, without having sent anything). The bound changes no
// request; it keeps the goroutines, and their stacks, that thousands of simultaneous operations
// would start at once to a few hundred. A call with a stop channel (a guaranteed delete, which
// must not wait behind other calls: a release bounds its wait) is not counted and never waits.
func (c *Client) callUntil(ctx context.Context, stop <-chan struct{}, fn func() error, abandoned func(error)) error {
	if ctx.Done() == nil && stop == nil {
		// Close waits for it briefly, then fails every request in flight (go-zookeeper flushes
		// them), so fn returns then.
		return c.direct(fn)
	}
	if ctx.Err() != nil {
		return ctxErr(ctx)
	}
	p := &pendingCall{fn: fn, abandoned: abandoned, done: make(chan struct{})}
	if stop == nil {
		if err := c.calls.enter(c, ctx, nil); err != nil {
			return err
		}
		p.gate = &c.calls
	}
	if err := c.start(p); err != nil {
		return err
	}
	return c.await(ctx, stop, p)
}

// start runs p on a goroutine that Close waits for. If the client is closed it runs nothing, gives
// back p's place (see callGate) and returns ErrClosed. The goroutine is counted under c.mu, where
// Close marks the client closed before it waits for the count: a count taken after that wait began
// would race it.
func (c *Client) start(p *pendingCall) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		if p.gate != nil {
			p.gate.leave()
		}
		return ErrClosed
	}
	// One look under c.mu counts both the call in flight (enterCall) and its goroutine (goCounted).
	c.inCalls++
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer c.leaveCall()
		p.run()
	}()
	return nil
}

// direct runs fn, a call to go-zookeeper, on the caller's goroutine, counted as a call in flight
// (see enterCall); once the client is closed it returns ErrClosed without running fn.
func (c *Client) direct(fn func() error) error {
	if !c.enterCall() {
		return ErrClosed
	}
	defer c.leaveCall()
	return fn()
}

// goCounted runs fn on a goroutine that Close waits for, and reports true; once the client is
// closed it runs nothing and reports false. The goroutine is counted under c.mu, where Close marks
// the client closed before it waits for the count: a count taken after that wait began would race
// it.
func (c *Client) goCounted(fn func()) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		fn()
	}()
	return true
}

// callRunner is call of r.run(), with r.abandoned as the abandoned function.
func (c *Client) callRunner(ctx context.Context, r runner) error {
	if ctx.Done() == nil {
		return c.direct(r.run)
	}
	if err := c.calls.enter(c, ctx, nil); err != nil {
		return err
	}
	p := &pendingCall{runner: r, done: make(chan struct{}), gate: &c.calls}
	if err := c.start(p); err != nil {
		return err
	}
	return c.await(ctx, nil, p)
}

// runner is the work of a call and what undoes it if the call is abandoned (see call).
type runner interface {
	run() error
	abandoned(err error)
}

// callConn is call of fn(conn): the same, without a closure to bind conn.
func (c *Client) callConn(ctx context.Context, conn *zk.Conn, fn func(*zk.Conn) error) error {
	if ctx.Done() == nil {
		return c.direct(func() error { return fn(conn) })
	}
	if err := c.calls.enter(c, ctx, nil); err != nil {
		return err
	}
	p := &pendingCall{connFn: fn, conn: conn, done: make(chan struct{}), gate: &c.calls}
	if err := c.start(p); err != nil {
		return err
	}
	return c.await(ctx, nil, p)
}

// maxCallsInFlight bounds the calls of a client that run on goroutines of their own at once. It is
// far above what keeps a server busy (requests of a session are answered in order, one at a time)
// and far below the thousands of waiters a process may start at once.
const maxCallsInFlight = 256

// callGate bounds the calls of a client that run on goroutines of their own. Its zero value is
// ready to use.
type callGate struct {
	once  sync.Once
	slots chan struct{}
}

func (g *callGate) ch() chan struct{} {
	g.once.Do(func() { g.slots = make(chan struct{}, maxCallsInFlight) })
	return g.slots
}

// enter takes a place for one call, waiting for one if all are taken; the wait ends, with the error
// the call would have given up with, when ctx ends, stop closes or c is closed.
func (g *callGate) enter(c *Client, ctx context.Context, stop <-chan struct{}) error {
	if ctx.Err() != nil {
		return ctxErr(ctx)
	}
	slots := g.ch()
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case slots <- struct{}{}:
		return nil
	case <-ctx.Done():
	case <-stop:
	case <-c.closedCh:
	}
	return c.abandonedError(ctx, stop)
}

// leave gives back the place of a call that has returned.
func (g *callGate) leave() { <-g.slots }

// await waits for p's result, or for ctx or stop to end the wait first, in which case p is marked
// abandoned and the error says why. The client's Close does not end the wait: Close lets the calls
// in flight end (see Close), with their answers, or fails them when it closes the connection, so
// that a caller told its call failed never sees it applied afterwards.
func (c *Client) await(ctx context.Context, stop <-chan struct{}, p *pendingCall) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
	case <-stop:
	}
	if !p.state.CompareAndSwap(callRunning, callAbandoned) {
		<-p.done // it finished meanwhile: its result stands
		return p.err
	}
	return c.abandonedError(ctx, stop)
}

// abandonedError says why a call was given up: ctx ended, stop closed or the client was closed.
//
//go:noinline
func (c *Client) abandonedError(ctx context.Context, stop <-chan struct{}) error {
	if ctx.Err() != nil {
		return ctxErr(ctx)
	}
	select {
	case <-stop:
		return errConnDropped
	default:
		return ErrClosed
	}
}

// The states of a pendingCall.
const (
	callRunning int32 = iota
	callFinished
	callAbandoned
)

// pendingCall is a go-zookeeper call running on a goroutine of its own so that its caller can stop
// waiting for it: fn(), or connFn(conn).
type pendingCall struct {
	fn        func() error
	runner    runner
	connFn    func(*zk.Conn) error
	conn      *zk.Conn
	abandoned func(error)   // run with the call's error if the caller stopped waiting first
	done      chan struct{} // closed once err is set
	err       error         // the call's error
	gate      *callGate     // left when the call returns; nil if not counted
	state     atomic.Int32
}

func (p *pendingCall) run() {
	var err error
	switch {
	case p.connFn != nil:
		err = p.connFn(p.conn)
	case p.runner != nil:
		err = p.runner.run()
	default:
		err = p.fn()
	}
	if p.gate != nil {
		p.gate.leave()
	}
	p.err = err
	close(p.done)
	if p.state.CompareAndSwap(callRunning, callFinished) {
		return
	}
	switch {
	case p.runner != nil:
		p.runner.abandoned(err)
	case p.abandoned != nil:
		p.abandoned(err)
	}
}

// retryOp runs op under the client's retry policy (retry.DoUntil), with every wait, the sleep
// between two tries included, ending when the client is closed: the error then wraps ErrClosed
// (and op's last error), not a context error.
func (c *Client) retryOp(ctx context.Context, op func() error) error {
	err := retry.DoUntil(ctx, c.closedCh, c.opts.retryPolicy, op)
	if errors.Is(err, retry.ErrStopped) && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
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
	if isNetworkError(err) {
		// go-zookeeper hands a request the error of the write that failed to send it (a reset
		// connection, say): a connection loss like any other.
		return fmt.Errorf("%w: %w", zk.ErrConnectionClosed, err)
	}
	return err
}

// isNetworkError reports whether err is the connection's own failure (a network error, an
// unexpected end of stream), not an answer of the server's.
func isNetworkError(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false // a caller's context, which is a net.Error too
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// do runs fn under the retry policy: each try waits for a connection, and fn gets it. Every
// wait ends when ctx ends or the client is closed.
func (c *Client) do(ctx context.Context, op, path string, fn func(conn *zk.Conn) error) error {
	t := opTry{c: c, ctx: ctx, op: op, path: path, fn: fn}
	if err := c.retryOp(ctx, t.try); err != nil {
		return c.opError(op, path, err)
	}
	return nil
}

// opTry is one try of an operation of do.
type opTry struct {
	c        *Client
	ctx      context.Context
	op, path string
	fn       func(conn *zk.Conn) error
}

func (t *opTry) try() error {
	conn, _, err := t.c.connForTry(t.ctx)
	if err != nil {
		return err
	}
	err = t.c.translate(t.c.callConn(t.ctx, conn, t.fn))
	if retry.IsRetryable(err) {
		t.c.logRetry("zookeeper operation failed, retrying", t.op, t.path, err)
	}
	return err
}

// opError is the error of operation op on path that failed with err.
//
//go:noinline
func (c *Client) opError(op, path string, err error) error {
	return fmt.Errorf("curator: %s %s: %w", op, path, c.translate(err))
}

// logRetry logs, at debug level, a try that failed and will be retried. It is apart from its
// callers so that their frames, which a waiting request's stack holds, stay small.
//
//go:noinline
func (c *Client) logRetry(msg, op, path string, err error) {
	if ce := c.log.Check(zap.DebugLevel, msg); ce != nil {
		ce.Write(zap.String("op", op), zap.String("path", path), zap.Error(err))
	}
}

func (c *Client) checkPath(op, p string) error {
	if err := ValidatePath(p); err != nil {
		return fmt.Errorf("curator: %s: %w", op, err)
	}
	return nil
}

// ErrRequestTooLarge is wrapped, with ErrInvalidArgument, by the error of an operation whose
// request is larger than the server accepts (see WithMaxRequestBytes). Such a request is never
// sent: the server would drop the connection, suspending everything the client holds, and refuse
// it again on every retry.
var ErrRequestTooLarge = errors.New("curator: request too large")

// Encoded sizes, as go-zookeeper writes requests (jute): a request header (xid and opcode), then
// the fields; a string or a byte slice is a 4-byte length and its bytes.
const (
	requestHeaderBytes = 8
	lenBytes           = 4
	int32Bytes         = 4
)

// pathRequestBytes is the size of a request of server path p followed by extra bytes of fields.
func pathRequestBytes(p string, extra int) int {
	return requestHeaderBytes + lenBytes + len(p) + extra
}

// watchRequestBytes is the size of a get, exists or children request (path and watch flag).
func watchRequestBytes(p string) int { return pathRequestBytes(p, 1) }

// deleteRequestBytes is the size of a delete request (path and version).
func deleteRequestBytes(p string) int { return pathRequestBytes(p, int32Bytes) }

// setRequestBytes is the size of a set request (path, data and version).
func setRequestBytes(p string, data []byte) int {
	return pathRequestBytes(p, lenBytes+len(data)+int32Bytes)
}

// createRequestBytes is the size of a create request (path, data, ACL list and flags).
func createRequestBytes(p string, data []byte, acl []zk.ACL) int {
	n := lenBytes // the ACL list's length
	for _, a := range acl {
		n += int32Bytes + lenBytes + len(a.Scheme) + lenBytes + len(a.ID)
	}
	return pathRequestBytes(p, lenBytes+len(data)+n+int32Bytes)
}

// checkRequest returns an error wrapping ErrRequestTooLarge and ErrInvalidArgument if a request of
// size bytes, for operation op on path (as the caller gave it), is larger than the client sends.
func (c *Client) checkRequest(op, path string, size int) error {
	if size <= c.opts.maxRequestBytes {
		return nil
	}
	return fmt.Errorf("curator: %s %.64q: %w: %w: the request would be %d bytes, more than the limit of %d bytes (the server's jute.maxbuffer)",
		op, path, ErrInvalidArgument, ErrRequestTooLarge, size, c.opts.maxRequestBytes)
}

// checkWatchRequest checks path and the size of a get, exists or children request for it.
func (c *Client) checkWatchRequest(op, path string) error {
	if err := c.checkPath(op, path); err != nil {
		return err
	}
	return c.checkRequest(op, path, watchRequestBytes(c.serverPath(path)))
}

// sequenceDigits is the length of the sequence number the server appends to a sequential node.
const sequenceDigits = 10

// CheckCreate reports, without sending anything, whether Create(ctx, path, data, mode, ...) may
// succeed as far as the client can tell: path is valid (see ValidatePath) and not "/", and the
// create request, counting the client's namespace and ACL, the protected prefix and a sequence
// number, is no larger than the client sends (see WithMaxRequestBytes). data nil means the
// client's default data. The error wraps ErrInvalidArgument, and ErrRequestTooLarge if the size is
// the problem. A recipe calls it to fail fast on input that no create could accept.
func (c *Client) CheckCreate(path string, data []byte) error {
	if err := c.checkPath("create", path); err != nil {
		return err
	}
	if path == "/" {
		return fmt.Errorf("curator: create: %w: path \"/\" exists always", ErrInvalidArgument)
	}
	if data == nil {
		data = c.data
	}
	acl, err := c.aclFor(path)
	if err != nil {
		return fmt.Errorf("curator: create %s: %w", path, err)
	}
	parent, name := SplitPath(c.serverPath(path))
	worst := JoinPath(parent, ProtectedPrefix+strings.Repeat("0", protectedPrefixLength-len(ProtectedPrefix))+name+strings.Repeat("0", sequenceDigits))
	return c.checkRequest("create", path, createRequestBytes(worst, data, acl))
}

// checkCreateRequest checks the size of a create of path (validated) in mode with options o,
// counting the protected prefix and the sequence number where they apply: a node whose name is
// too long to be sent in a request could be made, but not then deleted.
func (c *Client) checkCreateRequest(path string, data []byte, mode CreateMode, o createOptions) error {
	// The size counts the path's length only: the protected prefix (protectedPrefixLength
	// characters before the name) and the sequence number add to it without being spelled out.
	extra := 0
	if o.protected {
		extra += protectedPrefixLength
	}
	if mode.isSequential() {
		extra += sequenceDigits
	}
	size := createRequestBytes(c.serverPath(path), data, o.acl) + extra
	return c.checkRequest("create", path, size)
}

// Get returns the data and Stat of the node at path.
func (c *Client) Get(ctx context.Context, path string) ([]byte, *zk.Stat, error) {
	if err := c.checkWatchRequest("get", path); err != nil {
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
	if err := c.checkWatchRequest("get", path); err != nil {
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
	if err := c.checkRequest("set", path, setRequestBytes(c.serverPath(path), data)); err != nil {
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
	if err := c.checkWatchRequest("exists", path); err != nil {
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
	if err := c.checkWatchRequest("exists", path); err != nil {
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
	if err := c.checkWatchRequest("children", path); err != nil {
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
	if err := c.checkWatchRequest("children", path); err != nil {
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
	if err := c.checkRequest("delete", path, deleteRequestBytes(c.serverPath(path))); err != nil {
		return err
	}
	return c.do(ctx, "delete", path, func(conn *zk.Conn) error {
		c.requests.Add(1)
		return conn.Delete(c.serverPath(path), version)
	})
}

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
	o, err := c.createOptionsFor(path, createOptions{}, opts)
	if err != nil {
		return Created{}, err
	}
	if data == nil {
		data = c.data
	}
	if err := c.checkCreateRequest(path, data, mode, o); err != nil {
		return Created{}, err
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
// one (a session never comes back once replaced); if not, the create may have gone out on a newer
// session, and the node's Stat tells.
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

// createProtected makes a protected node, retried under the policy. Every try after the first
// looks for the node an earlier try may have made (by the protected prefix, which holds a UUID of
// this create's own) and keeps it if it is ours (see adoptProtected), so the create is idempotent:
// it makes one node, whatever number of tries it takes.
func (c *Client) createProtected(ctx context.Context, path string, data []byte, mode CreateMode, o createOptions, list *Listing) (Created, error) {
	t := &protectedCreate{c: c, ctx: ctx, data: data, mode: mode, o: o, list: list}
	t.parent, t.name = SplitPath(c.serverPath(path))
	t.prefix = ProtectedPrefix + newUUID() + "-"
	t.full = JoinPath(t.parent, t.prefix+t.name)
	if err := c.retryOp(ctx, t.try); err != nil {
		return Created{}, t.failed(path, err)
	}
	return t.res, nil
}

// protectedCreate is the state of one createProtected, which its tries share.
type protectedCreate struct {
	c            *Client
	ctx          context.Context
	data         []byte
	mode         CreateMode
	o            createOptions
	list         *Listing
	parent, name string
	prefix, full string
	res          Created
	tries        int
	maybeCreated bool
}

// try is one try of the create, under the retry policy.
func (t *protectedCreate) try() error {
	c := t.c
	conn, _, err := c.connForTry(t.ctx)
	if err != nil {
		return err
	}
	t.tries++
	err = c.translate(c.callRunner(t.ctx, &protectedTry{t: t, conn: conn, try: t.tries}))
	if retry.IsRetryable(err) {
		t.maybeCreated = true
		c.logRetry("protected create failed, retrying", "create", t.full, err)
	}
	return err
}

// protectedTry is one try of a protectedCreate, on conn, run as a call.
type protectedTry struct {
	t    *protectedCreate
	conn *zk.Conn
	try  int
}

func (p *protectedTry) run() error {
	t := p.t
	r, err := t.c.createProtectedTry(p.conn, p.try, t.parent, t.prefix, t.full, t.data, t.mode, t.o, t.list)
	if err == nil {
		t.res = r
	}
	return err
}

// abandoned is run when the try's caller stopped waiting for it: the node it may make is removed.
func (p *protectedTry) abandoned(error) { p.t.cleanup() }

// cleanup has whatever node the create made (by its prefix) removed in the background.
func (t *protectedCreate) cleanup() {
	t.c.deleter.add(deleteJob{parent: t.parent, prefix: t.prefix}, nil)
}

// failed is the error of the create when its last try failed with err; it has a node that a try
// may have made removed.
//
//go:noinline
func (t *protectedCreate) failed(path string, err error) error {
	if t.maybeCreated && !t.c.isClosed() {
		t.cleanup()
	}
	return fmt.Errorf("curator: create %s: %w", path, t.c.translate(err))
}

// createProtectedTry is one try of createProtected, on conn. The node is server path full (to
// which the server appends a sequence number in the sequential modes), under parent, and prefix is
// its protected prefix. Its first try pipelines the listing into list if list is not nil.
func (c *Client) createProtectedTry(conn *zk.Conn, try int, parent, prefix, full string, data []byte, mode CreateMode, o createOptions, list *Listing) (Created, error) {
	if try > 1 {
		// An earlier try may have made the node. On one server, the requests of a session are
		// answered in order, so whatever an earlier try sent is done by now; but after a reconnect
		// to another member of an ensemble, that member may not have applied yet a create that the
		// earlier try sent through the old one. A sync first brings it up to the leader (which
		// answers the sync only after the proposals it had already received), so the listing sees
		// the earlier try's node if it was made; otherwise a second node would be made under the
		// same prefix, and the first left behind in a live session.
		c.requests.Add(1)
		if _, err := conn.Sync(parent); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return Created{}, err
		}
		found, err := c.findProtected(conn, parent, prefix)
		if err != nil {
			return Created{}, err
		}
		res, ok, err := c.adoptProtected(conn, found, mode)
		if err != nil || ok {
			return res, err
		}
	}
	sid := conn.SessionID() // the session the create goes out on, if it does not change meanwhile
	var (
		created string
		err     error
	)
	if list != nil && try == 1 {
		created, err = c.createThenList(conn, full, parent, data, mode, o, list)
	} else {
		created, err = c.createOnce(conn, full, data, mode, o)
	}
	if errors.Is(err, zk.ErrNodeExists) && !mode.isSequential() {
		// The name holds our UUID: the node is one an earlier try made, whose outcome this try
		// did not see (a reply held past the retry). Keep it if it is ours, else it is gone now.
		res, ok, aerr := c.adoptProtected(conn, []string{full}, mode)
		if aerr != nil || ok {
			return res, aerr
		}
		sid = conn.SessionID()
		created, err = c.createOnce(conn, full, data, mode, o)
	}
	if err != nil {
		return Created{}, err
	}
	res := Created{Path: c.userPath(created)}
	if mode.IsEphemeral() {
		res.SessionID, err = c.ownerOf(conn, created, sid)
	}
	return res, err
}

// adoptProtected decides about found, the nodes (server paths) with a protected create's prefix:
// nodes an earlier try of the create made. It keeps one that is ours: any of a persistent mode,
// an ephemeral one only if its Stat's owner is conn's live session. Every other one (an ephemeral
// node of a session that has ended, or a second node the create made) it deletes now, before the
// caller creates again, so that a create of the same name meets no node and no background delete
// can remove the new node. ok reports whether a node was kept, and res describes it.
func (c *Client) adoptProtected(conn *zk.Conn, found []string, mode CreateMode) (res Created, ok bool, err error) {
	for _, p := range found {
		keep := false
		if !ok {
			if !mode.IsEphemeral() {
				keep = true
			} else {
				c.requests.Add(1)
				there, st, err := conn.Exists(p)
				if err != nil {
					return Created{}, false, err
				}
				if !there {
					continue // gone with its session
				}
				live := conn.SessionID() // the session that just answered
				keep = live != 0 && st.EphemeralOwner == live
				if keep {
					res.SessionID = live
				}
			}
		}
		if keep {
			res.Path, ok = c.userPath(p), true
			continue
		}
		if ok {
			c.log.Info("protected create made a second node, deleting it", zap.String("path", p))
		} else {
			c.log.Info("protected node of an ended session found, deleting it", zap.String("path", p))
		}
		c.requests.Add(1)
		if err := conn.Delete(p, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return Created{}, false, err
		}
	}
	if !ok {
		return Created{}, false, nil
	}
	return res, true, nil
}

// findProtected returns the children of parent with the protected prefix, as server paths, in
// name order (so the lowest sequence number first).
func (c *Client) findProtected(conn *zk.Conn, parent, prefix string) ([]string, error) {
	c.requests.Add(1)
	names, _, err := conn.Children(parent)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var found []string
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			found = append(found, JoinPath(parent, n))
		}
	}
	slices.Sort(found)
	return found, nil
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
// tries p, and on NoNode makes the parent and tries again, so existing levels cost nothing. Each
// gets the client's ACL for its path (see WithACLProvider).
func (c *Client) mkdirs(conn *zk.Conn, p string) error {
	if p == "/" {
		return nil
	}
	acl, err := c.aclForServer(p)
	if err != nil {
		return err
	}
	_, err = c.rawCreate(conn, p, []byte{}, Container, acl)
	if errors.Is(err, zk.ErrNoNode) {
		parent, _ := SplitPath(p)
		if err := c.mkdirs(conn, parent); err != nil {
			return err
		}
		_, err = c.rawCreate(conn, p, []byte{}, Container, acl)
	}
	if err == nil || errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}
