package recipes

import (
	"errors"
	"fmt"

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

// The reasons a leadership ends because of the connection. A term's cause wraps ErrNotLeader and
// one of these (or ErrClosed, if the client was closed).
var (
	errConnectionSuspended = errors.New("curator: connection suspended")
	errSessionLost         = errors.New("curator: session lost")
)

// connectionLossReason says why the connection state ended a leadership held with a node of
// session sid: the client was closed (ErrClosed), the session ended (errSessionLost), or the
// connection is suspended (errConnectionSuspended).
func connectionLossReason(c *framework.Client, sid int64) error {
	select {
	case <-c.Done():
		return ErrClosed
	default:
	}
	select {
	case <-c.SessionEnded(sid):
		return errSessionLost
	default:
		return errConnectionSuspended
	}
}

// maxCreateRequest is the largest create request, path and data together, that the recipes send:
// ZooKeeper's default jute.maxbuffer (1 MiB - 1) less room for the request's other fields. The
// server drops the connection of a client that sends a bigger one.
const maxCreateRequest = 1048575 - 256

// checkCreatable reports, without sending anything, whether a create of path with data could ever
// succeed: an error wrapping ErrInvalidArgument if the request is too large for the server.
func checkCreatable(c *framework.Client, path string, data []byte) error {
	_ = c
	if n := len(path) + len(data); n > maxCreateRequest {
		return fmt.Errorf("%w: node %s with %d bytes of data is too large to create (path and data over %d bytes)",
			ErrInvalidArgument, path, len(data), maxCreateRequest)
	}
	return nil
}
