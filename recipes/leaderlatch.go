package recipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/goid"
)

// latchName is the node name of LeaderLatch, as Curator's LeaderLatch.LOCK_NAME.
const latchName = "latch-"

var (
	// ErrNotLeader is the cause of a cancelled LeadershipContext: the latch does not lead (any
	// more). The errors that end a term wrap it, with the reason.
	ErrNotLeader = errors.New("curator: not the leader")
	// ErrNoLeader is returned (wrapped) by LeaderLatch.Leader when the latch path has no
	// participant.
	ErrNoLeader = errors.New("curator: no leader")
)

// LeaderLatchListener is told when a LeaderLatch gains and loses leadership. Its methods are called
// in order, one at a time, on a goroutine of the latch's own (the listener goroutine), never with
// a lock of the latch held: they may call any method of the latch, Close included. A listener's
// calls alternate, starting with IsLeader; a listener added while the latch leads is told IsLeader
// at once. A method that panics is logged and does not harm the latch.
//
// Leadership may be over by the time a call arrives (a NotLeader follows then): code that must not
// act without leadership checks HasLeadership, or uses LeadershipContext.
type LeaderLatchListener interface {
	// IsLeader is called when the latch becomes the leader.
	IsLeader()
	// NotLeader is called when the latch stops being the leader: another participant may lead
	// from now on.
	NotLeader()
}

// LeaderLatchListenerFuncs is a LeaderLatchListener made of two funcs; a nil func does nothing.
type LeaderLatchListenerFuncs struct {
	OnIsLeader  func()
	OnNotLeader func()
}

// IsLeader calls f.OnIsLeader, if set.
func (f LeaderLatchListenerFuncs) IsLeader() {
	if f.OnIsLeader != nil {
		f.OnIsLeader()
	}
}

// NotLeader calls f.OnNotLeader, if set.
func (f LeaderLatchListenerFuncs) NotLeader() {
	if f.OnNotLeader != nil {
		f.OnNotLeader()
	}
}

// CloseMode says whether closing a leading LeaderLatch tells its listeners NotLeader.
type CloseMode int

const (
	// SilentClose closes without calling the listeners (Curator's CloseMode.SILENT).
	SilentClose CloseMode = iota
	// NotifyLeaderOnClose calls NotLeader on the listeners if the latch led when it was closed
	// (Curator's CloseMode.NOTIFY_LEADER).
	NotifyLeaderOnClose
)

// String returns the mode's name, as Curator spells it.
func (m CloseMode) String() string {
	switch m {
	case SilentClose:
		return "SILENT"
	case NotifyLeaderOnClose:
		return "NOTIFY_LEADER"
	}
	return fmt.Sprintf("CloseMode(%d)", int(m))
}

type latchOptions struct {
	id        string
	closeMode CloseMode
	errs      []error
}

// LatchOption configures a LeaderLatch.
type LatchOption func(*latchOptions)

// WithParticipantID sets the latch's participant id, which is written to its node as UTF-8 and is
// what Participants and Leader report, to Go and Java processes alike. The default is "" (a node
// with no data, as Curator writes it).
func WithParticipantID(id string) LatchOption {
	return func(o *latchOptions) { o.id = id }
}

// WithCloseMode sets what Close tells the listeners of a leading latch: nothing (SilentClose, the
// default) or NotLeader (NotifyLeaderOnClose).
func WithCloseMode(m CloseMode) LatchOption {
	return func(o *latchOptions) {
		if m != SilentClose && m != NotifyLeaderOnClose {
			o.errs = append(o.errs, fmt.Errorf("%w: close mode %d", ErrInvalidArgument, int(m)))
			return
		}
		o.closeMode = m
	}
}

// Participant is one member of a leader election, as read from its node.
type Participant struct {
	// ID is the participant's id: its node's data, as UTF-8.
	ID string
	// IsLeader reports whether the participant's node is the first one: the one that leads.
	IsLeader bool
}

