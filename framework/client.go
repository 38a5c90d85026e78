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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/gocurator/curator/internal/goid"
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
	lastAck               atomic.Int64  // monoNow when the newest acknowledged request was sent
	negotiated            atomic.Int64  // the session timeout the server granted, 0 until known
	curGen                atomic.Uint64 // gen, readable without mu
	dispatchGID           atomic.Uint64 // id of the dispatch goroutine, 0 until it runs
	writes                writeWatch    // creates and deletes waiting to be seen written, for ordering
	calls                 callGate      // bounds the calls running on goroutines of their own

	connErrMu sync.Mutex
	connErr   error // why the newest attempt to get a connection failed; nil once connected

	mu            sync.Mutex
	started       bool
	closed        bool
	conn          *zk.Conn        // nil only while a new session could not even be started
	conns         *connSet        // the TCP connections of conn
	events        <-chan zk.Event // conn's event channel, closed when its goroutines have ended
	gen           uint64          // generation of conn; events of older conns are ignored
	state         State
	everConnected bool
	sessionID     int64     // the live session's id, 0 when there is none
	lastSessionID int64     // the id of the newest session the client had
	auth          authState // the credentials' standing on conn (see acl.go)
	suspendTimer  *time.Timer
	watchdog      *time.Timer // while connected: fires when no request was acknowledged for the session timeout
	watchdogSeq   uint64      // tells the current watchdog from stale ones
	reopenTimer   *time.Timer // retries starting a new session
	reopenWait    time.Duration
	connectedCh   chan struct{} // closed while connected
	connDone      chan struct{} // closed when the current connection period ends
	sessDone      chan struct{} // closed when the current session ends
	closedCh      chan struct{}
	inCalls       int           // operations' calls handed to go-zookeeper and not returned (see enterCall)
	callsDrained  chan struct{} // made by Close while inCalls > 0; closed when it reaches 0
	waited        chan struct{} // closed once Close has waited for the goroutines it waits for
	dispatchDone  chan struct{} // closed when the dispatch goroutine has ended (or never ran)

	listenMu  sync.Mutex
	listeners map[uint64]func(State)
	nextID    uint64
	queue     []Event // state changes (EventStateChange) for the listeners and the observer; other events for the observer
	queueCond *sync.Cond

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
	for i, a := range o.auth {
		// An auth request: header, type, scheme and credentials.
		if size := requestHeaderBytes + int32Bytes + lenBytes + len(a.scheme) + lenBytes + len(a.auth); size > o.maxRequestBytes {
			o.errs = append(o.errs, fmt.Errorf("%w: %w: the credentials of WithAuth number %d (scheme %q) make a request of %d bytes, more than the limit of %d bytes (the server's jute.maxbuffer)",
				ErrInvalidArgument, ErrRequestTooLarge, i+1, a.scheme, size, o.maxRequestBytes))
		}
	}
	if len(o.errs) > 0 {
		return nil, errors.Join(o.errs...)
	}
	servers, chroot, err := parseConnectString(connectString)
	if err != nil {
		return nil, err
	}
	c := &Client{
		servers:      servers,
		prefix:       chroot + o.namespace,
		opts:         o,
		log:          o.logger,
		connectedCh:  make(chan struct{}),
		connDone:     closedChan,
		sessDone:     closedChan,
		closedCh:     make(chan struct{}),
		waited:       make(chan struct{}),
		dispatchDone: make(chan struct{}),
		listeners:    map[uint64]func(State){},
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
// started before. A server name that does not resolve (yet) is no error: each connection attempt
// resolves the names afresh, and the client keeps trying until it is connected or closed, as
// Curator does. Meanwhile operations wait, and an operation whose context ends says what the last
// attempt ran into.
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
	go c.dispatch()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.deleter.run()
	}()
	c.newSessionLocked()
	return nil
}

// Bounds of the wait between attempts to start a new go-zookeeper connection that failed at once.
const (
	reopenMinWait = 100 * time.Millisecond
	reopenMaxWait = 10 * time.Second
)

