package recipes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/goid"
)

type selectorOptions struct {
	id          string
	autoRequeue bool
}

// SelectorOption configures a LeaderSelector.
type SelectorOption func(*selectorOptions)

// WithSelectorID sets the selector's participant id, which is written to its node as UTF-8 and is
// what Participants and Leader report, to Go and Java processes alike. With the default id, "",
// the node gets the client's default data (the local IP address), as Curator writes it.
func WithSelectorID(id string) SelectorOption {
	return func(o *selectorOptions) { o.id = id }
}

// AutoRequeue makes the selector queue again for leadership each time the leadership function
// returns (Curator's autoRequeue), so that it takes part in the election for as long as it is
// open. Without it, each Start or Requeue buys one turn.
func AutoRequeue() SelectorOption {
	return func(o *selectorOptions) { o.autoRequeue = true }
}

// LeaderSelector runs a function while its participant leads an election among the processes that
// use the same path: Curator's LeaderSelector, on its nodes. The election is an InterProcessMutex
// on the path (<path>/_c_<uuid>-lock-<sequence>, with the participant id as data), so Go and Java
// processes on one path elect one leader together, and a participant leads while it holds the
// mutex.
//
// Start queues one turn. When the turn comes, the function runs with a context that is cancelled
// the moment leadership may be lost (at Suspended under the client's
// framework.StandardErrorPolicy, at Lost under framework.SessionErrorPolicy), when
// InterruptLeadership is called, or when the selector is closed; the cause wraps ErrNotLeader and
// says why (ErrClosed too when the selector or its client was closed; ErrLockLost, and whether the
// connection was suspended or the session lost, when the connection ended it). Leadership ends
// when the function returns: the mutex is released and the next participant leads. The function
// must return soon after its context is done, since until it returns the selector cannot tell
// anyone else to stop. Without AutoRequeue, the selector then waits for Requeue; with it, it
// queues again at once.
//
// A turn that cannot queue (the connection is down past the retry policy, say) keeps trying,
// with a growing pause, until it leads or the selector or its client is closed. The function runs
// on a goroutine of the selector's own; a panic in it is logged and ends the turn like a return.
// The methods of a LeaderSelector may be called from several goroutines at once.
type LeaderSelector struct {
	c    *framework.Client
	path string
	id   string
	auto bool
	fn   func(ctx context.Context) error
	m    *InterProcessMutex
	err  error // bad input, reported by the first call that can return an error

	wake  chan struct{} // a turn was queued
	done  chan struct{} // closed when the selector's goroutine ends
	runID atomic.Uint64 // goroutine id of the selector's goroutine, once it runs

	mu     sync.Mutex
	state  lifecycle
	dead   bool // the client was closed: the selector does nothing more
	queued bool // a turn is queued or running
	stop   context.CancelFunc
	term   *selectorTerm // the running turn's leadership, nil if none
}

// selectorTerm is one leadership: the lease of the mutex and the function's context.
type selectorTerm struct {
	lease    *Lease
	errState <-chan struct{} // closed when the connection state ends the term
	ctx      context.Context
	cancel   context.CancelCauseFunc
}

// leads reports whether the term goes on: its context is not done and the connection state has
// not ended it (the lease hears of that a moment later).
func (t *selectorTerm) leads() bool {
	if t == nil || t.ctx.Err() != nil {
		return false
	}
	select {
	case <-t.errState:
		return false
	default:
	}
	return t.lease.Err() == nil // the state and the clock now (see Lease.Err)
}

// Token is the term's fencing token: its lease's (see LeadershipToken).
func (t *selectorTerm) Token() int64 { return t.lease.Token() }

// Guard is the term's guard: its lease's node exists, and the term has not ended here (its
// context, which InterruptLeadership and Close cancel too, is live).
func (t *selectorTerm) Guard() Guard {
	lease := t.lease
	return Guard{c: lease.h.c, nodes: []string{lease.h.node}, hctx: t.ctx, lost: ErrNotLeader, check: func() error {
		if err := lease.Err(); err != nil {
			return fmt.Errorf("%w: %w", ErrNotLeader, err)
		}
		return nil
	}}
}

