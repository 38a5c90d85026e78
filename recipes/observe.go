package recipes

import (
	"context"
	"errors"
	"time"

	"github.com/gocurator/curator/framework"
)

// The names by which the recipes report their events to a client's observer (framework.Event's
// Recipe field).
const (
	recipeMutex          = "mutex"
	recipeSemaphoreMutex = "semaphore-mutex"
	recipeSemaphore      = "semaphore"
	recipeReadLock       = "read-lock"
	recipeWriteLock      = "write-lock"
	recipeLeaderLatch    = "leader-latch"
	recipeLeaderSelector = "leader-selector"
)

// acquireStarted reports the start of an acquire to c's observer and returns when it started: the
// zero time if c has none, which makes acquireEnded do nothing, so that an acquire without an
// observer builds no event and reads no clock.
//
//go:noinline
func acquireStarted(c *framework.Client, recipe, path string) time.Time {
	if c == nil || !c.Observed() {
		return time.Time{}
	}
	c.Observe(framework.Event{Kind: framework.EventAcquireStarted, Recipe: recipe, Path: path})
	return time.Now()
}

// acquireEnded reports the end of an acquire that started at start (see acquireStarted): granted
// with l, or failed with err.
//
//go:noinline
func acquireEnded(c *framework.Client, recipe, path string, start time.Time, l *Lease, err error) {
	if start.IsZero() {
		return
	}
	e := framework.Event{Kind: framework.EventAcquireFailed, Recipe: recipe, Path: path, Duration: time.Since(start), Err: err}
	if err == nil && l != nil {
		e.Kind = framework.EventAcquireGranted
		e.Node = l.Node()
		if l.h != nil {
			e.SessionID = l.h.sessionID
		}
	}
	c.Observe(e)
}

// holdStarted reports that hold h was handed to the caller, unless it has ended already (then it
// is never reported, nor its end). A client without an observer reports nothing.
func holdStarted(h *hold) {
	if h == nil || h.granted.IsZero() {
		return
	}
	h.mu.Lock()
	ok := h.err == nil && !h.reported
	h.reported = ok
	h.mu.Unlock()
	if !ok {
		return
	}
	h.c.Observe(framework.Event{
		Kind: framework.EventHoldStarted, Recipe: h.book.recipe, Path: h.book.path, Node: h.node, SessionID: h.sessionID,
	})
}

// holdEnded reports the end of hold h with err (ErrReleased, or why it may be lost), if its start
// was reported (reported is h.reported as finish read it when it ended the hold).
func holdEnded(h *hold, reported bool, err error) {
	if !reported || h.granted.IsZero() || !h.c.Observed() {
		return
	}
	h.c.Observe(framework.Event{
		Kind: framework.EventHoldEnded, Recipe: h.book.recipe, Path: h.book.path, Node: h.node,
		SessionID: h.sessionID, Duration: time.Since(h.granted), Err: err,
	})
}

// leadershipChanged reports that a latch or selector on path began (gained) or stopped leading,
// with node in session sid; since is when it began, for a loss; err says why it stopped.
func leadershipChanged(c *framework.Client, recipe, path, node string, sid int64, gained bool, since time.Time, err error) {
	if c == nil || !c.Observed() {
		return
	}
	e := framework.Event{Kind: framework.EventLeadershipGained, Recipe: recipe, Path: path, Node: node, SessionID: sid}
	if !gained {
		e.Kind, e.Err = framework.EventLeadershipLost, err
		if !since.IsZero() {
			e.Duration = time.Since(since)
		}
	}
	c.Observe(e)
}

// AcquireOutcome names the outcome of an acquire that ended with err, as observers label it:
// "granted" (nil), "timeout" (its context's deadline passed), "canceled" (its context was
// cancelled), "locked" (a TryAcquire found the lock held) or "error".
func AcquireOutcome(err error) string {
	switch {
	case err == nil:
		return "granted"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, ErrLocked):
		return "locked"
	}
	return "error"
}

// LostReason names why a hold that ended with err was lost, as observers label it: "suspended"
// (the connection was, under framework.StandardErrorPolicy), "session_lost", "closed" (the client
// was) or "other" (the hold's node was deleted, say).
func LostReason(err error) string {
	switch {
	case errors.Is(err, framework.ErrSuspended):
		return "suspended"
	case errors.Is(err, framework.ErrSessionLost):
		return "session_lost"
	case errors.Is(err, framework.ErrClosed):
		return "closed"
	}
	return "other"
}
