package recipes

import (
	"context"
	"errors"
	"fmt"
	"reflect"

	"github.com/gocurator/curator/framework"
)

// MultiLock is a set of locks taken and released as one, Curator's InterProcessMultiLock: Acquire
// takes every lock in the order given, or, if one cannot be taken, none (it releases the ones it
// took, in reverse order). It makes no nodes of its own.
//
// Taking several locks always in one order is what keeps processes that need overlapping sets
// from deadlocking: give every MultiLock over the same locks the same order.
//
// Each lock is taken with a context that carries the holds taken before it, as Curator takes
// them all on one thread: the same InterProcessMutex given twice is re-entered, and a
// ReadWriteLock's write lock followed by its read lock is a downgrade.
type MultiLock struct {
	locks []Locker
	names []string // how errors name each lock: "locker 1 (/a/b)"
	err   error    // bad input, reported by Acquire
}

var _ Locker = (*MultiLock)(nil)

// NewMultiLock returns a MultiLock over locks, taken in the order given. No lock, or a nil one, is
// reported by Acquire.
func NewMultiLock(locks ...Locker) *MultiLock {
	m := &MultiLock{locks: locks, names: make([]string, len(locks))}
	if len(locks) == 0 {
		m.err = fmt.Errorf("%w: multilock of no locks", ErrInvalidArgument)
	}
	for i, l := range locks {
		m.names[i] = lockerName(i, l)
		if m.err == nil && isNil(l) {
			m.err = fmt.Errorf("%w: %s is nil", ErrInvalidArgument, m.names[i])
		}
	}
	return m
}

// NewMultiLockPaths returns a MultiLock over one InterProcessMutex per path, taken in the order
// given. No path, a bad or repeated path, or a nil client is reported by Acquire.
func NewMultiLockPaths(c *framework.Client, paths ...string) *MultiLock {
	locks := make([]Locker, len(paths))
	for i, p := range paths {
		locks[i] = NewInterProcessMutex(c, p)
	}
	m := NewMultiLock(locks...)
	if m.err != nil {
		return m
	}
	if c == nil {
		m.err = fmt.Errorf("%w: client is nil", ErrInvalidArgument)
		return m
	}
	seen := make(map[string]int, len(paths))
	for i, p := range paths {
		if err := locks[i].(*InterProcessMutex).err; err != nil {
			m.err = fmt.Errorf("%s: %w", m.names[i], err)
			return m
		}
		if j, ok := seen[p]; ok {
			m.err = fmt.Errorf("%w: path %q is given twice (locker %d and %d): the second would wait for the first forever",
				ErrInvalidArgument, p, j, i)
			return m
		}
		seen[p] = i
	}
	return m
}

// lockerName names lock i of a MultiLock in errors, with its path if it has one.
func lockerName(i int, l Locker) string {
	if p, ok := l.(interface{ Path() string }); ok && !isNil(l) {
		return fmt.Sprintf("locker %d (%s)", i, p.Path())
	}
	return fmt.Sprintf("locker %d", i)
}

// isNil reports whether l is nil or holds a nil pointer, on which Acquire would panic.
func isNil(l Locker) bool {
	if l == nil {
		return true
	}
	v := reflect.ValueOf(l)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Interface, reflect.Chan:
		return v.IsNil()
	}
	return false
}

// Acquire takes every lock in order, each waiting as long as ctx allows, and returns one lease for
// them all. If a lock cannot be taken (ctx ends, or its Acquire fails), Acquire releases the locks
// it took, in reverse order, and returns an error that names the lock (its index, and its path if
// it has one) and wraps the cause. A lock already taken that is lost while Acquire waits for the
// next one fails the Acquire too, with an error that names it and wraps ErrLockLost.
//
// The lease's Release releases every lock in reverse order; its Done closes as soon as any lock's
// hold ends, and its Err then names that lock and wraps ErrLockLost. Its Token is the largest of the
// locks' tokens, its Node the first lock's node, and its Context carries every lock's hold, so that
// passing it to one of the locks re-enters that lock.
func (m *MultiLock) Acquire(ctx context.Context) (*Lease, error) {
	if m.err != nil {
		return nil, fmt.Errorf("multilock acquire: %w", m.err)
	}
	if ctx == nil {
		return nil, fmt.Errorf("multilock acquire: %w: context is nil", ErrInvalidArgument)
	}
	// The locks still to take are waited for with a context that also ends if a lock already
	// taken is lost meanwhile.
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var stops []func() bool
	stopWatching := func() {
		for _, stop := range stops {
			stop()
		}
	}
	defer stopWatching()
	parts := make([]*Lease, 0, len(m.locks))
	rollback := func(err error) (*Lease, error) {
		stopWatching()
		if rerr := releaseMultiParts(parts); rerr != nil {
			err = errors.Join(err, fmt.Errorf("multilock acquire: rolling back: %w", rerr))
		}
		return nil, err
	}
	actx := wctx
	for i, l := range m.locks {
		lease, err := l.Acquire(actx)
		if err == nil && lease == nil {
			err = errors.New("Acquire returned no lease")
		}
		if err != nil {
			return rollback(fmt.Errorf("multilock acquire: %s: %w", m.names[i], err))
		}
		parts = append(parts, lease)
		stops = append(stops, context.AfterFunc(lease.Context(), func() {
			cancel(partLost(m.names[i], lease))
		}))
		actx = withHolds(actx, lease)
	}
	for i, p := range parts {
		if p.Err() != nil {
			return rollback(fmt.Errorf("multilock acquire: %w", partLost(m.names[i], p)))
		}
	}
	return m.newLease(ctx, parts), nil
}

