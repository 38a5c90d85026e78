package recipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gocurator/curator/framework"
)

// The node names of the read-write lock, as Curator's (they must be of one length).
const (
	readLockName  = "__READ__"
	writeLockName = "__WRIT__"
)

// sequenceLength is the length of the sequence number ZooKeeper appends to a sequential node.
const sequenceLength = 10

// ReadWriteLock is a pair of locks on one path, shared by every process that uses that path: the
// read lock, which many holders can have at once while no one has the write lock, and the write
// lock, which excludes everyone else. It is Curator's InterProcessReadWriteLock, on its nodes
// (<path>/_c_<uuid>-__READ__<sequence> and <path>/_c_<uuid>-__WRIT__<sequence>, in one queue), so
// Go and Java processes using one path share it.
//
// The lock is fair: readers and writers are served in the order they asked, so a stream of readers
// cannot starve a writer that queued before them.
//
// Both locks are re-entrant through a lease's Context, as InterProcessMutex. A holder of the write
// lock may take the read lock too, by passing the write lease's Context (or a context derived from
// it) to ReadLock().Acquire: a downgrade. It may then release the write lock and keep the read lock,
// and writers queued behind it stay blocked until the read lock is released too. A downgrade is
// granted only while its write hold stands, decided from ZooKeeper's state: its read node is made
// in the write node's session and granted from a listing that still has the write node. A downgrade
// whose write hold has ended (released, or lost with its session, before or while the downgrade
// runs) is refused with an error wrapping that hold's error (ErrReleased, or ErrLockLost), and
// leaves no node. A holder of only the read lock cannot take the write lock: that Acquire waits
// behind its own read node until its context ends. (The read lease of a downgrade carries the write
// hold in its Context too; once the write lock is released, WriteLock().Acquire with that context
// fails at once, as for any ended hold.)
//
// Tokens: a reader's token lies between those of the writers before and after it, but readers'
// tokens are not ordered among themselves (see Lease.Token).
type ReadWriteLock struct {
	read  *InterProcessMutex
	write *InterProcessMutex
}

// NewReadWriteLock returns a read-write lock on path. A bad path or a nil client is reported by
// the first call that can return an error.
func NewReadWriteLock(c *framework.Client, path string) *ReadWriteLock {
	rw := &ReadWriteLock{}
	rw.write = newMutex(c, recipeWriteLock, path, writeLockName, nil, singleHolder(1))
	rw.read = newMutex(c, recipeReadLock, path, readLockName, nil, rw.readGrants)
	for _, m := range []*InterProcessMutex{rw.write, rw.read} {
		m.li.key = rwSortKey
		m.li.ownKindOnly = true
	}
	rw.read.li.node = rw.readNode
	return rw
}

// ReadLock returns the read lock: many holders at once, as long as no one holds the write lock or
// waits for it ahead of them. Its ParticipantNodes lists the read nodes only.
func (rw *ReadWriteLock) ReadLock() *InterProcessMutex { return rw.read }

// WriteLock returns the write lock: one holder, and no reader meanwhile. Its ParticipantNodes lists
// the write nodes only.
func (rw *ReadWriteLock) WriteLock() *InterProcessMutex { return rw.write }

// rwSortKey is Curator's SortingLockInternalsDriver.fixForSorting: the standard key with the read
// name, then with the write name, so that both kinds sort by their sequence in one queue.
func rwSortKey(name string) string {
	return sortKey(sortKey(name, readLockName), writeLockName)
}

// errDowngradeEnded is wrapped by the error of a downgrade whose write hold has ended.
var errDowngradeEnded = errors.New("the write hold to downgrade has ended")

// downgradeOf returns the write hold that ctx carries, if any: a read Acquire with such a context is
// a downgrade of that hold.
func (rw *ReadWriteLock) downgradeOf(ctx context.Context) *hold {
	return holdFrom(ctx, rw.write)
}

// readNode chooses the node of a downgrade (Curator 5.5 and later, CURATOR-621): a reader that holds
// the write lock creates a plain ephemeral node named with its write node's sequence,
// __READ__<sequence>, so that it sorts at the write node's place and the writers queued behind that
// stay blocked once the write lock is released.
//
// A downgrade of a write hold that has ended (released, or lost with its session) is refused with an
// error wrapping the hold's error: the write hold is what makes the read node's place safe.
func (rw *ReadWriteLock) readNode(ctx context.Context) (string, framework.CreateMode, bool, error) {
	h := rw.downgradeOf(ctx)
	if h == nil {
		return "", 0, false, nil
	}
	if err := h.liveIn(rw.read.c); err != nil {
		return "", 0, false, fmt.Errorf("acquire %s: downgrade: %w: %w", rw.read.li.basePath, errDowngradeEnded, err)
	}
	_, name := framework.SplitPath(h.node)
	i := strings.LastIndex(name, writeLockName)
	if i < 0 || len(name)-i-len(writeLockName) != sequenceLength {
		return "", 0, false, fmt.Errorf("acquire %s: downgrade: write node %q has no sequence", rw.read.li.basePath, h.node)
	}
	return readLockName + name[len(name)-sequenceLength:], framework.Ephemeral, true, nil
}

// readGrants is the read lock's predicate (Curator's ReadLock driver): a reader holds when no write
// node sorts before its own, and otherwise watches the earliest write node.
//
// A downgrade's read node sorts at its write node's place, ahead of the writers queued behind
// that, so it is granted only from a listing that proves the write hold still stood when the read
// node was made: the read node belongs to the write node's session, and the write node is in the
// same listing as the read node. (Were the write node gone, another writer could have been granted
// between its delete and the read node's create, and the read node would sort ahead of it.)
func (rw *ReadWriteLock) readGrants(ctx context.Context, sorted []string, ours int, created framework.Created) (verdict, error) {
	if h := rw.downgradeOf(ctx); h != nil {
		_, writeName := framework.SplitPath(h.node)
		live := h.liveIn(rw.read.c)
		if live != nil || created.SessionID != h.sessionID || created.SessionID == 0 || !slices.Contains(sorted, writeName) {
			err := live
			if err == nil {
				err = ErrLockLost
			}
			return verdict{}, fmt.Errorf("acquire %s: downgrade: %w: %w", rw.read.li.basePath, errDowngradeEnded, err)
		}
		return verdict{held: true}, nil
	}
	for _, n := range sorted[:ours] {
		if strings.Contains(n, writeLockName) {
			return verdict{watch: n}, nil
		}
	}
	return verdict{held: true}, nil
}
