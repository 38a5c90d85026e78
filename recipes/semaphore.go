package recipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
)

// The node names of Semaphore, as Curator's InterProcessSemaphoreV2.
const (
	semaphoreLocks  = "locks"  // the parent of the internal mutex's nodes
	semaphoreLeases = "leases" // the parent of the lease nodes
	leaseName       = "lease-" // the name of a lease node, before its sequence number
)

// Semaphore is a counting semaphore shared by every process that uses the same path: at most
// maxLeases leases are held at once, across all of them. It is Curator's InterProcessSemaphoreV2,
// on its nodes, so Go and Java processes using Curator on one path share the leases:
//
//	<path>/leases/_c_<uuid>-lease-<sequence>  one ephemeral node per lease, held or wanted
//	<path>/locks/_c_<uuid>-lock-<sequence>    an internal mutex (an InterProcessMutex on <path>/locks)
//
// An acquirer first takes the internal mutex, so only the first in line looks at the leases and a
// release wakes one waiter, not all; it then creates its lease node and holds a lease as soon as
// the leases number no more than maxLeases, and gives the internal mutex up. There is no order
// among lease nodes: only their number counts.
//
// maxLeases is a convention: nothing checks that every process on a path uses the same one. With
// maxLeases above 1, leases overlap legitimately, so a lease's Token does not fence: it is only
// above the tokens of the leases that had ended when it was granted (see Lease.Token).
// Leases are not re-entrant: an Acquire made with a lease's Context waits like any other. A lease
// can be released from any goroutine. Goroutines that share one Semaphore compete like separate
// processes.
type Semaphore struct {
	c          *framework.Client
	path       string
	maxLeases  int
	err        error // bad input, reported by the first call that can return an error
	locksPath  string
	leasesPath string
	mutex      *lockInternals // the internal mutex on <path>/locks

	mu    sync.Mutex
	data  []byte // lease node data; nil means the client's default data
	holds holdBook
}

// NewSemaphore returns a semaphore of maxLeases leases on path. A bad path, a maxLeases below 1 or
// a nil client is reported by the first call that can return an error.
func NewSemaphore(c *framework.Client, path string, maxLeases int) *Semaphore {
	s := &Semaphore{
		c:          c,
		path:       path,
		maxLeases:  maxLeases,
		locksPath:  path + "/" + semaphoreLocks,
		leasesPath: path + "/" + semaphoreLeases,
	}
	s.err = checkArgs(c, path)
	if s.err == nil && maxLeases < 1 {
		s.err = fmt.Errorf("%w: maxLeases %d is below 1", ErrInvalidArgument, maxLeases)
	}
	s.mutex = &lockInternals{c: c, basePath: s.locksPath, lockName: lockName, grants: singleHolder(1)}
	s.holds.recipe, s.holds.path = recipeSemaphore, path
	return s
}

// Acquire waits until it holds qty leases, or ctx is done. It takes them one after another and
// returns all qty or none: if it cannot take them all before ctx ends (or fails otherwise), it
// releases those it took and deletes its waiting node, and its error wraps the cause (ctx's error
// for a ctx that ended). A qty below 1 or above maxLeases is an error wrapping ErrInvalidArgument.
//
// While it waits for a lease, Acquire keeps the internal mutex, so other acquirers on the path
// queue behind it: an Acquire of several leases is never left holding some of them while another
// acquirer holds the rest. A lease that ends as lost before Acquire returns (its session was
// suspended or lost, as the client's error policy counts it) is replaced by a new one.
//
// The leases outlive ctx: cancelling ctx after Acquire returned releases nothing. Each lease is
// released on its own.
func (s *Semaphore) Acquire(ctx context.Context, qty int) ([]*Lease, error) {
	return s.acquire(ctx, qty, false)
}

// TryAcquire takes qty leases only if they are free now: otherwise it takes none, leaves no node
// behind, and returns an error wrapping ErrLocked. When another acquirer has the internal mutex
// and the leases have room for qty more, TryAcquire waits for it to finish (the internal mutex is
// held only for the few requests a free lease takes); as soon as the leases have no room for qty
// more, it gives up. ctx bounds the wait.
func (s *Semaphore) TryAcquire(ctx context.Context, qty int) ([]*Lease, error) {
	return s.acquire(ctx, qty, true)
}

