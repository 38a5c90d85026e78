package framework

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/retry"
)

// Observer receives the events of a Client and of the recipes built on it: each request to
// ZooKeeper, connection state changes, sessions opened and lost, background deletes, and, from the
// recipes, acquires, holds and leadership (Curator's TracerDriver, in one method). Set it with
// WithObserver.
//
// Observe is never called while the client or a recipe holds a lock of its own, nor on a goroutine
// that the connection or a Close waits for, so it may call the client, Close included. The
// client's own events (requests, state changes, sessions, background deletes) are delivered in the
// order they happened on the client's listener goroutine, the one that runs the state listeners
// (Listen), right before the listeners hear of the same state; the recipes' acquire and hold events
// on the goroutine where they happen (the caller of Acquire or Release, or the goroutine that sees
// a hold lost); a latch's leadership events in order on a goroutine of the latch's. Observe may
// therefore be called from several goroutines at once. It must return quickly: a slow observer
// delays the state listeners and the acquires it is called from, and the client's events queue up
// behind it. Hand slow work to a goroutine of your own. A client without an observer builds no
// events and costs nothing.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts an ordinary function to Observer.
type ObserverFunc func(Event)

// Observe calls f(e).
func (f ObserverFunc) Observe(e Event) { f(e) }

// EventKind says what an Event reports, and so which of its fields are set.
type EventKind uint8

// The kinds of Event. Each says which fields it sets beside Kind.
const (
	// EventRequest: a request to ZooKeeper was answered, or failed. Op, Path (the node's, as the
	// caller gave it), Duration (from sending to the answer), Err (nil, the server's answer such as
	// zk.ErrNoNode, or a connection loss). A transaction is one request, with Op "multi".
	EventRequest EventKind = iota + 1
	// EventStateChange: the connection state changed. State, SessionID.
	EventStateChange
	// EventSessionOpened: the server granted a new session. SessionID.
	EventSessionOpened
	// EventSessionLost: a session ended or was presumed gone (Lost). SessionID, Err (why).
	EventSessionLost
	// EventDeleteQueued: a node was left to the background deleter (the client was not
	// connected, or a delete's answer was lost). Path.
	EventDeleteQueued
	// EventDeleteDone: the background deleter is done with a node. Path, Err (nil: the node is
	// gone; else the server's refusal).
	EventDeleteDone
	// EventAcquireStarted: a recipe's Acquire (or TryAcquire, or a latch's or selector's bid
	// for leadership) began. Recipe, Path.
	EventAcquireStarted
	// EventAcquireGranted: the acquire was granted. Recipe, Path, Node, SessionID, Duration (the
	// wait).
	EventAcquireGranted
	// EventAcquireFailed: the acquire returned without a hold. Recipe, Path, Duration (the wait),
	// Err (the acquire's error: its context's, ErrLocked for a TryAcquire, ...).
	EventAcquireFailed
	// EventHoldEnded: a hold (all the leases of a re-entrant hold) that EventHoldStarted reported
	// ended. Recipe, Path, Node,
	// SessionID, Duration (how long it was held), Err (recipes.ErrReleased, or the error wrapping
	// recipes.ErrLockLost that says why it may be lost).
	EventHoldEnded
	// EventLeadershipGained: a LeaderLatch or LeaderSelector began to lead. Recipe, Path, Node,
	// SessionID.
	EventLeadershipGained
	// EventLeadershipLost: it stopped leading. Recipe, Path, Node, SessionID, Duration (how long
	// it led), Err (why: closed, relinquished, or the connection's state).
	EventLeadershipLost
	// EventHoldStarted: a hold was handed to the caller (one per lease a Semaphore's Acquire
	// returns; a re-entry is none). Recipe, Path, Node, SessionID. Every hold that starts ends
	// with one EventHoldEnded, and only those do, so holds started minus holds ended is the count
	// of live holds.
	EventHoldStarted
)

var eventKindNames = [...]string{
	EventRequest:          "request",
	EventStateChange:      "state-change",
	EventSessionOpened:    "session-opened",
	EventSessionLost:      "session-lost",
	EventDeleteQueued:     "delete-queued",
	EventDeleteDone:       "delete-done",
	EventAcquireStarted:   "acquire-started",
	EventAcquireGranted:   "acquire-granted",
	EventAcquireFailed:    "acquire-failed",
	EventHoldEnded:        "hold-ended",
	EventLeadershipGained: "leadership-gained",
	EventLeadershipLost:   "leadership-lost",
	EventHoldStarted:      "hold-started",
}

// String returns the kind's name, such as "acquire-granted".
func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is what an Observer receives. Kind says which fields are set (see the EventKind
// constants); the others are zero.
type Event struct {
	Kind EventKind
	// Op is a request's operation: "create", "delete", "exists", "getData", "setData",
	// "getChildren", "multi" or "sync".
	Op string
	// Recipe names the recipe of a recipe's event: "mutex", "semaphore-mutex", "semaphore",
	// "read-lock", "write-lock", "leader-latch" or "leader-selector" (a MultiLock reports through its
	// locks).
	Recipe string
	// Path is a request's node, a deleted node, or a recipe's lock path. Paths can be many: an
	// adapter that labels metrics with them should do so only when asked.
	Path string
	// Node is the full path of a hold's or a leader's node.
	Node      string
	State     State
	SessionID int64
	Duration  time.Duration
	Err       error
}

// WithObserver sets the observer that receives the client's and its recipes' events (see
// Observer). nil, the default, means none.
func WithObserver(o Observer) Option {
	return func(opts *options) { opts.observer = o }
}

// Observed reports whether the client has an observer. The recipes check it before they build an
// event, so that a client without one pays nothing.
func (c *Client) Observed() bool { return c.opts.observer != nil }

// Observe hands e to the client's observer, if it has one. The recipes report their events
// through it. It must not be called while holding a lock that the observer might need.
func (c *Client) Observe(e Event) {
	if o := c.opts.observer; o != nil {
		o.Observe(e)
	}
}

// observeQueued hands e to the observer on the dispatch goroutine, in order with the state
// changes: for the events that happen on a goroutine where the observer must not run (the
// connection's reader, whose replies a request of the observer's waits for; a goroutine that Close
// waits for).
func (c *Client) observeQueued(e Event) {
	if !c.Observed() {
		return
	}
	c.listenMu.Lock()
	c.queue = append(c.queue, e)
	c.queueCond.Signal()
	c.listenMu.Unlock()
}

// RequestOutcome names the outcome of a request that ended with err, as observers label it: "ok"
// (nil); the server's answers "no_node", "node_exists", "bad_version" and "session_expired";
// "connection_loss" (the connection closed or not to be had, or any error the client's retry
// policies retry); or "other" (the caller's context, a closed client, another answer).
func RequestOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, zk.ErrNoNode):
		return "no_node"
	case errors.Is(err, zk.ErrNodeExists):
		return "node_exists"
	case errors.Is(err, zk.ErrBadVersion):
		return "bad_version"
	case errors.Is(err, zk.ErrSessionExpired):
		return "session_expired"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled), errors.Is(err, ErrClosed):
		return "other"
	case retry.IsRetryable(err):
		return "connection_loss"
	}
	return "other"
}
