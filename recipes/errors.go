// Package recipes holds distributed locks and leader election on ZooKeeper, after Apache
// Curator's recipes and on the same znodes, so that Go and Java processes can share one lock path:
// a re-entrant mutex (InterProcessMutex), a non-re-entrant mutex (SemaphoreMutex), a counting
// semaphore (Semaphore), a read-write lock, a multi-lock and a leader latch.
//
// Every lock waits in a queue of ephemeral sequential znodes in which each waiter watches only its
// predecessor, so a release wakes one waiter, not all. A hold is a Lease: its Done channel closes,
// and its Context is cancelled, the moment the hold may be lost (at Suspended under the client's
// StandardErrorPolicy, at Lost under SessionErrorPolicy), and its Token is a fencing token that
// strictly increases from one holder of a lock path to the next.
package recipes

import (
	"errors"

	"github.com/gocurator/curator/framework"
)

var (
	// ErrNotHeld is returned by Release of a lease that is not held (released already, or never
	// acquired).
	ErrNotHeld = errors.New("curator: lock is not held")
	// ErrLockLost is Lease.Err after the session was suspended or lost while the lease was held
	// (which of the two, the client's error policy decides), and is wrapped by Release of such a
	// lease.
	ErrLockLost = errors.New("curator: lock may have been lost")
	// ErrReleased is Lease.Err after Release.
	ErrReleased = errors.New("curator: lock released")
	// ErrClosed is returned (wrapped) by every recipe call after the client or the recipe was
	// closed. It is framework.ErrClosed.
	ErrClosed = framework.ErrClosed
	// ErrLocked is returned (wrapped) by TryAcquire when the lock is held by someone else.
	ErrLocked = errors.New("curator: lock is held by another")
	// ErrInvalidArgument is wrapped by errors that report bad input (a bad path, count or
	// option); the error's text names the value. It is framework.ErrInvalidArgument.
	ErrInvalidArgument = framework.ErrInvalidArgument
)