// NewLeaderSelector returns a selector on path that runs lead while it leads; call Start to join
// the election. A bad path, a nil client or a nil lead is reported by the first call that can
// return an error.
func NewLeaderSelector(c *framework.Client, path string, lead func(ctx context.Context) error, opts ...SelectorOption) *LeaderSelector {
	o := selectorOptions{}
	var errs []error
	if err := checkArgs(c, path); err != nil {
		errs = append(errs, err)
	}
	if lead == nil {
		errs = append(errs, fmt.Errorf("%w: leadership function is nil", ErrInvalidArgument))
	}
	for i, opt := range opts {
		if opt == nil {
			errs = append(errs, fmt.Errorf("%w: selector option %d is nil", ErrInvalidArgument, i))
			continue
		}
		opt(&o)
	}
	s := &LeaderSelector{
		c: c, path: path, id: o.id, auto: o.autoRequeue, fn: lead,
		err:  errors.Join(errs...),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	var data func(context.Context) []byte
	if o.id != "" {
		id := []byte(o.id)
		data = func(context.Context) []byte { return id }
	}
	s.m = newMutex(c, recipeLeaderSelector, path, lockName, data, singleHolder(1))
	return s
}

// Start joins the election: it queues the selector's first turn, which waits in the background
// for the client to connect. It returns an error wrapping ErrAlreadyStarted if the selector was
// started before, ErrClosed if the selector or its client is closed, framework.ErrNotStarted if the
// client is not started, and ErrInvalidArgument if the selector's node could never be created (a
// participant id too large for the server, say); the selector is not started then.
func (s *LeaderSelector) Start() error {
	if s.err != nil {
		return fmt.Errorf("start leader selector: %w", s.err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.state.startErr(errSelectorClosed); err != nil {
		return fmt.Errorf("start leader selector %s: %w", s.path, err)
	}
	data := []byte(s.id)
	if s.id == "" {
		data = s.c.DefaultData()
	}
	if err := checkStartable(s.c, s.path, lockName, data); err != nil {
		return fmt.Errorf("start leader selector %s: %w", s.path, err)
	}
	s.state = lifeStarted
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.queueLocked()
	go s.run(ctx)
	return nil
}

// Requeue queues another turn for leadership, and reports whether it did: it does nothing and
// returns false while a turn is queued or running (the leadership function counts as running),
// and on a selector that is not started, is closed, or whose client is closed.
func (s *LeaderSelector) Requeue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != lifeStarted || s.dead || s.queued {
		return false
	}
	s.queueLocked()
	return true
}

// queueLocked marks a turn as queued and wakes the selector's goroutine.
func (s *LeaderSelector) queueLocked() {
	s.queued = true
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close leaves the election: it cancels the leadership function's context (with a cause wrapping
// ErrNotLeader and ErrClosed), waits for the function to return, and releases the mutex, or gives
// up the selector's place in the queue. When Close returns, the selector's goroutine has ended,
// the leadership function will not be called again, and the selector's node is deleted, so the
// next participant leads without waiting for a session to time out; if the connection is down, or
// the node was still being created, it is deleted in the background, as soon as it can be.
//
// Close may be called from inside the leadership function: it then cancels the function's context
// and returns at once, without waiting for the function (which would never end); when the
// function returns, the mutex is released and the selector's goroutine ends. Called from anywhere
// else (a connection state listener, say), Close waits for the function to return, so the function
// must not wait for that caller; it may close the client, though (Client.Close called from a
// leadership function does not wait for the client's listener goroutine).
//
// Closing a selector that was never started returns nil (the selector is closed all the same, and
// cannot be started any more), so a deferred Close is quiet; closing twice returns an error
// wrapping ErrClosed.
func (s *LeaderSelector) Close() error {
	if s.err != nil {
		return fmt.Errorf("close leader selector: %w", s.err)
	}
	s.mu.Lock()
	switch s.state {
	case lifeLatent:
		s.state = lifeClosed
		s.mu.Unlock()
		return nil
	case lifeClosed:
		s.mu.Unlock()
		return fmt.Errorf("close leader selector %s: %w", s.path, errSelectorClosed)
	}
	s.state = lifeClosed
	t := s.term
	stop := s.stop
	s.mu.Unlock()
	stop()
	if t != nil {
		t.cancel(fmt.Errorf("%w: %w", ErrNotLeader, errSelectorClosed))
	}
	// The selector's goroutine records its id before it calls the leadership function, so a
	// Close from inside the function always sees it.
	if goid.Current() != s.runID.Load() {
		<-s.done
	}
	return nil
}

// HasLeadership reports whether the selector leads now: its leadership function is running, and
// neither has its context ended nor has the connection state ended the leadership (it turns false
// the moment that happens, a moment before the context is cancelled). It reads local state only.
func (s *LeaderSelector) HasLeadership() bool {
	s.mu.Lock()
	t := s.term
	s.mu.Unlock()
	return t.leads()
}

// InterruptLeadership cancels the running leadership function's context (with a cause wrapping
// ErrNotLeader), and reports whether the selector led. Leadership ends when the function returns;
// with AutoRequeue the selector then queues again.
func (s *LeaderSelector) InterruptLeadership() bool {
	s.mu.Lock()
	t := s.term
	s.mu.Unlock()
	if t == nil || t.ctx.Err() != nil {
		return false
	}
	t.cancel(fmt.Errorf("%w: leadership interrupted", ErrNotLeader))
	return true
}

// ID returns the selector's participant id.
func (s *LeaderSelector) ID() string { return s.id }

// Path returns the election path.
func (s *LeaderSelector) Path() string { return s.path }

// ParticipantNodes returns the full paths of the election's nodes, the leader's first, then the
// others in queue order.
func (s *LeaderSelector) ParticipantNodes(ctx context.Context) ([]string, error) {
	return s.m.ParticipantNodes(ctx)
}

// Participants returns the participants of the election in queue order, the leader first, with
// the ids read from their nodes (a node deleted while they are read is left out; a participant
// without an id shows its node's default data, an IP address, as in Curator). It works on a
// selector that is not started too, to watch an election without joining it; after Close it
// returns an error wrapping ErrClosed.
func (s *LeaderSelector) Participants(ctx context.Context) ([]Participant, error) {
	return s.election().participants(ctx)
}

// Leader returns the participant that leads: the first in queue order. It returns an error
// wrapping ErrNoLeader if there is no participant.
func (s *LeaderSelector) Leader(ctx context.Context) (Participant, error) {
	return s.election().leader(ctx)
}

// election is the selector's election, for Participants and Leader.
func (s *LeaderSelector) election() election {
	return election{path: s.path, nodes: s.m.Participants, closed: func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.state == lifeClosed {
			return errSelectorClosed
		}
		return nil
	}}
}

// election reads the participants of a LeaderLatch's or a LeaderSelector's election.
type election struct {
	path   string
	nodes  func(context.Context) ([]LockNode, error) // the nodes in queue order; the first leads
	closed func() error                              // why the recipe cannot be read (closed), or nil
}

// participants returns the participants in queue order, the leader first.
func (e election) participants(ctx context.Context) ([]Participant, error) {
	if err := e.closed(); err != nil {
		return nil, fmt.Errorf("participants of %s: %w", e.path, err)
	}
	nodes, err := e.nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("participants of %s: %w", e.path, err)
	}
	out := make([]Participant, len(nodes))
	for i, n := range nodes {
		out[i] = Participant{ID: n.ID(), IsLeader: i == 0}
	}
	return out, nil
}

// leader returns the first participant, or an error wrapping ErrNoLeader if there is none.
func (e election) leader(ctx context.Context) (Participant, error) {
	ps, err := e.participants(ctx)
	if err != nil {
		return Participant{}, err
	}
	if len(ps) == 0 {
		return Participant{}, fmt.Errorf("leader of %s: %w", e.path, ErrNoLeader)
	}
	return ps[0], nil
}

// run is the selector's goroutine: it takes the queued turns one by one until the selector or its
// client is closed.
func (s *LeaderSelector) run(ctx context.Context) {
	defer close(s.done)
	defer goid.MarkCallbacks()()
	s.runID.Store(goid.Current())
	for {
		select {
		case <-s.wake:
		case <-ctx.Done():
			return
		case <-s.c.Done():
			s.clientClosed()
			return
		}
		if !s.turn(ctx) {
			if ctx.Err() == nil {
				s.clientClosed()
			}
			return
		}
		s.mu.Lock()
		s.queued = false
		if s.auto && s.state == lifeStarted {
			s.queueLocked()
		}
		s.mu.Unlock()
	}
}

// clientClosed marks the selector dead: its client is closed, so it can never lead again.
func (s *LeaderSelector) clientClosed() {
	s.mu.Lock()
	s.dead = true
	s.queued = false
	s.mu.Unlock()
}

// turn waits for the mutex, runs the leadership function and releases the mutex. It returns false
// if the selector or its client was closed before the mutex was had.
func (s *LeaderSelector) turn(ctx context.Context) bool {
	log := s.c.Logger().With(zap.String("selector", s.path))
	fails := 0
	for {
		lease, err := s.m.Acquire(ctx)
		if err == nil {
			s.lead(lease, log)
			return true
		}
		if ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return false
		}
		log.Warn("leader selector could not queue for leadership; trying again", zap.Error(err))
		d := min(50*time.Millisecond<<min(fails, 7), 5*time.Second)
		fails++
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false
		case <-s.c.Done():
			t.Stop()
			return false
		}
	}
}

