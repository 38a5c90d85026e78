package framework

import (
	"errors"
	"fmt"
)

// State is the connection state of a Client, as Curator's ConnectionState.
type State int

// The connection states. A client reports Connected once, when its first session is established;
// after that, Suspended when the connection drops, Reconnected when it is back, and Lost when the
// session expired (or has been gone for longer than the session timeout, so the server has surely
// expired it). After Lost the client opens a new session by itself and reports Reconnected.
const (
	Connected   State = iota + 1 // first connection of the client's life
	Suspended                    // connection lost; session may still be alive
	Reconnected                  // connected again after Suspended or Lost
	Lost                         // session expired or presumed gone; ephemeral nodes are gone
	ReadOnly                     // connected to a read-only server
)

// String returns the state's name in capitals, as Curator prints it.
func (s State) String() string {
	switch s {
	case Connected:
		return "CONNECTED"
	case Suspended:
		return "SUSPENDED"
	case Reconnected:
		return "RECONNECTED"
	case Lost:
		return "LOST"
	case ReadOnly:
		return "READ_ONLY"
	case 0:
		return "LATENT"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// IsConnected reports whether the client can talk to ZooKeeper in this state.
func (s State) IsConnected() bool {
	return s == Connected || s == Reconnected || s == ReadOnly
}

// ErrorPolicy says which connection states end a lock hold or a leadership.
type ErrorPolicy int

const (
	// StandardErrorPolicy treats Suspended as a lost lock or lost leadership: once the connection
	// drops, the holder cannot know whether it still holds, so it is told at once that it may not.
	StandardErrorPolicy ErrorPolicy = iota
	// SessionErrorPolicy treats only Lost as the end: a hold survives a connection drop that the
	// session outlives.
	SessionErrorPolicy
)

// String returns the policy's name.
func (p ErrorPolicy) String() string {
	switch p {
	case StandardErrorPolicy:
		return "standard"
	case SessionErrorPolicy:
		return "session"
	}
	return fmt.Sprintf("ErrorPolicy(%d)", int(p))
}

// IsErrorState reports whether s ends a hold under p.
func (p ErrorPolicy) IsErrorState(s State) bool {
	if p == SessionErrorPolicy {
		return s == Lost
	}
	return s == Suspended || s == Lost
}

// The reasons a hold or a leadership ends with the connection, for errors.Is: a recipe's error
// for a hold that may be lost wraps one of these (or ErrClosed, when the client was closed).
var (
	// ErrSuspended means the connection to ZooKeeper dropped: the session may still live, but
	// until the client reconnects nothing can tell whether it does (StandardErrorPolicy ends holds
	// here).
	ErrSuspended = errors.New("curator: connection suspended")
	// ErrSessionLost means the session expired, or was silent for its whole timeout, so the server
	// has surely expired it: its ephemeral nodes are gone.
	ErrSessionLost = errors.New("curator: session lost")
)

// EndCause returns why the session with the given id can no longer back a hold: ErrClosed if the
// client is closed, ErrSessionLost if it is not the live session any more, ErrSuspended if it is
// live but not connected, and nil while it is live and connected.
//
// It reads the clock too: once no request of the session has been acknowledged for the whole
// session timeout (the process was paused, say, and its timers have not run yet), the server may
// have expired the session, so EndCause reports Lost at once, as the client's own watchdog would a
// moment later, and returns ErrSessionLost. A check made right after a pause is never fooled.
func (c *Client) EndCause(sessionID int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return ErrClosed
	case sessionID == 0 || sessionID != c.sessionID:
		return ErrSessionLost
	case c.untilExpiryLocked() == 0:
		c.presumeExpiredLocked()
		return ErrSessionLost
	case !c.state.IsConnected():
		return ErrSuspended
	}
	return nil
}

// HoldErr returns nil while a hold (a lock, a leadership) made in the session with the given id
// stands under the client's error policy, now, and otherwise why not (see EndCause): under
// StandardErrorPolicy any cause ends a hold, under SessionErrorPolicy only ErrSessionLost and
// ErrClosed do. Unlike ErrorState's channel, which closes a moment after the state changes, it
// answers from the state and the clock at the moment of the call.
func (c *Client) HoldErr(sessionID int64) error {
	err := c.EndCause(sessionID)
	if c.opts.errorPolicy == SessionErrorPolicy && errors.Is(err, ErrSuspended) {
		return nil
	}
	return err
}