func (s *Semaphore) acquire(ctx context.Context, qty int, try bool) ([]*Lease, error) {
	if s.err != nil {
		return nil, fmt.Errorf("acquire: %w", s.err)
	}
	switch {
	case qty < 1:
		return nil, fmt.Errorf("acquire %s: %w: qty %d is below 1", s.path, ErrInvalidArgument, qty)
	case qty > s.maxLeases:
		return nil, fmt.Errorf("acquire %s: %w: qty %d is above maxLeases %d", s.path, ErrInvalidArgument, qty, s.maxLeases)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("acquire %s: %w", s.path, framework.ContextError(ctx))
	}
	start := acquireStarted(s.c, s.holds.recipe, s.path)
	leases, err := s.take(ctx, qty, try)
	var first *Lease
	if len(leases) > 0 {
		first = leases[0]
	}
	acquireEnded(s.c, s.holds.recipe, s.path, start, first, err)
	for _, l := range leases {
		holdStarted(l.h)
	}
	return leases, err
}

// take takes qty leases, or none.
func (s *Semaphore) take(ctx context.Context, qty int, try bool) ([]*Lease, error) {
	var (
		leases []*Lease
		mutex  grant // the internal mutex, if held (node != "")
	)
	// giveUp takes back the leases taken so far and gives up the internal mutex, removing all
	// their nodes under one bound, and returns err.
	giveUp := func(err error) ([]*Lease, error) {
		var refs []nodeRef
		for _, l := range leases {
			r, _ := l.detach()
			refs = append(refs, r...)
		}
		if mutex.node != "" {
			refs = append(refs, nodeRef{s.c, mutex.node})
		}
		if len(refs) > 0 {
			_, _ = removeNodes(refs...)
		}
		return nil, err
	}
	for {
		// Leases lost since they were granted (their session was suspended or lost) no longer
		// count: release them and take others instead.
		leases = slices.DeleteFunc(leases, func(l *Lease) bool {
			if l.Err() == nil {
				if !chanClosed(s.c.ErrorState(l.h.sessionID)) {
					return false
				}
				l.h.lost() // its hold's watcher has not seen it yet
			}
			_ = l.Release() // a lost lease's node is deleted in the background
			return true
		})
		if len(leases) == qty {
			if mutex.node != "" {
				_ = removeNode(s.c, mutex.node)
				mutex = grant{}
			}
			// A lease lost while the internal mutex was given up is replaced, like any other.
			if !slices.ContainsFunc(leases, func(l *Lease) bool { return l.Err() != nil }) {
				return leases, nil
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return giveUp(fmt.Errorf("acquire %s: %w", s.path, framework.ContextError(ctx)))
		}
		// The internal mutex is ours as long as the session that made its node lives.
		if mutex.node != "" && mutex.sessionID != s.c.SessionID() {
			s.c.DeleteInBackground(mutex.node)
			mutex = grant{}
		}
		if mutex.node == "" {
			var err error
			if try {
				mutex, err = s.tryLockMutex(ctx, qty-len(leases))
			} else {
				mutex, err = s.mutex.acquire(ctx, false)
			}
			if errors.Is(err, zk.ErrSessionExpired) {
				continue // made in a session that has ended: take it again in the new one
			}
			if err != nil {
				mutex = grant{}
				return giveUp(err)
			}
		}
		g, err := s.acquireLease(ctx, try)
		if errors.Is(err, errStartOver) || errors.Is(err, zk.ErrSessionExpired) {
			s.c.Logger().Debug("lease node lost with its session; taking a lease again")
			continue
		}
		if err != nil {
			return giveUp(err)
		}
		h := newHold(s.c, s, g, &s.holds)
		l, err := h.newLease(ctx)
		if err != nil {
			// Lost as soon as granted: its node is being removed; take another.
			continue
		}
		leases = append(leases, l)
	}
}

// chanClosed reports whether ch is closed.
func chanClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// leaseData returns the data for a new lease node (nil: the client's default data).
func (s *Semaphore) leaseData() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data
}

// acquireLease creates a lease node and waits until the leases number no more than maxLeases (or,
// with try, only checks once). The caller holds the internal mutex. On any failure the node is
// deleted.
func (s *Semaphore) acquireLease(ctx context.Context, try bool) (grant, error) {
	created, err := s.c.Create(ctx, framework.JoinPath(s.leasesPath, leaseName), s.leaseData(),
		framework.EphemeralSequential, framework.WithProtection(), framework.WithParents())
	if err != nil {
		return grant{}, err
	}
	g, err := s.waitLease(ctx, created, try)
	if errors.Is(err, errStartOver) {
		s.c.DeleteInBackground(created.Path)
		return grant{}, err
	}
	if err != nil {
		if !errors.Is(err, ErrClosed) {
			// Leave no node behind: delete it now, or in the background.
			_ = removeNode(s.c, created.Path)
		}
		return grant{}, err
	}
	return g, nil
}

