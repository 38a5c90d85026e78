package recipes

import (
	"context"
	"fmt"

	"github.com/gocurator/curator/framework"
)

// SemaphoreMutex is a mutex that is not re-entrant, shared by every process that uses the same
// path. It is Curator's InterProcessSemaphoreMutex: a Semaphore of one lease, on the same nodes
// (<path>/leases and <path>/locks), so Go and Java processes using Curator on one path exclude
// each other.
//
// Unlike InterProcessMutex it is not re-entrant: an Acquire made with the holder's own lease
// Context waits like any other caller, so a holder that tries to take the mutex again waits until
// its context ends. Its lease may be released from any goroutine.
type SemaphoreMutex struct {
	s *Semaphore
}

var _ Locker = (*SemaphoreMutex)(nil)

// NewSemaphoreMutex returns a mutex on path that is not re-entrant. A bad path or a nil client is
// reported by the first call that can return an error.
func NewSemaphoreMutex(c *framework.Client, path string) *SemaphoreMutex {
	s := NewSemaphore(c, path, 1)
	s.holds.recipe = recipeSemaphoreMutex
	return &SemaphoreMutex{s: s}
}

// Acquire waits until the mutex is held or ctx is done. When ctx ends first, the waiting node is
// deleted and the error wraps ctx's error. Acquire does not re-enter: called by the holder, even
// with its lease's Context, it waits for that lease to be released.
//
// The hold outlives ctx: cancelling ctx after Acquire returned releases nothing.
func (m *SemaphoreMutex) Acquire(ctx context.Context) (*Lease, error) {
	return oneLease(m.s.Acquire(ctx, 1))
}

// TryAcquire takes the mutex only if it is free now: otherwise it leaves no node behind and
// returns an error wrapping ErrLocked.
func (m *SemaphoreMutex) TryAcquire(ctx context.Context) (*Lease, error) {
	return oneLease(m.s.TryAcquire(ctx, 1))
}

func oneLease(leases []*Lease, err error) (*Lease, error) {
	if err != nil {
		return nil, err
	}
	if len(leases) != 1 {
		for _, l := range leases {
			_ = l.Release()
		}
		return nil, fmt.Errorf("acquire: %d leases granted, want 1", len(leases))
	}
	return leases[0], nil
}

// IsAcquiredInThisProcess reports whether this mutex value holds the lock now.
func (m *SemaphoreMutex) IsAcquiredInThisProcess() bool { return m.s.held() > 0 }

// ParticipantNodes returns the full paths of the mutex's lease nodes: the holder's first, then the
// node of the acquirer that waits for it, if any.
func (m *SemaphoreMutex) ParticipantNodes(ctx context.Context) ([]string, error) {
	return m.s.ParticipantNodes(ctx)
}

// SetNodeData sets the data of the lease nodes that later Acquire calls create; nil, the default,
// means the client's default data. data is copied.
func (m *SemaphoreMutex) SetNodeData(data []byte) { m.s.SetNodeData(data) }

// Path returns the mutex's path.
func (m *SemaphoreMutex) Path() string { return m.s.Path() }
