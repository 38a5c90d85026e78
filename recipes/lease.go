package recipes

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gocurator/curator/framework"
)

// Lease is one hold of a lock or semaphore. It ends when it is released, or at once when the
// client's connection state means the hold may be lost: Done closes, Err says why, and the context
// from Context is cancelled with that error as its cause.
type Lease struct {
	h      *hold
	parts  []*Lease // a MultiLock's lease: its parts' leases in acquisition order (h is nil)
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}

	mu       sync.Mutex
	err      error
	released bool
}

// Release ends this lease. For a re-entrant hold, the last Release of the hold deletes its node
// (with a guaranteed delete: if the connection is down the node is deleted in the background as
// soon as it is back). Release of a lease that ended as lost returns an error wrapping ErrLockLost
// (and still removes the node if it survived); Release twice returns an error wrapping ErrNotHeld.
// A MultiLock's lease releases all its parts, in reverse order, and returns their errors joined.
func (l *Lease) Release() error {
	if l != nil && l.parts != nil {
		return l.releaseParts()
	}
	if l == nil || l.h == nil {
		return fmt.Errorf("release: %w", ErrNotHeld)
	}
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return fmt.Errorf("release %s: %w", l.h.node, ErrNotHeld)
	}
	l.released = true
	l.mu.Unlock()
	return l.h.release(l)
}

// Done returns a channel that is closed when the hold ends: released, or maybe lost.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err returns nil while the lease is held; after Done is closed, ErrReleased or an error wrapping
// ErrLockLost (and also ErrClosed if the hold ended because the client was closed).
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Context returns a context that carries the acquiring context's values, is cancelled (with cause
// Err()) when Done closes, and marks the hold: passing it, or a context derived from it, to Acquire
// on the same InterProcessMutex re-enters instead of waiting.
func (l *Lease) Context() context.Context { return l.ctx }

// Token is a fencing token: a ZooKeeper zxid that strictly increases from one holder of a lock path
// to the next, also across a re-created lock parent. Pass it to the resource you protect and have it
// reject older ones. Getting it costs no round trip: it is the parent's pzxid in the children listing
// that granted the lock (see grantToken). A MultiLock's lease has the largest of its parts' tokens.
func (l *Lease) Token() int64 {
	if l.parts != nil {
		return partsToken(l.parts)
	}
	return l.h.token
}

// Node returns the full path of this hold's znode (for a MultiLock's lease, its first part's).
func (l *Lease) Node() string {
	if l.parts != nil {
		return l.parts[0].Node()
	}
	return l.h.node
}

// end ends the lease with err, unless it has ended already.
func (l *Lease) end(err error) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.err = err
	close(l.done)
	l.mu.Unlock()
	l.cancel(err)
}

// holdKey marks a lease's context as carrying a hold of one lock (owner is the lock value).
type holdKey struct{ owner any }

// hold is one acquisition of a lock node, shared by the leases that re-entered it.
type hold struct {
	c         *framework.Client
	owner     any
	node      string
	sessionID int64
	token     int64
	onEnd     func(*hold) // called once when the hold ends, before its node is deleted

	mu     sync.Mutex
	leases map[*Lease]struct{}
	err    error // nil while held
	stop   chan struct{}
}

// newHold starts a hold of node, granted in session sessionID, and watches the client's connection
// state so that the hold ends at once when the error policy says it may be lost.
func newHold(c *framework.Client, owner any, node string, sessionID, token int64, onEnd func(*hold)) *hold {
	h := &hold{
		c: c, owner: owner, node: node, sessionID: sessionID, token: token, onEnd: onEnd,
		leases: map[*Lease]struct{}{},
		stop:   make(chan struct{}),
	}
	errState := c.ErrorState(sessionID)
	go func() {
		select {
		case <-h.stop:
		case <-errState:
			h.lost()
		}
	}()
	return h
}

// newLease adds a lease to the hold. ctx is the acquiring context, whose values the lease's context
// keeps.
func (h *hold) newLease(ctx context.Context) (*Lease, error) {
	lctx, cancel := context.WithCancelCause(context.WithValue(context.WithoutCancel(ctx), holdKey{h.owner}, h))
	l := &Lease{h: h, ctx: lctx, cancel: cancel, done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		cancel(h.err)
		return nil, fmt.Errorf("acquire %s: %w", h.node, h.err)
	}
	h.leases[l] = struct{}{}
	return l, nil
}

// lost ends the hold because the session was suspended or lost (or the client closed), and has
// its node, if it survived, removed once the client is connected again.
func (h *hold) lost() {
	err := ErrLockLost
	select {
	case <-h.c.Done():
		err = fmt.Errorf("%w: %w", ErrLockLost, ErrClosed)
	default:
	}
	if !h.finish(err) {
		return
	}
	h.c.Logger().Warn("lock hold lost: the connection was suspended or the session lost")
	h.c.DeleteInBackground(h.node)
}

// finish ends the hold and all its leases with err; it reports whether this call ended it.
func (h *hold) finish(err error) bool {
	h.mu.Lock()
	if h.err != nil {
		h.mu.Unlock()
		return false
	}
	h.err = err
	leases := h.leases
	h.leases = map[*Lease]struct{}{}
	close(h.stop)
	h.mu.Unlock()
	for l := range leases {
		l.end(err)
	}
	if h.onEnd != nil {
		h.onEnd(h)
	}
	return true
}

// release ends lease l; the last lease of a live hold deletes the node.
func (h *hold) release(l *Lease) error {
	h.mu.Lock()
	herr := h.err
	delete(h.leases, l)
	last := len(h.leases) == 0
	h.mu.Unlock()
	if herr != nil {
		return fmt.Errorf("release %s: %w", h.node, herr)
	}
	l.end(ErrReleased)
	if !last {
		return nil
	}
	if !h.finish(ErrReleased) {
		// Lost between the two locks above: the node is being removed already.
		h.mu.Lock()
		herr = h.err
		h.mu.Unlock()
		return fmt.Errorf("release %s: %w", h.node, herr)
	}
	return deleteNode(h.c, h.node)
}

// deleteNode deletes a recipe's node with a guaranteed delete, bounded by the session timeout (past
// it, the delete goes on in the background).
func deleteNode(c *framework.Client, node string) error {
	ctx, cancel := context.WithTimeout(context.Background(), max(c.SessionTimeout(), time.Second))
	defer cancel()
	if err := c.DeleteGuaranteed(ctx, node); err != nil {
		return fmt.Errorf("release %s: %w", node, err)
	}
	return nil
}

// holdFrom returns the hold of owner that ctx carries, if any.
func holdFrom(ctx context.Context, owner any) *hold {
	h, _ := ctx.Value(holdKey{owner}).(*hold)
	return h
}
