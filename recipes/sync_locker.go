package recipes

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/retry"
)

// SyncLocker is a sync.Locker view of a lock recipe, for APIs that take a sync.Locker (a job
// queue's guard, say). It has no context and no error, so:
//
//   - Lock blocks until the lock is held. While ZooKeeper cannot be reached it keeps trying, with a
//     pause that grows to a few seconds. It panics only when the lock can never be had: the client
//     is closed or was never started, the lock's path is bad, or ZooKeeper refuses the lock's nodes
//     (an ACL, say). Those are programming or configuration errors, which sync.Locker gives no
//     other way to report.
//   - Unlock releases the hold. Like sync.Mutex's, it panics if the SyncLocker is not locked. A
//     hold that was lost meanwhile (see Lease) is not a panic: its node is cleaned up as Release
//     does, and Unlock unlocks.
//
// A SyncLocker also excludes its own users in this process, like a sync.Mutex: a second Lock waits
// for Unlock even if the first hold was lost with its session in between. As with sync.Mutex,
// Unlock may be called by another goroutine than the one that locked.
//
// Code that can take a context should use the Locker's Acquire instead, which reports errors and
// hands out the Lease (its Done channel, its Context and its fencing Token). Lease gives access to
// them for the current hold.
type SyncLocker struct {
	l     Locker
	local sync.Mutex // held from Lock to Unlock

	mu    sync.Mutex
	lease *Lease
}

var _ sync.Locker = (*SyncLocker)(nil)

// NewSyncLocker returns a sync.Locker view of l: an InterProcessMutex, a SemaphoreMutex, one of
// the locks of a ReadWriteLock, or a MultiLock.
func NewSyncLocker(l Locker) *SyncLocker {
	return &SyncLocker{l: l}
}

// SyncLocker returns a sync.Locker view of m (see SyncLocker).
func (m *InterProcessMutex) SyncLocker() *SyncLocker { return NewSyncLocker(m) }

// Lock waits until the lock is held. It panics if the lock can never be had (see SyncLocker).
func (s *SyncLocker) Lock() {
	if s.l == nil || isNil(s.l) {
		panic("curator: SyncLocker.Lock: the Locker is nil")
	}
	s.local.Lock()
	fails := 0
	for {
		lease, err := s.l.Acquire(context.Background())
		if err == nil {
			s.mu.Lock()
			s.lease = lease
			s.mu.Unlock()
			return
		}
		if !transient(err) {
			s.local.Unlock()
			panic(fmt.Sprintf("curator: SyncLocker.Lock: the lock cannot be had: %v", err))
		}
		time.Sleep(min(50*time.Millisecond<<min(fails, 7), 5*time.Second))
		fails++
	}
}

// transient reports whether an Acquire error may go away by itself: a connection or session
// problem, rather than a closed client, a bad argument or a refusal.
func transient(err error) bool {
	if errors.Is(err, framework.ErrClosed) || errors.Is(err, framework.ErrNotStarted) || errors.Is(err, ErrInvalidArgument) {
		return false
	}
	return retry.IsRetryable(err) || errors.Is(err, zk.ErrSessionExpired) || errors.Is(err, retry.ErrRetriesExhausted)
}

// Unlock releases the lock. It panics if the SyncLocker is not locked.
func (s *SyncLocker) Unlock() {
	s.mu.Lock()
	lease := s.lease
	s.lease = nil
	s.mu.Unlock()
	if lease == nil {
		panic("curator: SyncLocker.Unlock of an unlocked SyncLocker")
	}
	// A lost hold's node is removed in the background, and a failed delete of a live one goes on
	// in the background too: there is nothing more to do about an error here.
	_ = lease.Release()
	s.local.Unlock()
}

// Lease returns the current hold, or nil while the SyncLocker is not locked. Code inside the
// critical section can use it to see whether the hold is still good (Done, Err, Context) and to
// fence its writes (Token).
func (s *SyncLocker) Lease() *Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lease
}