// waitLease loops until the lease node created holds: it lists the leases with a watch, and holds
// once they number no more than maxLeases, else waits for the watch, then looks again.
func (s *Semaphore) waitLease(ctx context.Context, created framework.Created, try bool) (grant, error) {
	_, ourName := framework.SplitPath(created.Path)
	for {
		// A node made in an earlier session is never taken as held.
		if s.c.SessionID() != created.SessionID {
			return grant{}, errStartOver
		}
		names, st, w, err := s.c.ChildrenW(ctx, s.leasesPath)
		if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrSessionExpired) {
			return grant{}, errStartOver
		}
		if err != nil {
			return grant{}, err
		}
		if s.c.SessionID() != created.SessionID || !slices.Contains(names, ourName) {
			return grant{}, errStartOver
		}
		if len(names) <= s.maxLeases {
			return grant{node: created.Path, sessionID: created.SessionID, token: grantToken(st)}, nil
		}
		if try {
			return grant{}, fmt.Errorf("acquire %s: %w: all %d leases are held", s.path, ErrLocked, s.maxLeases)
		}
		select {
		case <-w:
		case <-s.c.SessionEnded(created.SessionID):
		case <-ctx.Done():
			return grant{}, fmt.Errorf("acquire %s: %w", s.path, framework.ContextError(ctx))
		case <-s.c.Done():
			return grant{}, fmt.Errorf("acquire %s: %w", s.path, ErrClosed)
		}
	}
}

// tryLockMutex takes the internal mutex for a TryAcquire that needs need more leases. While
// others are ahead of it in the mutex's queue it waits for them, as long as the leases have room
// for need more; it fails with ErrLocked as soon as they do not (an acquirer that waits for a
// lease while it has the mutex has its lease node counted, so the leases are full then). It never
// leaves its node behind on failure. It is the internal mutex's queue with that predicate.
func (s *Semaphore) tryLockMutex(ctx context.Context, need int) (grant, error) {
	li := *s.mutex
	li.grants = func(ctx context.Context, sorted []string, ours int, _ framework.Created) (verdict, error) {
		if ours == 0 {
			return verdict{held: true}, nil
		}
		// Someone is ahead. Are there leases free for us, were we first?
		taken, lw, err := s.leasesW(ctx)
		if err != nil {
			return verdict{}, err
		}
		if taken+need > s.maxLeases {
			return verdict{}, fmt.Errorf("acquire %s: %w: %d of %d leases are taken or wanted", s.path, ErrLocked, taken, s.maxLeases)
		}
		return verdict{watch: sorted[ours-1], also: lw}, nil
	}
	return li.acquire(ctx, false)
}

// leasesW counts the lease nodes and sets a watch that fires when that may change: a child watch
// on the leases path, or while it does not exist, a watch for its creation.
func (s *Semaphore) leasesW(ctx context.Context) (int, <-chan zk.Event, error) {
	for {
		leases, _, lw, err := s.c.ChildrenW(ctx, s.leasesPath)
		if !errors.Is(err, zk.ErrNoNode) {
			return len(leases), lw, err
		}
		ok, _, ew, err := s.c.ExistsW(ctx, s.leasesPath)
		if err != nil || !ok {
			return 0, ew, err
		}
		// Created meanwhile: list it.
	}
}

// held returns how many leases this semaphore value holds now.
func (s *Semaphore) held() int { return s.holds.count() }

// SetNodeData sets the data of the lease nodes that later Acquire calls create (Curator's
// setNodeData); nil, the default, means the client's default data. data is copied.
func (s *Semaphore) SetNodeData(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if data == nil {
		s.data = nil
		return
	}
	s.data = append([]byte{}, data...)
}

// ParticipantNodes returns the full paths of the lease nodes, held or wanted, in the order they
// were created: the holders first, then the node of the acquirer that waits for a lease, if any. A
// semaphore whose path does not exist has none.
func (s *Semaphore) ParticipantNodes(ctx context.Context) ([]string, error) {
	if s.err != nil {
		return nil, fmt.Errorf("participant nodes: %w", s.err)
	}
	names, _, err := s.c.Children(ctx, s.leasesPath)
	if errors.Is(err, zk.ErrNoNode) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	sortChildren(names, leaseName)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = framework.JoinPath(s.leasesPath, n)
	}
	return out, nil
}

// MaxLeases returns the number of leases the semaphore allows at once.
func (s *Semaphore) MaxLeases() int { return s.maxLeases }

// Path returns the semaphore's path.
func (s *Semaphore) Path() string { return s.path }