// LeaderLatch elects one leader among the processes that start a latch on the same path: Curator's
// LeaderLatch, on its nodes (<path>/_c_<uuid>-latch-<sequence>, ephemeral and sequential, with the
// participant id as data), so Go and Java processes on one path elect one leader together.
//
// Each started latch queues one node; the latch whose node is first leads, and each other latch
// watches only the node just ahead of its own. A latch leads only with a node of its client's
// current session (a node left by an expired session never makes it the leader). Leadership ends
// at once when the connection state means it may be lost: at Suspended under the client's
// framework.StandardErrorPolicy, at Lost under framework.SessionErrorPolicy. After a reconnect the
// latch looks again: it leads again if its node survived and is still first, and if the node went
// with its session it queues a new one, at the back. A leader whose node is deleted under it (by
// hand, say) stops leading and queues a new node too.
//
// Add listeners before Start to hear of every change; HasLeadership, Await and LeadershipContext
// tell the state at any time.
//
// Closing a latch deletes its node at once, so the next leader is chosen without waiting for a
// session to time out. The methods of a LeaderLatch may be called from several goroutines at once.
type LeaderLatch struct {
	c         *framework.Client
	path      string
	id        string
	closeMode CloseMode
	err       error // bad input, reported by the first call that can return an error
	// li is the latch's queue: the first node leads, each other node watches the one just ahead.
	li *lockInternals

	kick         chan struct{} // the client reconnected: look again
	dispatchDone chan struct{} // closed when the listener goroutine ends
	dispatchID   atomic.Uint64 // goroutine id of the listener goroutine, once it runs
	wg           sync.WaitGroup

	mu         sync.Mutex
	state      lifecycle
	dead       bool // the client was closed: the latch does nothing more
	ourPath    string
	term       *latchTerm    // the current leadership, nil if none
	observed   chan struct{} // closed when the observer has been told of the last term's end (nil: no term yet)
	changed    chan struct{} // closed (and replaced) at every change of leadership or state
	stop       context.CancelFunc
	unlisten   func()
	listeners  []*latchListener
	notified   bool         // the last event queued for the listeners was IsLeader
	queue      []latchEvent // events for the listener goroutine
	queueCh    chan struct{}
	exitQueued bool
}

// latchTerm is one leadership: from the check that made the latch leader until the latch finds it
// is not (or may not be) leader any more.
type latchTerm struct {
	c         *framework.Client
	node      string          // the latch's node, first of the queue
	token     int64           // the fencing token: the latch path's pzxid in the listing that found node first
	sessionID int64           // the session of the node that leads
	errState  <-chan struct{} // closed when the connection state ends the term
	done      chan struct{}   // closed when the term ends
	ctx       context.Context
	cancel    context.CancelCauseFunc
}

type latchListener struct {
	ln      LeaderLatchListener
	told    bool // last told IsLeader (set by the listener goroutine, under LeaderLatch.mu)
	removed bool // guarded by LeaderLatch.mu
}

type latchEvent int

const (
	evIsLeader latchEvent = iota
	evNotLeader
	evExit
)

// NewLeaderLatch returns a latch on path; call Start to join the election. A bad path, a nil client
// or a bad option is reported by the first call that can return an error.
func NewLeaderLatch(c *framework.Client, path string, opts ...LatchOption) *LeaderLatch {
	o := latchOptions{}
	for i, opt := range opts {
		if opt == nil {
			o.errs = append(o.errs, fmt.Errorf("%w: latch option %d is nil", ErrInvalidArgument, i))
			continue
		}
		opt(&o)
	}
	l := &LeaderLatch{
		c:            c,
		path:         path,
		id:           o.id,
		closeMode:    o.closeMode,
		kick:         make(chan struct{}, 1),
		dispatchDone: make(chan struct{}),
		changed:      make(chan struct{}),
		queueCh:      make(chan struct{}, 1),
	}
	l.li = &lockInternals{
		c:        c,
		basePath: path,
		lockName: latchName,
		// The participant id as data, as Curator writes it (no data for "", not the client's
		// default data).
		data:   func(context.Context) []byte { return append([]byte{}, l.id...) },
		grants: singleHolder(1),
		behind: func() { l.endTerm(fmt.Errorf("%w: another participant is first", ErrNotLeader)) },
	}
	if err := checkArgs(c, path); err != nil {
		o.errs = append([]error{err}, o.errs...)
	}
	l.err = errors.Join(o.errs...)
	return l
}