// newSessionLocked starts a new go-zookeeper connection, that is a new session. If that fails, it
// tries again under a backoff until it works or the client is closed: the client never gives up
// getting a session. c.mu is held.
func (c *Client) newSessionLocked() {
	c.stopReopenTimerLocked()
	err := c.openConnLocked()
	if err == nil {
		c.reopenWait = 0
		return
	}
	c.noteConnErr(c.gen, err)
	c.reopenWait = min(max(2*c.reopenWait, reopenMinWait), reopenMaxWait)
	c.log.Error("opening a new zookeeper session failed; trying again", zap.Error(err), zap.Duration("in", c.reopenWait))
	var t *time.Timer
	t = time.AfterFunc(c.reopenWait, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed || c.reopenTimer != t {
			return
		}
		c.reopenTimer = nil
		c.newSessionLocked()
	})
	c.reopenTimer = t
}

func (c *Client) stopReopenTimerLocked() {
	if c.reopenTimer != nil {
		c.reopenTimer.Stop()
		c.reopenTimer = nil
	}
}

// openConnLocked opens a new go-zookeeper connection (a new session). c.mu is held.
func (c *Client) openConnLocked() error {
	c.gen++
	gen := c.gen
	c.curGen.Store(gen)
	c.conn, c.conns, c.events = nil, nil, nil
	set := newConnSet()
	dialer := c.opts.dialer
	if dialer == nil {
		// Resolves the name at each dial; closing the set ends a dial under way.
		dialer = func(network, address string, timeout time.Duration) (net.Conn, error) {
			d := net.Dialer{Timeout: timeout}
			return d.DialContext(set.dialCtx, network, address)
		}
	}
	if c.opts.tlsConfig != nil {
		dialer = c.tlsDialer(dialer, gen)
	}
	track := func(network, address string, timeout time.Duration) (net.Conn, error) {
		if set.isClosed() {
			return nil, net.ErrClosed
		}
		conn, err := dialer(network, address, timeout)
		if err != nil {
			c.noteConnErr(gen, err)
			return nil, err
		}
		tc := newTrackedConn(conn, c, gen)
		if !set.add(tc) {
			conn.Close()
			return nil, net.ErrClosed
		}
		return tc, nil
	}
	conn, events, err := zk.Connect(c.servers, c.opts.sessionTimeout,
		zk.WithHostProvider(newHostProvider(set.ending, set.park)),
		zk.WithLogger(zkLogger{c, gen}),
		zk.WithEventCallback(func(ev zk.Event) { c.onEvent(gen, ev) }),
		zk.WithDialer(track))
	if err != nil {
		return fmt.Errorf("curator: connect to %v: %w", c.servers, err)
	}
	c.conn, c.conns, c.events = conn, set, events
	return nil
}

// connEndWait bounds how long closing a go-zookeeper connection waits for its goroutines to end.
const connEndWait = 2 * time.Second

// connParkWait bounds how long closing a go-zookeeper connection without a session waits for it to
// be back in its dialling loop.
const connParkWait = 100 * time.Millisecond

// endConn closes a go-zookeeper connection and its TCP connections, and waits (for at most
// connEndWait) until go-zookeeper's goroutines have ended: it closes the event channel last.
func (c *Client) endConn(conn *zk.Conn, conns *connSet, events <-chan zk.Event) {
	// Wakes the host provider if it is waiting between two reconnects, so that go-zookeeper, which
	// looks at its close signal only then, sees it at once.
	conns.end()
	if conn.State() != zk.StateHasSession || conns.broken() {
		// No session to end, or no connection to end it on (its reader has failed: go-zookeeper
		// still says it has a session until its loops have ended, and would queue the close
		// request where no one takes it). go-zookeeper's Close would wait a second for the answer
		// to its close request, which no one sends. Closing the TCP connection (and any dial
		// under way) first ends a pending handshake; go-zookeeper then goes back to its dialling
		// loop and asks the host provider for a server, which parks it, and from there it fails
		// the close request at once. Wait for that, briefly (a dial that ignores the set, a custom
		// dialer's, may still be under way), before Close.
		conns.close()
		t := time.NewTimer(connParkWait)
		select {
		case <-conns.parked:
		case <-t.C:
		}
		t.Stop()
	}
	conn.Close()
	// Ends what go-zookeeper may still be doing with a connection that does not answer.
	conns.close()
	t := time.NewTimer(connEndWait)
	defer t.Stop()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-t.C:
			c.log.Warn("go-zookeeper's goroutines did not end after its connection was closed")
			return
		}
	}
}

