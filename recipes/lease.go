package recipes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gocurator/curator/framework"
)

// Lease is one hold of a lock or semaphore. It ends when it is released, or at once when the
// client's connection state means the hold may be lost: Done closes, Err says why, and the context
// from Context is cancelled with that error as its cause.
type Lease struct {
	h     *hold
	parts []*Lease // a MultiLock's lease: its parts' leases in acquisition order (h is nil)
	// partNames names the parts in errors, for a MultiLock's lease.
	partNames []string
	ctx       context.Context
	cancel    context.CancelCauseFunc
	done      chan struct{}

	mu       sync.Mutex
	err      error
	released bool
}

// Release ends this lease. For a re-entrant hold, the last Release of the hold ends the hold and
// deletes its node. Release of a lease that ended as lost returns an error wrapping ErrLockLost
// (and still removes the node if it survived); Release twice returns an error wrapping ErrNotHeld.
// A MultiLock's lease releases all its parts, in reverse order, and returns their errors joined.
//
// Release does not wait for the server to confirm the delete. The hold ends at once (Done closes,
// Err returns ErrReleased); the delete is handed to the client's connection, and Release returns
// as soon as it has been sent. Exclusion does not depend on that reply: another client is granted
// the lock only once the server has applied the delete (it waits on the node's deletion, or lists
// the children after it), whether or not this client has seen the reply. And the client's own next
// requests (a re-acquire's create and listing) are sent behind the delete, so the server applies
// it before them. If the connection is down, or the reply is lost with it, the client's background
// deleter deletes the node as soon as the client is connected again, before the client's other
// requests on the new connection (only a request already queued on a connection that had dropped
// unnoticed can go ahead of it), so the node never outlives the release while the session lives.
// A delete that the server refuses for good (no auth, say) is logged at Error level; use
// ReleaseWait to get that error, or to know that the node is gone.
func (l *Lease) Release() error {
	refs, err := l.detach()
	if len(refs) > 0 {
		if _, rerr := removeNodes(refs...); rerr != nil {
			err = errors.Join(err, fmt.Errorf("release: %w", rerr))
		}
	}
	return err
}

// ReleaseWait is Release that then waits until the server has confirmed that the hold's node is
// gone, or ctx ends. It releases even if ctx has ended already. It returns what Release returns,
// joined with: an error wrapping the server's (zk.ErrNoAuth, say) if the server refused the delete,
// in which case the node remains; an error wrapping ctx's if ctx ended before the delete was
// confirmed, in which case the delete goes on in the background as after Release; or an error
// wrapping ErrClosed if the client was closed before the delete was confirmed (the node then goes
// with the session: at once if the server took the client's close, else when the server expires
// the session). While the
// connection is down it waits for the background deleter, which deletes the node once the client
// is connected again; an expired session counts as confirmation, since the node went with it.
// A re-entrant hold's Release that is not the last deletes nothing and returns at once, as does
// the Release of a lease that ended as lost (its node, if it survived, is removed in the
// background).
func (l *Lease) ReleaseWait(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("release: %w: nil context", ErrInvalidArgument)
	}
	refs, err := l.detach()
	dels, rerr := removeNodes(refs...)
	if rerr != nil {
		err = errors.Join(err, fmt.Errorf("release: %w", rerr))
	}
	for _, d := range dels {
		if werr := d.Wait(ctx); werr != nil {
			err = errors.Join(err, fmt.Errorf("release: %w", werr))
		}
	}
	return err
}

// detach is Release without the deletes: it ends the lease (a MultiLock's, its parts in reverse
// order) and returns the nodes that the release leaves to remove, with the release's errors. The
// caller removes the nodes of several leases together, under one bound.
func (l *Lease) detach() ([]nodeRef, error) {
	if l != nil && l.parts != nil {
		return l.detachParts()
	}
	if l == nil || l.h == nil {
		return nil, fmt.Errorf("release: %w", ErrNotHeld)
	}
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil, fmt.Errorf("release %s: %w", l.h.node, ErrNotHeld)
	}
	l.released = true
	l.mu.Unlock()
	ref, err := l.h.release(l)
	if ref.path == "" {
		return nil, err
	}
	return []nodeRef{ref}, err
}

// Done returns a channel that is closed when the hold ends: released, or maybe lost.
func (l *Lease) Done() <-chan struct{} {
	if l == nil || l.done == nil {
		return closedChan // no hold: nothing to wait for
	}
	return l.done
}