// Start joins the election: it queues the latch's node in the background, as soon as the client
// is connected. It returns an error wrapping ErrAlreadyStarted if the latch was started before,
// ErrClosed if the latch or its client is closed, framework.ErrNotStarted if the client is not
// started, and ErrInvalidArgument if the latch's node could never be created (a participant id too
// large for the server, say); the latch is not started then.
func (l *LeaderLatch) Start() error {
	if l.err != nil {
		return fmt.Errorf("start leader latch: %w", l.err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.state.startErr(errLatchClosed); err != nil {
		return fmt.Errorf("start leader latch %s: %w", l.path, err)
	}
	if err := checkStartable(l.c, l.path, latchName, []byte(l.id)); err != nil {
		return fmt.Errorf("start leader latch %s: %w", l.path, err)
	}
	l.state = lifeStarted
	ctx, stop := context.WithCancel(context.Background())
	l.stop = stop
	l.unlisten = l.c.Listen(func(s framework.State) {
		if s == framework.Reconnected {
			select {
			case l.kick <- struct{}{}:
			default:
			}
		}
	})
	l.wg.Add(1)
	go l.run(ctx)
	go l.dispatch()
	return nil
}

// Close leaves the election: the latch stops leading (with NotifyLeaderOnClose, a leading latch's
// listeners are told NotLeader), its goroutines end, and its node's delete is sent at once, so that
// the next participant leads without waiting for a session timeout. Close waits neither for the
// connection nor for the delete's reply (as Lease.Release): the client's later requests are applied
// after the delete, and if the connection is down, or the reply is lost, the node is deleted in the
// background as soon as the connection is back (it goes with the session anyway). A delete the
// server refuses (no auth, say) is logged at Error level.
//
// Called from any goroutine but the listener goroutine, Close waits for the listener goroutine to
// end: for a listener call in progress, and for the NotLeader calls of NotifyLeaderOnClose. When it
// returns, no listener call starts any more. Called from inside a listener, Close returns without
// waiting for that listener (which would never end); the listener goroutine then makes the calls
// that are due (NotLeader, with NotifyLeaderOnClose) and ends. A listener may close the client
// even while a client state listener is in this Close: Client.Close called from a listener does
// not wait for the client's listener goroutine.
//
// Closing a latch that was never started returns nil (the latch is closed all the same, and
// cannot be started any more), so a deferred Close is quiet; closing twice returns an error
// wrapping ErrClosed.
func (l *LeaderLatch) Close() error {
	if l.err != nil {
		return fmt.Errorf("close leader latch: %w", l.err)
	}
	l.mu.Lock()
	switch l.state {
	case lifeLatent:
		l.state = lifeClosed
		l.broadcastLocked()
		l.mu.Unlock()
		return nil
	case lifeClosed:
		l.mu.Unlock()
		return fmt.Errorf("close leader latch %s: %w", l.path, errLatchClosed)
	}
	l.state = lifeClosed
	if l.closeMode == SilentClose {
		l.dropListenersLocked()
	}
	t := l.term
	l.endTermLocked(t)
	l.queueLocked(evExit)
	l.broadcastLocked()
	stop, unlisten := l.stop, l.unlisten
	l.mu.Unlock()
	// The listener goroutine records its id before its first call, so a Close from inside a
	// listener always sees it.
	waitDispatch := goid.Current() != l.dispatchID.Load()
	if t != nil {
		t.cancel(fmt.Errorf("%w: %w", ErrNotLeader, errLatchClosed))
	}
	stop()
	unlisten()
	l.wg.Wait()

	l.mu.Lock()
	node := l.ourPath
	l.ourPath = ""
	l.mu.Unlock()
	var err error
	if node != "" {
		if err = removeNode(l.c, node); errors.Is(err, ErrClosed) {
			err = nil // the node went with the client's session
		}
	}
	if waitDispatch {
		<-l.dispatchDone
	}
	if err != nil {
		return fmt.Errorf("close leader latch %s: %w", l.path, err)
	}
	return nil
}

// Await waits until the latch leads, and returns nil then (at once if it leads already). It
// returns an error wrapping ctx's error (its cause) if ctx ends first, one wrapping ErrClosed if the
// latch or its client is closed, and one wrapping ErrNotStarted if the latch was never started.
func (l *LeaderLatch) Await(ctx context.Context) error {
	if l.err != nil {
		return fmt.Errorf("await leadership: %w", l.err)
	}
	for {
		l.mu.Lock()
		switch {
		case l.state == lifeLatent:
			l.mu.Unlock()
			return fmt.Errorf("await leadership of %s: %w", l.path, ErrNotStarted)
		case l.state == lifeClosed:
			l.mu.Unlock()
			return fmt.Errorf("await leadership of %s: %w", l.path, errLatchClosed)
		case l.dead:
			l.mu.Unlock()
			return fmt.Errorf("await leadership of %s: %w", l.path, ErrClosed)
		}
		leads := l.leadsLocked()
		ch := l.changed
		l.mu.Unlock()
		if leads {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("await leadership of %s: %w", l.path, framework.ContextError(ctx))
		}
	}
}

// HasLeadership reports whether the latch leads now. It reads local state only: it turns false the
// moment the connection state ends the leadership, before the listeners hear of it.
func (l *LeaderLatch) HasLeadership() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leadsLocked()
}

func (l *LeaderLatch) leadsLocked() bool {
	if l.state != lifeStarted || l.dead || l.term == nil {
		return false
	}
	select {
	case <-l.term.errState:
		return false
	default:
	}
	// The state and the clock now, not only what the term's watcher has seen: right after a pause
	// longer than the session timeout, leadership is over before any timer has run.
	return l.c.HoldErr(l.term.sessionID) == nil
}

// LeadershipContext returns a context for the current leadership term: it is cancelled, with a
// cause wrapping ErrNotLeader, the moment the term ends (when HasLeadership turns false). The cause
// says why: the latch was closed (it wraps ErrClosed too), its client was closed (ErrClosed too),
// the connection was suspended or the session lost, another participant is first, or the latch's
// node was deleted. If the latch does not lead now, the context is already cancelled. Work that
// only the leader may do can run under it:
//
//	if err := latch.Await(ctx); err == nil {
//		lead(latch.LeadershipContext())
//	}
func (l *LeaderLatch) LeadershipContext() context.Context {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.leadsLocked() {
		return l.term.ctx
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(ErrNotLeader)
	return ctx
}

// Guard returns the guard of the current term of leadership: its guarded writes land only while
// this term stands on the server (see Guard). If the latch does not lead now, it returns an error
// wrapping ErrNotLeader. LeadershipGuard(LeadershipContext()) is the same guard.
func (l *LeaderLatch) Guard() (Guard, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.leadsLocked() {
		return Guard{}, fmt.Errorf("leader latch %s: %w", l.path, ErrNotLeader)
	}
	return l.term.Guard(), nil
}

// ID returns the latch's participant id.
func (l *LeaderLatch) ID() string { return l.id }

// Path returns the latch path.
func (l *LeaderLatch) Path() string { return l.path }

// OurPath returns the full path of the latch's node, or "" while it has none (before its node is
// created, between a session loss and the new node, and after Close).
func (l *LeaderLatch) OurPath() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ourPath
}

// Participants returns the participants of the election in queue order, the leader first, with
// the ids read from their nodes (a node deleted while they are read is left out). It works on a
// latch that is not started too, to watch an election without joining it; after Close it returns
// an error wrapping ErrClosed.
func (l *LeaderLatch) Participants(ctx context.Context) ([]Participant, error) {
	return l.election().participants(ctx)
}

// Leader returns the participant that leads: the first in queue order. It returns an error
// wrapping ErrNoLeader if there is no participant.
func (l *LeaderLatch) Leader(ctx context.Context) (Participant, error) {
	return l.election().leader(ctx)
}

// election is the latch's election, for Participants and Leader.
func (l *LeaderLatch) election() election {
	return election{path: l.path, nodes: l.queueNodes, closed: func() error {
		if l.err != nil {
			return l.err
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.state == lifeClosed {
			return errLatchClosed
		}
		return nil
	}}
}

// AddListener registers ln, and returns a func that unregisters it (calling it again does
// nothing). If the latch leads, ln is told IsLeader at once (on the listener goroutine). A nil
// listener, or one added after Close, is ignored.
func (l *LeaderLatch) AddListener(ln LeaderLatchListener) (remove func()) {
	if ln == nil {
		return func() {}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == lifeClosed || l.dead {
		return func() {}
	}
	e := &latchListener{ln: ln}
	l.listeners = append(l.listeners, e)
	if l.notified {
		l.queueLocked(evIsLeader)
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if e.removed {
			return
		}
		e.removed = true
		l.listeners = slices.DeleteFunc(l.listeners, func(x *latchListener) bool { return x == e })
	}
}

// run is the latch's goroutine: it makes the node and waits in the queue (lockInternals, as every
// lock does) until the node is first, leads while it stays first, and starts over with a new node
// when the node is lost, until ctx ends or the client is closed. A failure other than a lost node
// keeps the node and tries again after a pause.
func (l *LeaderLatch) run(ctx context.Context) {
	defer l.wg.Done()
	defer l.runEnded()
	log := l.c.Logger().With(zap.String("latch", l.path))
	var node framework.Created
	var first framework.Listing // the listing pipelined behind the node's create, until looked at
	fails := 0
	// reset forgets the node (deleting it, in the background, if it survived) so that a new one is
	// made.
	reset := func(why string) {
		l.endTerm(fmt.Errorf("%w: %s", ErrNotLeader, why))
		if node.Path != "" {
			log.Debug("leader latch queues again", zap.String("node", node.Path), zap.String("why", why))
			l.c.DeleteInBackground(node.Path)
		}
		node, first = framework.Created{}, framework.Listing{}
		l.setOurPath("")
	}
	// retry reports whether to go on after err: it pauses first, unless the latch is stopping.
	retry := func(err error) bool {
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return false
		}
		log.Debug("leader latch trying again", zap.Error(err))
		l.pause(ctx, &fails)
		return true
	}
	for ctx.Err() == nil {
		if err := l.c.BlockUntilConnected(ctx); err != nil {
			return
		}
		sid := l.c.SessionID()
		if sid == 0 {
			// Between a session loss and the next session.
			l.pause(ctx, &fails)
			continue
		}
		if node.Path != "" && node.SessionID != sid {
			// A node of an earlier session never makes us leader (CURATOR-696).
			reset(startOverReason(errNodeSessionEnded))
		}
		if node.Path == "" {
			created, listing, err := l.li.enqueue(ctx)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, ErrClosed) {
					log.Warn("leader latch could not create its node; trying again", zap.Error(err))
				}
				if !retry(err) {
					return
				}
				continue
			}
			node, first = created, listing
			if !l.setOurPath(node.Path) {
				// Closed while the create was in flight (CURATOR-18): Close did not see this node.
				if err := removeNode(l.c, node.Path); err != nil && !errors.Is(err, ErrClosed) {
					log.Warn("leader latch could not delete its node after close", zap.Error(err))
				}
				return
			}
			continue // check the session again before looking at the queue
		}

		// The connection state that ends a term begun from the look below.
		errState := l.c.ErrorState(node.SessionID)
		g, err := l.li.await(ctx, node, &first, false, l.kick)
		if errors.Is(err, errStartOver) {
			reset(startOverReason(err))
			continue
		}
		if err != nil {
			if !retry(err) {
				return
			}
			continue
		}
		fails = 0
		if !l.lead(ctx, node, g, errState, reset, retry) {
			return
		}
	}
}