// noteConnErr records why an attempt to connect, of the connection of generation gen, failed.
func (c *Client) noteConnErr(gen uint64, err error) {
	if gen != c.curGen.Load() {
		return
	}
	if err != nil {
		err = dialError{err}
	}
	c.connErrMu.Lock()
	c.connErr = err
	c.connErrMu.Unlock()
}

// dialError is why an attempt to connect failed, as the cause in an operation's error. errors.Is
// and errors.As see through it (to a *net.DNSError, say), except to context.DeadlineExceeded and
// context.Canceled, which a dial's timeout reports itself as: the operation's caller would take
// them for its own context's.
type dialError struct{ err error }

func (e dialError) Error() string { return e.err.Error() }

// Is reports whether the dial's error is target, never for the context errors.
func (e dialError) Is(target error) bool {
	if target == context.DeadlineExceeded || target == context.Canceled {
		return false
	}
	return errors.Is(e.err, target)
}

// As finds the first error in the dial's error that matches target (see errors.As).
func (e dialError) As(target any) bool { return errors.As(e.err, target) }

// lastConnErr returns why the newest attempt to connect failed, or nil if it did not or the client
// has been connected since.
func (c *Client) lastConnErr() error {
	c.connErrMu.Lock()
	defer c.connErrMu.Unlock()
	return c.connErr
}

// unreachable wraps err, the context error of an operation that got no connection, with the
// reason the last attempt to connect failed, if there is one.
func (c *Client) unreachable(err error) error {
	if last := c.lastConnErr(); last != nil {
		return fmt.Errorf("%w (no server reachable: %w)", err, last)
	}
	return err
}

// acknowledged records that the server answered a request of the connection of generation gen
// that was sent at monoNow sent; timeout, if not 0, is the session timeout the server granted.
func (c *Client) acknowledged(gen uint64, sent int64, timeout time.Duration) {
	if gen != c.curGen.Load() {
		return // a connection the client has given up: it speaks of an older session
	}
	if timeout > 0 {
		c.negotiated.Store(int64(timeout))
	}
	for {
		old := c.lastAck.Load()
		if sent <= old || c.lastAck.CompareAndSwap(old, sent) {
			return
		}
	}
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
	c.sessionEventLocked(gen)
	switch ev.State {
	case zk.StateHasSession, zk.StateConnectedReadOnly:
		if c.establishLocked(gen, ev) {
			return // up once the server has accepted the credentials
		}
		c.sessionUpLocked(gen, ev)
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

// sessionUpLocked reports the session that event ev, of connection gen (the current one), reports
// up: Connected, Reconnected or ReadOnly, after Lost if it is a new session that the client has not
// reported Lost for yet.
func (c *Client) sessionUpLocked(gen uint64, ev zk.Event) {
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
		c.queueEventLocked(Event{Kind: EventSessionOpened, SessionID: sid})
	}
	c.sessionID, c.lastSessionID = sid, sid
	c.stopSuspendTimerLocked()
	c.noteConnErr(gen, nil)
	select {
	case <-c.connDone:
		c.connDone = make(chan struct{}) // a new connected period
	default: // still the current one: those waiting on it keep it
	}
	c.openLocked(next)
	c.setStateLocked(next)
	c.armWatchdogLocked()
	c.log.Info("zookeeper session connected", zap.Stringer("state", next),
		zap.String("session", fmt.Sprintf("0x%x", sid)), zap.String("server", ev.Server))
	c.deleter.wake()
}

// openLocked lets the requests waiting for a connection go (closes connectedCh) in the connected
// period that has just begun in state next. If deletes are left from before (releases whose
// deletes did not get their answer, nodes left to the background deleter), they are sent first,
// and the other requests go once those are written (within sendWait): so the deletes of releases
// made before the connection dropped are applied before the client's later requests, as they
// would have been on the old connection. c.mu is held.
func (c *Client) openLocked(next State) {
	ch, period, conn := c.connectedCh, c.connDone, c.conn
	select {
	case <-ch:
		return
	default:
	}
	if next == ReadOnly || conn == nil || !c.deleter.mustSendFirst() {
		close(ch)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.deleter.sendFirst(conn, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.connectedCh != ch || c.connDone != period || c.closed {
				return // the period ended meanwhile: the next one opens it
			}
			select {
			case <-period:
				return // the period ended (Suspended, Lost) and the next has not begun: it opens it
			default:
			}
			select {
			case <-ch:
			default:
				close(ch)
			}
		})
	}()
}

