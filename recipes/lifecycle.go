package recipes

import (
	"errors"

	"github.com/gocurator/curator/framework"
)

var (
	// ErrNotStarted is returned (wrapped) by the calls of a LeaderLatch or LeaderSelector that need
	// it started (Await, say) before Start was called. A client that is not started is reported
	// with framework.ErrNotStarted instead.
	ErrNotStarted = errors.New("curator: recipe is not started")
	// ErrAlreadyStarted is returned (wrapped) by a second Start of a LeaderLatch or
	// LeaderSelector.
	ErrAlreadyStarted = errors.New("curator: recipe is already started")
)

// closedError reports the use of a recipe that was closed (not its client): its text names the
// recipe, and it matches ErrClosed with errors.Is.
type closedError struct{ what string }

func (e closedError) Error() string { return "curator: " + e.what + " is closed" }

// Is reports whether target is ErrClosed.
func (e closedError) Is(target error) bool { return target == ErrClosed }

var (
	errLatchClosed    error = closedError{"leader latch"}
	errSelectorClosed error = closedError{"leader selector"}
)

// connectionLossReason says why the connection state ended a leadership held with a node of
// session sid: ErrClosed, framework.ErrSessionLost or framework.ErrSuspended.
func connectionLossReason(c *framework.Client, sid int64) error {
	if err := c.EndCause(sid); err != nil {
		return err
	}
	return framework.ErrSuspended // back already: what ended it was a suspension
}