// startOverReason says, for a term's end, why the latch's node was lost (err wraps errStartOver).
func startOverReason(err error) string {
	switch {
	case errors.Is(err, errPathGone):
		return "the latch path is gone"
	case errors.Is(err, errNodeGone):
		return "the latch node is gone"
	}
	return "the latch node belongs to an ended session"
}

// lead makes the latch leader with node, which the queue found first (g), if node is really of
// the live session (CURATOR-696), and waits while it leads: until the term ends, node changes (a
// data watch on it tells if it is deleted under the leader), the client reconnects (look again),
// or the latch stops. It reports false when the latch's goroutine is to end.
func (l *LeaderLatch) lead(ctx context.Context, node framework.Created, g grant, errState <-chan struct{},
	reset func(string), retry func(error) bool) bool {
	_, st, w, err := l.c.GetW(ctx, node.Path)
	if errors.Is(err, zk.ErrNoNode) {
		reset(startOverReason(errNodeGone))
		return true
	}
	if err != nil {
		return retry(err)
	}
	if st.EphemeralOwner != node.SessionID || l.c.SessionID() != node.SessionID {
		reset(startOverReason(errNodeSessionEnded))
		return true
	}
	t := l.beginTerm(errState, node, g.token)
	if t == nil {
		return true // the connection state ended it already, or the latch is closing
	}
	select {
	case <-t.done:
	case <-w:
	case <-l.kick:
	case <-ctx.Done():
		return false
	case <-l.c.Done():
		return false
	}
	return true
}