// sessionTimeoutLocked returns the timeout after which the server may expire a session it has not
// heard from: the one the server granted, once known (it is what the server counts, and what
// go-zookeeper paces its pings by), else the one asked for.
func (c *Client) sessionTimeoutLocked() time.Duration {
	if n := time.Duration(c.negotiated.Load()); n > 0 {
		return n
	}
	return c.opts.sessionTimeout
}

// untilExpiryLocked returns how long the server may still keep the session without hearing from
// the client again: the server counts the session timeout from the last packet it received from
// the client, and the newest request whose reply came back was sent no later than that packet.
// Neither the moment the client noticed a silence (go-zookeeper notices only after two thirds of
// the timeout) nor the moment it last read bytes counts: a watch notification, or a reply read
// by a process just woken from a pause, proves nothing about what the server heard.
func (c *Client) untilExpiryLocked() time.Duration {
	timeout := c.sessionTimeoutLocked()
	if last := c.lastAck.Load(); last != 0 {
		timeout -= time.Duration(monoNow() - last)
	}
	return max(timeout, 0)
}

// suspendLocked moves to Suspended and starts the timer after which the session is presumed lost.
func (c *Client) suspendLocked() {
	c.stopWatchdogLocked()
	select {
	case <-c.connectedCh:
		c.connectedCh = make(chan struct{})
	default: // still held back behind deletes (see openLocked): those waiting on it keep it
	}
	close(c.connDone)
	c.setStateLocked(Suspended)
	timeout := c.untilExpiryLocked()
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
	c.presumeLostLocked("suspended for the session timeout")
}

// armWatchdogLocked starts watching, while connected, for the session timeout to pass with no
// request acknowledged: go-zookeeper notices a connection gone silent, but not a process that was
// paused and reads on waking replies sent before the pause, nor a server that sends only watch
// notifications.
func (c *Client) armWatchdogLocked() {
	c.stopWatchdogLocked()
	c.watchdogSeq++
	gen, seq := c.gen, c.watchdogSeq
	c.watchdog = time.AfterFunc(c.untilExpiryLocked(), func() { c.watchdogFired(gen, seq) })
}

func (c *Client) stopWatchdogLocked() {
	if c.watchdog != nil {
		c.watchdog.Stop()
		c.watchdog = nil
	}
}

// watchdogFired runs when the watchdog armed for gen and seq fires: if no request has been
// acknowledged for the whole session timeout, the server may have expired the session already,
// so the client reports Suspended and, the timeout being over, Lost at once, and starts a new
// session; else it watches on.
func (c *Client) watchdogFired(gen, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || seq != c.watchdogSeq || c.closed || !c.state.IsConnected() {
		return
	}
	if c.untilExpiryLocked() > 0 {
		c.armWatchdogLocked()
		return
	}
	c.presumeExpiredLocked()
}

// presumeExpiredLocked reports Suspended (if connected) and then Lost at once for a session of
// which no request has been acknowledged for the whole session timeout: the server may have
// expired it already. The watchdog calls it, and EndCause when it finds the deadline passed before
// the watchdog has run (in a process just woken from a pause).
func (c *Client) presumeExpiredLocked() {
	c.log.Warn("zookeeper session presumed expired: no request acknowledged for the whole session timeout")
	if c.state.IsConnected() {
		c.suspendLocked()
	}
	c.presumeLostLocked("no request acknowledged for the session timeout")
}