// partLost is the error of a MultiLock whose part p (named name) ended: it names the part and
// wraps ErrLockLost and the part's error.
func partLost(name string, p *Lease) error {
	err := p.Err()
	if err == nil {
		err = context.Cause(p.Context())
	}
	if !errors.Is(err, ErrLockLost) {
		err = fmt.Errorf("%w: %w", ErrLockLost, err)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// releaseMultiParts releases parts in reverse order, removing all their nodes under one bound (so
// a release over a connection gone silent costs one wait, not one per part), and
// returns every error joined, each naming its lock by index (the part's own error names its node).
func releaseMultiParts(parts []*Lease) error {
	refs, err := detachMultiParts(parts)
	if len(refs) > 0 {
		if _, rerr := removeNodes(refs...); rerr != nil {
			err = errors.Join(err, fmt.Errorf("multilock release: %w", rerr))
		}
	}
	return err
}

// detachMultiParts ends parts in reverse order without deleting their nodes, and returns the nodes
// to remove and the errors joined.
func detachMultiParts(parts []*Lease) ([]nodeRef, error) {
	var (
		refs []nodeRef
		errs []error
	)
	for i := len(parts) - 1; i >= 0; i-- {
		r, err := parts[i].detach()
		refs = append(refs, r...)
		if err != nil {
			errs = append(errs, fmt.Errorf("multilock release: locker %d: %w", i, err))
		}
	}
	return refs, errors.Join(errs...)
}

// withHolds returns ctx with the hold markers of lease l (of all its parts, for a MultiLock's).
func withHolds(ctx context.Context, l *Lease) context.Context {
	if l.parts != nil {
		for _, p := range l.parts {
			ctx = withHolds(ctx, p)
		}
		return ctx
	}
	if l.h == nil {
		return ctx
	}
	return context.WithValue(ctx, holdKey{l.h.owner}, l.h)
}

// newLease makes the lease of a MultiLock over the held parts, and watches them: when one ends
// (its hold is lost), the MultiLock's lease ends too. The watchers stop when the lease ends.
func (m *MultiLock) newLease(ctx context.Context, parts []*Lease) *Lease {
	lctx := context.WithoutCancel(ctx)
	for _, p := range parts {
		lctx = withHolds(lctx, p)
	}
	lctx, cancel := context.WithCancelCause(lctx)
	l := &Lease{parts: parts, partNames: m.names, ctx: lctx, cancel: cancel, done: make(chan struct{})}
	for i, p := range parts {
		go func() {
			select {
			case <-l.done:
			case <-p.Done():
				l.end(fmt.Errorf("multilock: %w", partLost(m.names[i], p)))
			}
		}()
	}
	return l
}

// detachParts is detach of a MultiLock's lease: it ends the lease, then ends every part in
// reverse order, and returns their nodes to remove and all their errors joined.
func (l *Lease) detachParts() ([]nodeRef, error) {
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return nil, fmt.Errorf("release %s: %w", l.parts[0].Node(), ErrNotHeld)
	}
	l.released = true
	l.mu.Unlock()
	l.end(ErrReleased)
	return detachMultiParts(l.parts)
}

// partsToken is the token of a MultiLock's lease: the largest of its parts' tokens.
func partsToken(parts []*Lease) int64 {
	var t int64
	for _, p := range parts {
		t = max(t, p.Token())
	}
	return t
}
