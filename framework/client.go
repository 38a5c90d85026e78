// Package framework is the ZooKeeper client that the recipes stand on, after Apache Curator's
// CuratorFramework: one session at a time with Curator's connection states (Connected, Suspended,
// Reconnected, Lost), operations retried under a retry.Policy, protected-mode creates that survive a
// connection loss in the middle of a create, parents created as container nodes, and a guaranteed
// delete that keeps trying in the background.
//
// Every method that takes a context honours it: a call whose context ends returns at once with an
// error wrapping the context's error. A protected create abandoned that way is cleaned up in the
// background, so it leaves no node behind.
package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
)

// ErrClosed is returned (wrapped) by every operation of a Client after Close.
var ErrClosed = errors.New("curator: client is closed")

// ErrNotStarted is returned by operations of a Client whose Start was not called.
var ErrNotStarted = errors.New("curator: client is not started")

// ErrInvalidArgument is wrapped by the errors that report bad input: a bad connect string, path,
// timeout or option. The error's text names the bad value.
var ErrInvalidArgument = errors.New("curator: invalid argument")

// Client is a ZooKeeper client with Curator's connection states, retried operations and protected
// creates. It wraps one go-zookeeper connection at a time: when a session is lost, the client opens
// a new one by itself. A Client is safe for use by many goroutines.
type Client struct {
	servers []string
	prefix  string // chroot and namespace, "" for none
	opts    options
	log     *zap.Logger
	data    []byte // default node data

	requests              atomic.Uint64 // requests sent to ZooKeeper
	serverLacksContainers atomic.Bool   // set once the server refused a container create
	lastHeard             atomic.Int64  // when the client last read from a server, in Unix ns
	writes                writeWatch    // creates waiting to be seen written, for pipelining

	mu            sync.Mutex
	started       bool
	closed        bool
	conn          *zk.Conn
	gen           uint64 // generation of conn; events of older conns are ignored
	state         State
	everConnected bool
	sessionID     int64 // the live session's id, 0 when there is none
	lastSessionID int64 // the id of the newest session the client had
	negotiated    time.Duration
	suspendTimer  *time.Timer
	connectedCh   chan struct{} // closed while connected
	connDone      chan struct{} // closed when the current connection period ends
	sessDone      chan struct{} // closed when the current session ends
	closedCh      chan struct{}

	listenMu  sync.Mutex
	listeners map[uint64]func(State)
	nextID    uint64
	queue     []State
	queueCond *sync.Cond
	dispatchW sync.WaitGroup

	deleter *deleter
	wg      sync.WaitGroup // goroutines that Close waits for
}

// closedChan is a channel that is always closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// NewClient returns a client for the ensemble in connectString ("host:port,host:port", with an
// optional "/chroot" suffix that, like a namespace, is put in front of every path). It validates
// its input and does not dial: call Start.
func NewClient(connectString string, opts ...Option) (*Client, error) {
	o := defaultOptions()
	for i, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("%w: option %d is nil", ErrInvalidArgument, i)
		}
		opt(&o)
	}
	if len(o.errs) > 0 {
		return nil, errors.Join(o.errs...)
	}
	servers, chroot, err := parseConnectString(connectString)
	if err != nil {
		return nil, err
	}
	c := &Client{
		servers:     servers,
		prefix:      chroot + o.namespace,
		opts:        o,
		log:         o.logger,
		connectedCh: make(chan struct{}),
		connDone:    closedChan,
		sessDone:    closedChan,
		closedCh:    make(chan struct{}),
		listeners:   map[uint64]func(State){},
	}
	if o.defaultDataSet {
		c.data = o.defaultData
	} else {
		c.data = localAddress()
	}
	c.queueCond = sync.NewCond(&c.listenMu)
	c.deleter = newDeleter(c)
	return c, nil
}

// Start starts connecting in the background. It returns an error only if the client was closed or
// started before.
func (c *Client) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("start: %w", ErrClosed)
	}
	if c.started {
		return errors.New("curator: client already started")
	}
	c.started = true
	c.dispatchW.Add(1)
	go c.dispatch()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.deleter.run()
	}()
	return c.openConnLocked()
}