// pause waits before trying again after a failure: longer after each failure in a row, up to 5s,
// and less if the client reconnects or the latch stops.
func (l *LeaderLatch) pause(ctx context.Context, fails *int) {
	d := 50 * time.Millisecond << min(*fails, 7)
	d = min(d, 5*time.Second)
	*fails++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.kick:
	case <-ctx.Done():
	case <-l.c.Done():
	}
}

// runEnded runs when the latch's goroutine ends. If that is because the client was closed (and
// not the latch), the latch is dead: leadership ends and the listener goroutine finishes.
func (l *LeaderLatch) runEnded() {
	select {
	case <-l.c.Done():
	default:
		return
	}
	l.mu.Lock()
	if l.state != lifeStarted {
		l.mu.Unlock()
		return
	}
	l.dead = true
	t := l.term
	l.endTermLocked(t)
	l.queueLocked(evExit)
	l.broadcastLocked()
	l.ourPath = ""
	l.mu.Unlock()
	if t != nil {
		t.cancel(fmt.Errorf("%w: %w", ErrNotLeader, ErrClosed))
	}
}

// setOurPath records the latch's node; it reports false (and records nothing) if the latch is no
// longer started.
func (l *LeaderLatch) setOurPath(p string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p != "" && l.state != lifeStarted {
		return false
	}
	l.ourPath = p
	return true
}

