package recipes

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocurator/curator/framework"
)

// lockName is the node name of InterProcessMutex, as Curator's.
const lockName = "lock-"

// InterProcessMutex is a re-entrant mutex shared by every process that uses the same lock path, on
// Curator's InterProcessMutex nodes (<path>/_c_<uuid>-lock-<sequence>): a Go process and a Java
// process using Curator on one path exclude each other.
//
// Goroutines that share one InterProcessMutex exclude each other too: each Acquire queues on its
// own. Re-entry is explicit: Acquire with a lease's Context (or a context derived from it) takes
// the same hold again at no cost, and each Acquire pairs with one Release; the last Release
// deletes the node.
type InterProcessMutex struct {
	c   *framework.Client
	err error // bad input, reported by the first call that can return an error
	li  *lockInternals

	holds holdBook
}

// NewInterProcessMutex returns a mutex on path. A bad path or a nil client is reported by the
// first call that can return an error.
func NewInterProcessMutex(c *framework.Client, path string) *InterProcessMutex {
	return newMutex(c, recipeMutex, path, lockName, nil, singleHolder(1))
}

func newMutex(c *framework.Client, recipe, path, name string, data func(context.Context) []byte,
	grants func(context.Context, []string, int, framework.Created) (verdict, error)) *InterProcessMutex {
	m := &InterProcessMutex{c: c}
	m.holds.recipe, m.holds.path = recipe, path
	m.err = checkArgs(c, path)
	m.li = &lockInternals{c: c, basePath: path, lockName: name, data: data, grants: grants}
	return m
}

// checkArgs reports a nil client or a bad lock path.
func checkArgs(c *framework.Client, path string) error {
	if c == nil {
		return fmt.Errorf("%w: client is nil", ErrInvalidArgument)
	}
	if err := framework.ValidatePath(path); err != nil {
		return err
	}
	if path == "/" {
		return fmt.Errorf("%w: path %q cannot be a lock path", ErrInvalidArgument, path)
	}
	return nil
}

// lifecycle is the state of a recipe that is started once and closed once (a latch, a selector).
type lifecycle int

const (
	lifeLatent lifecycle = iota // made, not started
	lifeStarted
	lifeClosed
)

// startErr returns why a recipe in state st cannot start: ErrAlreadyStarted, or closed (the
// recipe's closed error); nil if it can.
func (st lifecycle) startErr(closed error) error {
	switch st {
	case lifeStarted:
		return ErrAlreadyStarted
	case lifeClosed:
		return closed
	}
	return nil
}

// checkStartable checks what starting an election in the background needs: that a node of name
// with data can be created under path, and that c is started and not closed. It is Start's check
// of a LeaderLatch and a LeaderSelector, whose nodes are made later, on their own goroutines.
func checkStartable(c *framework.Client, path, name string, data []byte) error {
	if err := c.CheckCreate(framework.JoinPath(path, name), data); err != nil {
		return err
	}
	// A done context makes BlockUntilConnected only report a client that is not started or closed.
	probe, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.BlockUntilConnected(probe); errors.Is(err, framework.ErrNotStarted) || errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// Acquire waits until the mutex is held or ctx is done. If ctx carries a hold of this mutex (it is
// a lease's Context, or derived from one), Acquire re-enters that hold at once instead. When ctx
// ends first, the waiting node is deleted and the error wraps ctx's error.
//
// The hold outlives ctx: cancelling ctx after Acquire returned releases nothing.
func (m *InterProcessMutex) Acquire(ctx context.Context) (*Lease, error) {
	return m.acquire(ctx, false)
}

// TryAcquire takes the lock only if it is free now (Curator's acquire(0, unit)): otherwise it
// leaves no node behind and returns an error wrapping ErrLocked. Re-enters like Acquire.
func (m *InterProcessMutex) TryAcquire(ctx context.Context) (*Lease, error) {
	return m.acquire(ctx, true)
}

func (m *InterProcessMutex) acquire(ctx context.Context, try bool) (*Lease, error) {
	if m.err != nil || ctx.Err() != nil {
		return nil, m.refuse(ctx)
	}
	if h := holdFrom(ctx, m); h != nil {
		return h.newLease(ctx)
	}
	start := acquireStarted(m.c, m.holds.recipe, m.li.basePath)
	l, err := m.queue(ctx, try)
	acquireEnded(m.c, m.holds.recipe, m.li.basePath, start, l, err)
	return l, err
}

// queue queues for the mutex and waits until it is held, ctx ends, or a try finds it held.
func (m *InterProcessMutex) queue(ctx context.Context, try bool) (*Lease, error) {
	for {
		g, err := m.li.acquire(ctx, try)
		if err != nil {
			return nil, err
		}
		l, err := newHold(m.c, m, g, &m.holds).newLease(ctx)
		if err == nil {
			holdStarted(l.h)
			return l, nil
		}
		// Lost as soon as granted (the connection dropped at the grant): its node is being
		// removed. Queue again, unless the client is closed or ctx has ended.
		if errors.Is(err, ErrClosed) || ctx.Err() != nil {
			return nil, err
		}
	}
}

// refuse is the error of an acquire that bad input (m.err) or an ended ctx refuses before it
// starts. It is apart from acquire so that a waiting acquire's frame stays small.
//
//go:noinline
func (m *InterProcessMutex) refuse(ctx context.Context) error {
	if m.err != nil {
		return fmt.Errorf("acquire: %w", m.err)
	}
	return fmt.Errorf("acquire %s: %w", m.li.basePath, framework.ContextError(ctx))
}

// IsAcquiredInThisProcess reports whether this mutex value holds the lock now (through any
// goroutine).
func (m *InterProcessMutex) IsAcquiredInThisProcess() bool {
	return m.holds.count() > 0
}

// ParticipantNodes returns the full paths of the lock's nodes, the holder first, then the waiters
// in queue order.
func (m *InterProcessMutex) ParticipantNodes(ctx context.Context) ([]string, error) {
	if m.err != nil {
		return nil, fmt.Errorf("participant nodes: %w", m.err)
	}
	return m.li.participantNodes(ctx)
}

// Path returns the lock path.
func (m *InterProcessMutex) Path() string { return m.li.basePath }