// openConnLocked opens a new go-zookeeper connection (a new session). c.mu is held.
func (c *Client) openConnLocked() error {
	c.gen++
	gen := c.gen
	dialer := c.opts.dialer
	if dialer == nil {
		dialer = net.DialTimeout
	}
	track := func(network, address string, timeout time.Duration) (net.Conn, error) {
		conn, err := dialer(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return &trackedConn{Conn: conn, c: c}, nil
	}
	conn, _, err := zk.Connect(c.servers, c.opts.sessionTimeout,
		zk.WithLogger(zkLogger{c}),
		zk.WithEventCallback(func(ev zk.Event) { c.onEvent(gen, ev) }),
		zk.WithDialer(track))
	if err != nil {
		return fmt.Errorf("curator: connect to %v: %w", c.servers, err)
	}
	for _, a := range c.opts.auth {
		c.wg.Add(1)
		go func(a authInfo) {
			defer c.wg.Done()
			// go-zookeeper queues the auth until the session is up and re-sends it after reconnects.
			if err := conn.AddAuth(a.scheme, a.auth); err != nil && !errors.Is(err, zk.ErrClosing) {
				c.log.Warn("adding auth failed", zap.String("scheme", a.scheme), zap.Error(err))
			}
		}(a)
	}
	c.conn = conn
	return nil
}

// onEvent runs on go-zookeeper's goroutines for every event of the connection of generation gen.
// It must not block.
func (c *Client) onEvent(gen uint64, ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.closed || c.conn == nil {
		return
	}
	switch ev.State {
	case zk.StateHasSession, zk.StateConnectedReadOnly:
		sid := c.conn.SessionID()
		next := Reconnected
		switch {
		case !c.everConnected:
			next = Connected
			c.everConnected = true
		case sid != c.lastSessionID && c.state != Lost:
			// A new session without an Expired event: the old one is gone all the same.
			c.loseSessionLocked("session changed")
			c.setStateLocked(Lost)
		}
		if ev.State == zk.StateConnectedReadOnly {
			next = ReadOnly
		}
		if sid != c.lastSessionID {
			c.sessDone = make(chan struct{})
		}
		c.sessionID, c.lastSessionID = sid, sid
		c.stopSuspendTimerLocked()
		select {
		case <-c.connDone:
			c.connDone = make(chan struct{}) // a new connected period
		default: // still the current one: those waiting on it keep it
		}
		select {
		case <-c.connectedCh:
		default:
			close(c.connectedCh)
		}
		c.setStateLocked(next)
		c.log.Info("zookeeper session connected", zap.Stringer("state", next),
			zap.String("session", fmt.Sprintf("0x%x", sid)), zap.String("server", ev.Server))
		c.deleter.wake()
	case zk.StateDisconnected:
		if c.state.IsConnected() {
			c.suspendLocked()
		}
	case zk.StateExpired:
		if c.state == 0 {
			return
		}
		c.loseSessionLocked("session expired")
		c.setStateLocked(Lost)
	case zk.StateAuthFailed:
		c.log.Error("zookeeper authentication failed", zap.String("server", ev.Server))
	}
}

// suspendLocked moves to Suspended and starts the timer after which the session is presumed lost.
func (c *Client) suspendLocked() {
	c.connectedCh = make(chan struct{})
	close(c.connDone)
	c.setStateLocked(Suspended)
	timeout := c.opts.sessionTimeout
	if c.negotiated > 0 && c.negotiated < timeout {
		timeout = c.negotiated
	}
	// The server counts the session timeout from the last packet it had from us, not from the
	// moment we noticed the silence (go-zookeeper notices only after two thirds of the timeout), so
	// count from the last packet we had from the server.
	if last := c.lastHeard.Load(); last != 0 {
		timeout -= time.Since(time.Unix(0, last))
	}
	timeout = max(timeout, 0)
	c.log.Warn("zookeeper connection suspended", zap.Duration("lost_after", timeout))
	gen := c.gen
	c.stopSuspendTimerLocked()
	c.suspendTimer = time.AfterFunc(timeout, func() { c.suspendedTooLong(gen) })
}

// suspendedTooLong runs when the client has been Suspended for a whole session timeout: the server
// has surely expired the session, so the client reports Lost and opens a new session, as Curator
// does.
func (c *Client) suspendedTooLong(gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || c.closed || c.state != Suspended {
		return
	}
	c.log.Warn("zookeeper session presumed expired: suspended for the whole session timeout")
	c.loseSessionLocked("suspended for the session timeout")
	c.setStateLocked(Lost)
	old := c.conn
	if err := c.openConnLocked(); err != nil {
		c.log.Error("opening a new zookeeper session failed", zap.Error(err))
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		old.Close()
	}()
}

// loseSessionLocked ends the current session's signals.
func (c *Client) loseSessionLocked(why string) {
	select {
	case <-c.connectedCh:
		c.connectedCh = make(chan struct{})
	default:
	}
	select {
	case <-c.connDone:
	default:
		close(c.connDone)
	}
	select {
	case <-c.sessDone:
	default:
		close(c.sessDone)
	}
	if c.sessionID != 0 {
		c.log.Warn("zookeeper session lost", zap.String("session", fmt.Sprintf("0x%x", c.sessionID)), zap.String("why", why))
	}
	c.sessionID = 0
	c.stopSuspendTimerLocked()
}

func (c *Client) stopSuspendTimerLocked() {
	if c.suspendTimer != nil {
		c.suspendTimer.Stop()
		c.suspendTimer = nil
	}
}

// setStateLocked records a state change and queues it for the listeners. A repeat of the current
// state is not a change.
func (c *Client) setStateLocked(s State) {
	if s == c.state {
		return
	}
	c.state = s
	c.listenMu.Lock()
	c.queue = append(c.queue, s)
	c.queueCond.Signal()
	c.listenMu.Unlock()
}

// dispatch delivers state changes to the listeners, in order, on one goroutine.
func (c *Client) dispatch() {
	defer c.dispatchW.Done()
	c.listenMu.Lock()
	defer c.listenMu.Unlock()
	for {
		for len(c.queue) == 0 {
			if c.isClosed() {
				return
			}
			c.queueCond.Wait()
		}
		s := c.queue[0]
		c.queue = c.queue[1:]
		fns := make([]func(State), 0, len(c.listeners))
		ids := make([]uint64, 0, len(c.listeners))
		for id := range c.listeners {
			ids = append(ids, id)
		}
		sortUint64(ids)
		for _, id := range ids {
			fns = append(fns, c.listeners[id])
		}
		c.listenMu.Unlock()
		for _, fn := range fns {
			c.safeCall(fn, s)
		}
		c.listenMu.Lock()
	}
}

func (c *Client) safeCall(fn func(State), s State) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("connection state listener panicked", zap.Any("panic", r), zap.Stringer("state", s))
		}
	}()
	fn(s)
}