// beginTerm makes the latch leader (or keeps it leader) with node, which a listing whose token
// is token found first, and returns the term, or nil if errState (of node's session) is closed
// already or the latch is not started.
func (l *LeaderLatch) beginTerm(errState <-chan struct{}, node framework.Created, token int64) *latchTerm {
	sid := node.SessionID
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != lifeStarted || l.dead {
		return nil
	}
	if l.term != nil {
		return l.term
	}
	select {
	case <-errState:
		return nil
	default:
	}
	t := &latchTerm{c: l.c, node: node.Path, token: token, sessionID: sid, errState: errState, done: make(chan struct{})}
	t.ctx, t.cancel = context.WithCancelCause(context.WithValue(context.Background(), leadershipKey{}, t))
	l.term = t
	if !l.notified {
		l.notified = true
		l.queueLocked(evIsLeader)
	}
	l.broadcastLocked()
	// The term ends the moment the connection state says so, whatever the latch's goroutine is
	// doing.
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		select {
		case <-errState:
			l.endTermOf(t, fmt.Errorf("%w: %w", ErrNotLeader, connectionLossReason(l.c, sid)))
		case <-t.done:
		}
	}()
	if l.c.Observed() {
		// The observer is told on a goroutine of the term's own that Close does not wait for, so
		// that an observer may close the latch, after the previous term's end, so that it hears
		// of the terms in order. Every end of a term cancels its context with the cause, so the
		// goroutine ends with the term.
		prev, done := l.observed, make(chan struct{})
		l.observed = done
		go func() {
			defer close(done)
			if prev != nil {
				<-prev
			}
			began := time.Now()
			leadershipChanged(l.c, recipeLeaderLatch, l.path, t.node, sid, true, time.Time{}, nil)
			<-t.ctx.Done()
			leadershipChanged(l.c, recipeLeaderLatch, l.path, t.node, sid, false, began, context.Cause(t.ctx))
		}()
	}
	return t
}