// presumeLostLocked reports Lost for a session the server has surely expired by now, gives up its
// connection and starts a new session.
func (c *Client) presumeLostLocked(why string) {
	c.loseSessionLocked(why)
	c.setStateLocked(Lost)
	old, oldConns, oldEvents := c.conn, c.conns, c.events
	c.newSessionLocked()
	if old == nil {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.endConn(old, oldConns, oldEvents)
	}()
}

// loseSessionLocked ends the current session's signals.
func (c *Client) loseSessionLocked(why string) {
	select {
	case <-c.connectedCh:
		c.connectedCh = make(chan struct{})
	default:
	}
	closeOnce(c.connDone)
	closeOnce(c.sessDone)
	if c.sessionID != 0 {
		c.log.Warn("zookeeper session lost", zap.String("session", fmt.Sprintf("0x%x", c.sessionID)), zap.String("why", why))
		if c.Observed() {
			c.queueEventLocked(Event{Kind: EventSessionLost, SessionID: c.sessionID, Err: fmt.Errorf("%w: %s", ErrSessionLost, why)})
		}
	}
	c.sessionID = 0
	c.stopSuspendTimerLocked()
	c.stopWatchdogLocked()
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
	c.queue = append(c.queue, Event{Kind: EventStateChange, State: s, SessionID: c.sessionID})
	c.queueCond.Signal()
	c.listenMu.Unlock()
}

// queueEventLocked queues e for the observer, if there is one, in order with the state changes.
// c.mu is held.
func (c *Client) queueEventLocked(e Event) { c.observeQueued(e) }

// dispatch delivers state changes to the listeners, in order, on one goroutine. Once the client
// is closed, no listener call starts.
func (c *Client) dispatch() {
	defer close(c.dispatchDone)
	defer goid.MarkCallbacks()()
	c.dispatchGID.Store(goid.Current())
	c.listenMu.Lock()
	defer c.listenMu.Unlock()
	for {
		for len(c.queue) == 0 {
			if c.isClosed() {
				return
			}
			c.queueCond.Wait()
		}
		if c.isClosed() {
			return
		}
		e := c.queue[0]
		c.queue = c.queue[1:]
		if e.Kind != EventStateChange {
			c.listenMu.Unlock()
			c.Observe(e)
			c.listenMu.Lock()
			continue
		}
		s := e.State
		fns := make([]func(State), 0, len(c.listeners))
		ids := make([]uint64, 0, len(c.listeners))
		for id := range c.listeners {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			fns = append(fns, c.listeners[id])
		}
		c.listenMu.Unlock()
		c.Observe(e)
		for _, fn := range fns {
			if c.isClosed() {
				break
			}
			c.safeCall(fn, s)
		}
		c.listenMu.Lock()
	}
}

// onDispatch reports whether the caller is the goroutine that runs the listeners.
func (c *Client) onDispatch() bool {
	id := c.dispatchGID.Load()
	return id != 0 && goid.Current() == id
}

func (c *Client) safeCall(fn func(State), s State) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("connection state listener panicked", zap.Any("panic", r), zap.Stringer("state", s))
		}
	}()
	fn(s)
}

// Listen registers fn for every connection state change, delivered in order on one goroutine.
// The returned func unregisters it. fn must not block for long: it delays the listeners after it,
// never the connection. fn may call any method of the client, Close included; no listener call
// starts once Close has been called.
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
	if n := time.Duration(c.negotiated.Load()); n > 0 {
		return n
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
// When ctx ends first, the error wraps ctx's and, if attempts to connect are failing, the reason
// the newest one failed.
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
		return fmt.Errorf("block until connected: %w", c.unreachable(ctxErr(ctx)))
	}
}