func sortUint64(a []uint64) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// Listen registers fn for every connection state change, delivered in order on one goroutine.
// The returned func unregisters it. fn must not block for long: it delays the listeners after it,
// never the connection.
func (c *Client) Listen(fn func(State)) (cancel func()) {
	c.listenMu.Lock()
	defer c.listenMu.Unlock()
	c.nextID++
	id := c.nextID
	c.listeners[id] = fn
	return func() {
		c.listenMu.Lock()
		delete(c.listeners, id)
		c.listenMu.Unlock()
	}
}

// State returns the current connection state (0 before the first connection).
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// SessionID returns the id of the live session, or 0 while there is none (before the first
// connection, and from Lost until the next session is established).
func (c *Client) SessionID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessionID
}

// ErrorPolicy returns the client's error policy.
func (c *Client) ErrorPolicy() ErrorPolicy { return c.opts.errorPolicy }

// SessionTimeout returns the session timeout in force: the one the server negotiated, once known,
// else the one asked for.
func (c *Client) SessionTimeout() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.negotiated > 0 {
		return c.negotiated
	}
	return c.opts.sessionTimeout
}

// Logger returns the client's logger.
func (c *Client) Logger() *zap.Logger { return c.log }

// RequestCount returns how many requests the client has sent to ZooKeeper (tries included), for
// measuring what an operation costs.
func (c *Client) RequestCount() uint64 { return c.requests.Load() }