// Token is the term's fencing token (see LeadershipToken).
func (t *latchTerm) Token() int64 { return t.token }

// Guard is the term's guard: the latch's node, first of the queue when the term began, exists.
func (t *latchTerm) Guard() Guard {
	return Guard{c: t.c, nodes: []string{t.node}, hctx: t.ctx, lost: ErrNotLeader, check: func() error {
		if err := t.c.HoldErr(t.sessionID); err != nil {
			return fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return nil
	}}
}

// endTerm ends the current term, if any, with cause.
func (l *LeaderLatch) endTerm(cause error) {
	l.mu.Lock()
	t := l.term
	l.endTermLocked(t)
	l.mu.Unlock()
	if t != nil {
		t.cancel(cause)
	}
}

// endTermOf ends term t with cause, if it is still the current term.
func (l *LeaderLatch) endTermOf(t *latchTerm, cause error) {
	l.mu.Lock()
	if l.term != t {
		l.mu.Unlock()
		return
	}
	l.endTermLocked(t)
	l.mu.Unlock()
	t.cancel(cause)
}

// endTermLocked ends term t, the current term or nil, and queues NotLeader for the listeners if
// they were told IsLeader. The caller cancels t's context, outside the lock.
func (l *LeaderLatch) endTermLocked(t *latchTerm) {
	if t != nil {
		l.term = nil
		close(t.done)
		l.broadcastLocked()
	}
	if l.notified {
		l.notified = false
		l.queueLocked(evNotLeader)
	}
}

// broadcastLocked wakes the goroutines in Await.
func (l *LeaderLatch) broadcastLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

// dropListenersLocked unregisters every listener.
func (l *LeaderLatch) dropListenersLocked() {
	for _, e := range l.listeners {
		e.removed = true
	}
	l.listeners = nil
}

// queueLocked queues an event for the listener goroutine.
func (l *LeaderLatch) queueLocked(ev latchEvent) {
	if l.exitQueued {
		return
	}
	if ev == evExit {
		l.exitQueued = true
	}
	l.queue = append(l.queue, ev)
	select {
	case l.queueCh <- struct{}{}:
	default:
	}
}

// dispatch is the listener goroutine: it delivers the queued events in order, bringing each
// listener to the event's state, until the exit event.
func (l *LeaderLatch) dispatch() {
	defer close(l.dispatchDone)
	defer goid.MarkCallbacks()()
	l.dispatchID.Store(goid.Current())
	for {
		l.mu.Lock()
		if len(l.queue) == 0 {
			l.mu.Unlock()
			<-l.queueCh
			continue
		}
		ev := l.queue[0]
		l.queue = l.queue[1:]
		if ev == evExit {
			l.dropListenersLocked()
			l.mu.Unlock()
			return
		}
		targets := slices.Clone(l.listeners)
		l.mu.Unlock()
		leader := ev == evIsLeader
		for _, e := range targets {
			l.mu.Lock()
			if e.removed || e.told == leader {
				l.mu.Unlock()
				continue
			}
			e.told = leader
			l.mu.Unlock()
			l.call(e.ln, leader)
		}
	}
}

// call runs one listener method, surviving a panic.
func (l *LeaderLatch) call(ln LeaderLatchListener, leader bool) {
	defer func() {
		if r := recover(); r != nil {
			l.c.Logger().Error("leader latch listener panicked", zap.String("latch", l.path),
				zap.Bool("is_leader", leader), zap.Any("panic", r))
		}
	}()
	if leader {
		ln.IsLeader()
	} else {
		ln.NotLeader()
	}
}