// ctxErr returns the error for a wait that ctx ended: ctx.Err(), wrapping the context's cause
// too when that is one of the caller's own, so that errors.Is matches either.
func ctxErr(ctx context.Context) error { return ContextError(ctx) }

// ContextError returns the error of ctx once it has ended: ctx.Err(), and also its cause if
// that differs (context.WithTimeoutCause, context.WithCancelCause), so that errors.Is matches both
// context.DeadlineExceeded (or context.Canceled) and the cause. It returns nil while ctx has not
// ended. The client's and the recipes' calls report an ended ctx with it.
func ContextError(ctx context.Context) error {
	err := ctx.Err()
	if err == nil {
		return nil
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, err) {
		return fmt.Errorf("%w: %w", err, cause)
	}
	return err
}

// Close closes the session (so its ephemeral nodes go at once), ends every wait, and waits for the
// client's goroutines. Operations after Close return an error wrapping ErrClosed, and send nothing.
// An operation's request already handed to the connection when Close is called gets its answer
// first (Close waits for that, for at most 300 ms), or fails with ErrClosed if the connection does
// not answer in time; in that case it may or may not have been applied, as with any lost
// connection. Closing twice is harmless: a second Close waits as the first does.
//
// Close may be called from a connection state listener (on Lost, say), or from a recipe's callback
// (a latch's listener, a selector's leadership function): it then returns without waiting for the
// client's listener goroutine, which is the caller's own, or may be waiting for the caller in a
// recipe's Close; that goroutine ends once its listener returns, without calling any listener
// again. Close still waits for every other goroutine.
func (c *Client) Close() error {
	// From inside a callback of ours (this client's listener, or a recipe's listener or leadership
	// function), Close does not wait for the listener goroutine: that goroutine may be waiting, in
	// a recipe's Close, for the very callback that called this one.
	onDispatch := c.onDispatch() || goid.InCallback()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		if !onDispatch {
			<-c.waited
			<-c.dispatchDone
		}
		return nil
	}
	c.closed = true
	close(c.closedCh)
	if !c.started {
		close(c.dispatchDone) // it never ran
	}
	c.stopSuspendTimerLocked()
	c.stopWatchdogLocked()
	c.stopReopenTimerLocked()
	closeOnce(c.connDone)
	closeOnce(c.sessDone)
	c.sessionID = 0
	conn, conns, events := c.conn, c.conns, c.events
	c.gen++
	c.curGen.Store(c.gen)
	drained := closedChan
	if c.inCalls > 0 {
		c.callsDrained = make(chan struct{})
		drained = c.callsDrained
	}
	c.mu.Unlock()

	c.deleter.wake()
	// The operations' calls already handed to go-zookeeper end first, with their answers (a round
	// trip on a live connection). go-zookeeper's Close would fail them at once while their
	// requests may still be sent and applied, and decode the answer into a reply its caller has
	// read already. On a connection that does not answer, the wait is bounded.
	t := time.NewTimer(callsDrainWait)
	select {
	case <-drained:
	case <-t.C:
	}
	t.Stop()
	if conn != nil {
		c.endConn(conn, conns, events)
	}
	c.wg.Wait()
	close(c.waited)
	c.listenMu.Lock()
	c.queueCond.Broadcast()
	c.listenMu.Unlock()
	if !onDispatch {
		<-c.dispatchDone
	}
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

// zkLogger routes go-zookeeper's messages, of the connection of generation gen, into zap, and
// reads the negotiated session timeout and failed session handshakes from the messages that carry
// them.
type zkLogger struct {
	c   *Client
	gen uint64
}

const (
	zkAuthenticatedFormat = "authenticated: id=%d, timeout=%d"
	zkAuthFailedFormat    = "authentication failed: %s"
	zkResendAuthFormat    = "error in resending auth creds: %v"
)