// DefaultData returns the data written to nodes created without data of their own.
func (c *Client) DefaultData() []byte { return c.data }

// Done returns a channel that is closed when the client is closed.
func (c *Client) Done() <-chan struct{} { return c.closedCh }

// SessionEnded returns a channel that is closed once the session with the given id is no longer
// the client's live session: it was lost, or the client was closed. For an id that is not the live
// session's, the channel is already closed.
func (c *Client) SessionEnded(sessionID int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || sessionID == 0 || sessionID != c.sessionID {
		return closedChan
	}
	return c.sessDone
}

// ErrorState returns a channel that is closed once the session with the given id reaches a state
// that the client's error policy counts as an error: Suspended or Lost under StandardErrorPolicy,
// Lost under SessionErrorPolicy. It is also closed when the client is closed, and is already closed
// if the session is not live (or, under StandardErrorPolicy, not connected) now.
func (c *Client) ErrorState(sessionID int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || sessionID == 0 || sessionID != c.sessionID {
		return closedChan
	}
	if c.opts.errorPolicy == SessionErrorPolicy {
		return c.sessDone
	}
	if !c.state.IsConnected() {
		return closedChan
	}
	return c.connDone
}

// BlockUntilConnected waits until the client is connected, ctx is done, or the client is closed.
func (c *Client) BlockUntilConnected(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("block until connected: %w", ErrClosed)
	}
	if !c.started {
		c.mu.Unlock()
		return fmt.Errorf("block until connected: %w", ErrNotStarted)
	}
	ch := c.connectedCh
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-c.closedCh:
		return fmt.Errorf("block until connected: %w", ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("block until connected: %w", ctxErr(ctx))
	}
}

// ctxErr returns the error for a wait that ctx ended: ctx.Err(), wrapping the context's cause
// too when that is one of the caller's own, so that errors.Is matches either.
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, err) {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

// Close closes the session (so its ephemeral nodes go at once), ends every wait, and waits for the
// client's goroutines. Operations after Close return an error wrapping ErrClosed. Closing twice is
// harmless.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	close(c.closedCh)
	c.stopSuspendTimerLocked()
	select {
	case <-c.connDone:
	default:
		close(c.connDone)
	}
	select {
	case <-c.sessDone:
	default:
		close(c.sessDone)
	}
	c.sessionID = 0
	conn := c.conn
	c.gen++
	c.mu.Unlock()

	c.deleter.wake()
	if conn != nil {
		conn.Close()
	}
	c.wg.Wait()
	c.listenMu.Lock()
	c.queueCond.Broadcast()
	c.listenMu.Unlock()
	c.dispatchW.Wait()
	c.log.Info("zookeeper client closed")
	return nil
}

func (c *Client) isClosed() bool {
	select {
	case <-c.closedCh:
		return true
	default:
		return false
	}
}

// zkLogger routes go-zookeeper's messages into zap, and reads the negotiated session timeout from
// the one message that carries it.
type zkLogger struct{ c *Client }

const zkAuthenticatedFormat = "authenticated: id=%d, timeout=%d"

func (l zkLogger) Printf(format string, args ...any) {
	if format == zkAuthenticatedFormat && len(args) == 2 {
		if ms, ok := args[1].(int32); ok && ms > 0 {
			l.c.mu.Lock()
			l.c.negotiated = time.Duration(ms) * time.Millisecond
			l.c.mu.Unlock()
		}
	}
	l.c.log.Debug(fmt.Sprintf(format, args...), zap.String("from", "go-zookeeper"))
}

// trackedConn records when the client last heard from the server.
type trackedConn struct {
	net.Conn
	c *Client
}

func (t *trackedConn) Write(b []byte) (int, error) {
	n, err := t.Conn.Write(b)
	if err == nil && t.c.writes.pending() {
		t.c.writes.written(b)
	}
	return n, err
}

func (t *trackedConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	if n > 0 {
		t.c.lastHeard.Store(time.Now().UnixNano())
	}
	return n, err
}
