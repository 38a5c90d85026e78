package recipes

import "context"

// Locker is what every lock recipe implements: InterProcessMutex, SemaphoreMutex, the two locks of
// a ReadWriteLock and MultiLock itself. A MultiLock takes any of them.
type Locker interface {
	// Acquire waits until the lock is held or ctx is done, and returns the hold as a Lease.
	Acquire(ctx context.Context) (*Lease, error)
}

var _ Locker = (*InterProcessMutex)(nil)