// closedChan is a channel that is always closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Err returns nil while the lease is held; after Done is closed, ErrReleased or an error wrapping
// ErrLockLost and why: framework.ErrSuspended (the connection dropped, under StandardErrorPolicy),
// framework.ErrSessionLost (the session expired or was presumed gone) or ErrClosed (the client was
// closed).
func (l *Lease) Err() error {
	if l == nil || (l.h == nil && l.parts == nil) {
		return ErrNotHeld
	}
	l.checkNow()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Context returns a context that carries the acquiring context's values, is cancelled (with cause
// Err()) when Done closes, and marks the hold: passing it, or a context derived from it, to Acquire
// on the same InterProcessMutex re-enters instead of waiting.
func (l *Lease) Context() context.Context {
	if l == nil || l.ctx == nil {
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(ErrNotHeld)
		return ctx
	}
	return l.ctx
}

// Token is a fencing token: the lock parent's pzxid in the children listing that granted the hold
// (see grantToken), read at no extra round trip. It is greater than the token of every hold on the
// same path that ended before this one was granted, also across a re-created lock parent. So for a
// hold that excludes all others (InterProcessMutex, SemaphoreMutex, the write lock, a
// LeaderSelector's leadership) tokens strictly increase from one holder to the next: have the
// resource you protect reject any token lower than the highest it has accepted.
//
// Holds that share are ordered only against the exclusive holds around them. A read lock's token
// lies above the tokens of the writers that held before it and below those of the writers that
// hold after it, but readers' tokens are not ordered among themselves: reject a read whose token is
// below the highest write token accepted, and a write whose token is below the highest token of any
// kind. A Semaphore lease with maxLeases > 1 overlaps other leases legitimately, so its token cannot
// fence; a resource that rejected "older" lease tokens would turn away a holder within the limit.
//
// A MultiLock's lease has the largest of its parts' tokens. It fences each of its paths like an
// exclusive hold: all parts are granted before any is released, so on each path the largest part
// token lies above every earlier holder's token (each below our part's) and below every later
// holder's (each at least the zxid of our node's delete, which was sent after every part's granting
// listing was read).
func (l *Lease) Token() int64 {
	if l == nil {
		return 0
	}
	if l.parts != nil {
		return partsToken(l.parts)
	}
	if l.h == nil {
		return 0
	}
	return l.h.token
}

// Node returns the full path of this hold's znode (for a MultiLock's lease, its first part's). A nil
// or zero Lease holds nothing: its Done is closed, its Err is ErrNotHeld, its Context is cancelled,
// its Token is 0 and its Node is "".
func (l *Lease) Node() string {
	switch {
	case l == nil:
		return ""
	case l.parts != nil:
		return l.parts[0].Node()
	case l.h == nil:
		return ""
	}
	return l.h.node
}

// checkNow ends the lease at once if its hold no longer stands by the client's state and clock
// (see framework.Client.HoldErr): Err, unlike Done, must be right the moment it is asked, for
// instance in a process that has just woken from a pause longer than its session timeout, before
// any watcher has run.
func (l *Lease) checkNow() {
	l.mu.Lock()
	ended := l.err != nil || l.released
	l.mu.Unlock()
	if ended {
		return
	}
	if l.parts != nil {
		for i, p := range l.parts {
			if p.Err() != nil {
				l.end(fmt.Errorf("multilock: %w", partLost(l.partNames[i], p)))
				return
			}
		}
		return
	}
	if l.h.c.HoldErr(l.h.sessionID) != nil {
		l.h.lost()
	}
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

// holdBook is a lock value's record of its live holds (what IsAcquiredInThisProcess reads).
type holdBook struct {
	recipe, path string // how the holds' events name the recipe and the lock

	mu    sync.Mutex
	holds map[*hold]struct{}
}

func (b *holdBook) add(h *hold) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holds == nil {
		b.holds = map[*hold]struct{}{}
	}
	b.holds[h] = struct{}{}
}

func (b *holdBook) forget(h *hold) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.holds, h)
}

// count returns how many holds are live.
func (b *holdBook) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.holds)
}

// hold is one acquisition of a lock node, shared by the leases that re-entered it.
type hold struct {
	c         *framework.Client
	owner     any
	node      string
	sessionID int64
	token     int64
	book      *holdBook // the owner's record, which the hold leaves when it ends
	granted   time.Time // when it was granted, if the client has an observer

	mu       sync.Mutex
	leases   map[*Lease]struct{}
	err      error // nil while held
	reported bool  // its start was reported to the observer (see holdStarted)
	stop     chan struct{}
}