func (l zkLogger) Printf(format string, args ...any) {
	switch {
	case format == zkAuthenticatedFormat && len(args) == 2:
		if ms, ok := args[1].(int32); ok && ms > 0 && l.gen == l.c.curGen.Load() {
			l.c.negotiated.Store(int64(time.Duration(ms) * time.Millisecond))
		}
	case format == zkAuthFailedFormat && len(args) == 1:
		if err, ok := args[0].(error); ok {
			l.c.noteConnErr(l.gen, l.c.sessionHandshakeError(err))
		}
	case format == zkResendAuthFormat && len(args) == 1:
		// go-zookeeper re-sends the credentials it holds itself on a reconnect, and on a refusal
		// only logs this and closes the connection: the refusal must reach the client's state.
		// (It formats the server's error with %v, so only its text tells.)
		if err, ok := args[0].(error); ok && strings.Contains(err.Error(), zk.ErrAuthFailed.Error()) {
			l.c.mu.Lock()
			if !l.c.closed && l.gen == l.c.gen {
				l.c.noteAuthRefusedLocked(l.gen, fmt.Errorf("curator: the server refused the credentials go-zookeeper re-sent on a reconnect: %w (%v)", zk.ErrAuthFailed, err))
			}
			l.c.mu.Unlock()
		}
	}
	l.c.log.Debug(fmt.Sprintf(format, args...), zap.String("from", "go-zookeeper"))
}

// callsDrainWait bounds how long Close waits for the operations' calls in flight (see Close).
const callsDrainWait = 300 * time.Millisecond

// enterCall counts an operation's call about to be handed to go-zookeeper, and reports true; once
// the client is closed it counts nothing and reports false (the call must not be made). Close
// waits, briefly, for the calls counted to return before it closes the connection.
func (c *Client) enterCall() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.inCalls++
	return true
}

// leaveCall uncounts a call that enterCall counted, once it has returned.
func (c *Client) leaveCall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inCalls--
	if c.inCalls == 0 && c.callsDrained != nil {
		close(c.callsDrained)
		c.callsDrained = nil
	}
}

// closeOnce closes ch unless it is closed already. Its callers hold the lock that guards ch.
func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// connSet is the TCP connection that one go-zookeeper connection has open. Closing it closes that
// connection and refuses new ones, so that a go-zookeeper connection the client has given up ends
// even if its server (or the process, after a pause) does not answer.
type connSet struct {
	ending  chan struct{} // closed by end: the connection is being closed (nil: never)
	endOnce sync.Once

	// parked is closed, once, when go-zookeeper asks the host provider for a server after end:
	// it is then in its dialling loop, where it looks at its own close signal.
	parked     chan struct{}
	parkedOnce sync.Once

	// dialCtx ends when the set is closed: it ends a dial (a name lookup, say) still under way.
	dialCtx    context.Context
	cancelDial context.CancelFunc

	mu     sync.Mutex
	cur    net.Conn
	closed bool
}

// newConnSet returns an open, empty set.
func newConnSet() *connSet {
	ctx, cancel := context.WithCancel(context.Background())
	return &connSet{ending: make(chan struct{}), parked: make(chan struct{}), dialCtx: ctx, cancelDial: cancel}
}

// broken reports whether the current connection has failed a read: go-zookeeper's reader has
// ended with it (or is about to), so nothing more is sent or answered on it.
func (s *connSet) broken() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	tc, ok := s.cur.(*trackedConn)
	return ok && tc.readFailed.Load()
}

// park records that go-zookeeper is back in its dialling loop after end.
func (s *connSet) park() { s.parkedOnce.Do(func() { close(s.parked) }) }

// end closes s.ending, once: it tells the connection's host provider to stop waiting between
// reconnects. A nil set has nothing to tell.
func (s *connSet) end() {
	if s == nil || s.ending == nil {
		return
	}
	s.endOnce.Do(func() { close(s.ending) })
}

func (s *connSet) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// add records conn as the current connection; it returns false if the set is closed.
func (s *connSet) add(conn net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.cur = conn
	return true
}

// close closes the current connection and refuses new ones. A nil set is closed.
func (s *connSet) close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	cur := s.cur
	s.closed, s.cur = true, nil
	s.mu.Unlock()
	if s.cancelDial != nil {
		s.cancelDial()
	}
	if cur != nil {
		cur.Close()
	}
}