// lead runs the leadership function under a context that ends with the lease, then releases the
// lease.
func (s *LeaderSelector) lead(lease *Lease, log *zap.Logger) {
	t := &selectorTerm{lease: lease, errState: s.c.ErrorState(lease.h.sessionID)}
	lctx, cancel := context.WithCancelCause(context.WithValue(context.WithoutCancel(lease.Context()), leadershipKey{}, t))
	t.ctx, t.cancel = lctx, cancel
	stopLost := context.AfterFunc(lease.Context(), func() {
		// The hold was lost: its cause says why (ErrLockLost and the suspension, the session's
		// loss or the client's Close).
		cancel(fmt.Errorf("%w: %w", ErrNotLeader, context.Cause(lease.Context())))
	})
	s.mu.Lock()
	closed := s.state != lifeStarted
	if !closed {
		s.term = t
	}
	s.mu.Unlock()
	if closed {
		cancel(fmt.Errorf("%w: %w", ErrNotLeader, errSelectorClosed))
	}
	// Leadership may be over already (the connection dropped as the mutex was granted): then the
	// function is not called at all (Curator's testRaceAtStateChanged).
	if t.leads() {
		if s.c.Observed() {
			began, node, sid := time.Now(), lease.Node(), lease.h.sessionID
			leadershipChanged(s.c, recipeLeaderSelector, s.path, node, sid, true, time.Time{}, nil)
			// The loss is told the moment leadership ends (its context), not when the function
			// returns, which may be later.
			context.AfterFunc(lctx, func() {
				leadershipChanged(s.c, recipeLeaderSelector, s.path, node, sid, false, began, context.Cause(lctx))
			})
		}
		s.call(lctx, log)
	}
	s.mu.Lock()
	s.term = nil
	s.mu.Unlock()
	stopLost()
	cancel(fmt.Errorf("%w: leadership function returned", ErrNotLeader))
	if err := lease.Release(); err != nil && !errors.Is(err, ErrLockLost) {
		log.Warn("leader selector could not release its node", zap.Error(err))
	}
}

// call runs the leadership function, surviving a panic.
func (s *LeaderSelector) call(ctx context.Context, log *zap.Logger) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("leadership function panicked", zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	if err := s.fn(ctx); err != nil {
		if ctx.Err() != nil {
			log.Debug("leadership function returned after leadership ended", zap.Error(err))
		} else {
			log.Warn("leadership function failed", zap.Error(err))
		}
	}
}