// newHold starts the hold that grant g made, records it in book, and only then watches the
// client's connection state, so that the hold ends at once when the error policy says it may be
// lost. Recording first means an end that comes at once (the grant raced a Suspended) still takes
// the hold out of the book.
func newHold(c *framework.Client, owner any, g grant, book *holdBook) *hold {
	h := &hold{
		c: c, owner: owner, node: g.node, sessionID: g.sessionID, token: g.token, book: book,
		leases: map[*Lease]struct{}{},
		stop:   make(chan struct{}),
	}
	if c.Observed() {
		h.granted = time.Now()
	}
	book.add(h)
	errState := c.ErrorState(g.sessionID)
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

// liveIn returns nil while the hold stands in c's live session, else why it does not: its own error
// if it ended, or the reason its session can no longer back it.
func (h *hold) liveIn(c *framework.Client) error {
	h.mu.Lock()
	err := h.err
	h.mu.Unlock()
	if err != nil {
		return err
	}
	if c.SessionID() != h.sessionID {
		return lostError(c, h.sessionID)
	}
	return nil
}

// lostError is the error of a hold of session sessionID that may be lost: it wraps ErrLockLost and
// the reason (framework.ErrSuspended, framework.ErrSessionLost, or ErrClosed).
func lostError(c *framework.Client, sessionID int64) error {
	return fmt.Errorf("%w: %w", ErrLockLost, connectionLossReason(c, sessionID))
}

// lost ends the hold because the session was suspended or lost (or the client closed), and has
// its node, if it survived, removed once the client is connected again.
func (h *hold) lost() {
	err := lostError(h.c, h.sessionID)
	if !h.finish(err) {
		return
	}
	h.c.Logger().Warn("lock hold lost", zap.String("node", h.node), zap.Error(err))
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
	reported := h.reported
	close(h.stop)
	h.mu.Unlock()
	// Out of the books before any lease says it ended: whoever sees Done closed sees
	// IsAcquiredInThisProcess false too.
	h.book.forget(h)
	for l := range leases {
		l.end(err)
	}
	holdEnded(h, reported, err)
	return true
}

// release ends lease l. The last lease of a live hold ends the hold, and release returns its node
// for the caller to remove.
func (h *hold) release(l *Lease) (nodeRef, error) {
	h.mu.Lock()
	herr := h.err
	delete(h.leases, l)
	last := len(h.leases) == 0
	h.mu.Unlock()
	if herr != nil {
		return nodeRef{}, fmt.Errorf("release %s: %w", h.node, herr)
	}
	l.end(ErrReleased)
	if !last {
		return nodeRef{}, nil
	}
	if !h.finish(ErrReleased) {
		// Lost between the two locks above: the node is being removed already.
		h.mu.Lock()
		herr = h.err
		h.mu.Unlock()
		return nodeRef{}, fmt.Errorf("release %s: %w", h.node, herr)
	}
	return nodeRef{h.c, h.node}, nil
}

// nodeRef is a node of a recipe's and the client that made it.
type nodeRef struct {
	c    *framework.Client
	path string
}

// removeNode is the one way the recipes remove a node of theirs (a release, an acquire that gives
// up, a latch that closes): a guaranteed delete, sent and not waited for (framework.SendDelete). The
// delete is handed to the connection, so the client's next requests are applied after it; if the
// client is not connected, or the reply is lost, the client's background deleter deletes the node
// as soon as it is connected again. It never waits for a reconnect or a round trip. The error is
// bad input or an unstarted client; a closed client's nodes went with its session, so they are no
// error. A refusal by the server (no auth, say) is logged, and reported by the returned Deletion.
func removeNode(c *framework.Client, node string) error {
	_, err := removeNodes(nodeRef{c, node})
	return err
}

// sendWait bounds how long removeNodes waits, for all its nodes together, to see the deletes
// written to their connections (framework.SendDelete waits for that, to keep the client's later
// requests behind them).
const sendWait = 300 * time.Millisecond

// removeNodes is removeNode for several nodes, sent in the order given. It returns the deletes
// under way, to wait for, and the errors joined.
func removeNodes(refs ...nodeRef) ([]*framework.Deletion, error) {
	var (
		dels []*framework.Deletion
		errs []error
	)
	// One bound for all: a connection whose writes stall costs one wait, not one per node.
	ctx, cancel := context.WithTimeout(context.Background(), sendWait)
	defer cancel()
	for _, r := range refs {
		d, err := r.c.SendDelete(ctx, r.path)
		switch {
		case err == nil:
			dels = append(dels, d)
		case !errors.Is(err, ErrClosed):
			errs = append(errs, fmt.Errorf("delete %s: %w", r.path, err))
		}
	}
	return dels, errors.Join(errs...)
}

// holdFrom returns the hold of owner that ctx carries, if any.
func holdFrom(ctx context.Context, owner any) *hold {
	h, _ := ctx.Value(holdKey{owner}).(*hold)
	return h
}
