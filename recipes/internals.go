package recipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
)

// lockInternals is the queue machinery that every lock recipe shares (Curator's LockInternals): it
// creates the protected ephemeral-sequential node, sorts the participants by sequence, decides
// who holds, watches only the node it waits behind, and cleans up.
type lockInternals struct {
	c        *framework.Client
	basePath string
	lockName string // "lock-", "__READ__", "__WRIT__", "latch-", ...
	// data returns the node data for an acquire; nil means the client's default data.
	data func(ctx context.Context) []byte
	// grants decides, from the sorted children of one listing, our index among them and our node,
	// whether we hold and, if not, which child to watch. It decides from that listing only: no
	// local flag may grant.
	grants func(ctx context.Context, sorted []string, ours int, created framework.Created) (held bool, watch string, err error)

	// Optional hooks, nil for a plain mutex.

	// key, if set, is the sort key of a child name instead of sortKey(name, lockName) (the
	// read-write lock sorts its two kinds of node in one queue).
	key func(name string) string
	// node, if set, may choose the name (under basePath, before the protected prefix) and the
	// mode of the node an acquire creates; ok false means lockName, ephemeral-sequential. An error
	// refuses the acquire.
	node func(ctx context.Context) (name string, mode framework.CreateMode, ok bool, err error)
	// ownKindOnly makes participantNodes list only the children whose names contain lockName.
	ownKindOnly bool
}

// grant is a lock node that holds.
type grant struct {
	node      string
	sessionID int64
	token     int64
}

// errStartOver means our node is no longer ours to wait with (its session ended): make a new one.
var errStartOver = errors.New("lock node lost with its session")

// singleHolder is the predicate of a mutex (and of the semaphore of maxLeases, Curator's
// StandardLockInternalsDriver): the first maxLeases nodes hold; the others watch the node
// maxLeases places ahead.
func singleHolder(maxLeases int) func(context.Context, []string, int, framework.Created) (bool, string, error) {
	return func(_ context.Context, sorted []string, ours int, _ framework.Created) (bool, string, error) {
		if ours < maxLeases {
			return true, "", nil
		}
		return false, sorted[ours-maxLeases], nil
	}
}

// sortKey is Curator's standardFixForSorting: the part of name after the last lockName, or the
// whole name if lockName does not occur. With ten-digit sequence numbers, comparing these keys as
// strings orders the nodes by sequence.
func sortKey(name, lockName string) string {
	if i := strings.LastIndex(name, lockName); i >= 0 {
		return name[i+len(lockName):]
	}
	return name
}

// sortChildren sorts node names by sortKey, as Curator's getSortedChildren.
func sortChildren(names []string, lockName string) {
	slices.SortStableFunc(names, func(a, b string) int {
		return strings.Compare(sortKey(a, lockName), sortKey(b, lockName))
	})
}

// sort sorts child names in queue order, with li.key if set, else as sortChildren.
func (li *lockInternals) sort(names []string) {
	if li.key == nil {
		sortChildren(names, li.lockName)
		return
	}
	slices.SortStableFunc(names, func(a, b string) int {
		return strings.Compare(li.key(a), li.key(b))
	})
}

// acquire creates a node and waits until it holds (or, with try, only checks once). A node whose
// session ended while it waited is replaced by a new one at the back of the queue.
func (li *lockInternals) acquire(ctx context.Context, try bool) (grant, error) {
	for {
		var data []byte
		if li.data != nil {
			data = li.data(ctx)
		}
		name, mode := li.lockName, framework.EphemeralSequential
		if li.node != nil {
			n, m, ok, err := li.node(ctx)
			if err != nil {
				return grant{}, err
			}
			if ok {
				name, mode = n, m
			}
		}
		// The first look at the queue is pipelined behind the create: one round trip's wait.
		created, first, err := li.c.CreateAndList(ctx, framework.JoinPath(li.basePath, name), data, mode)
		if errors.Is(err, zk.ErrSessionExpired) {
			// The session ended under the create; go-zookeeper is making a new one. A node the
			// create may have made went with the old session.
			continue
		}
		if err != nil {
			if created.Path != "" && !errors.Is(err, ErrClosed) {
				// Made, but the listing after it failed (ctx ended, say): leave no node behind.
				_ = removeNode(li.c, created.Path)
			}
			return grant{}, err
		}
		g, err := li.wait(ctx, created, try, &first)
		if errors.Is(err, errStartOver) {
			li.c.DeleteInBackground(created.Path)
			li.c.Logger().Debug("lock node lost with its session; queueing again")
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				// Leave no node behind: delete it now, or in the background.
				_ = removeNode(li.c, created.Path)
			}
			return grant{}, err
		}
		return g, nil
	}
}

// wait loops until our node holds: it lists the children, asks the predicate, and waits on a data
// watch on the node the predicate names, then looks again.
//
// first, if not nil, is a listing already read after our node was created; it is used for the
// first look instead of reading one.
func (li *lockInternals) wait(ctx context.Context, created framework.Created, try bool, first *framework.Listing) (grant, error) {
	_, ourName := framework.SplitPath(created.Path)
	for {
		// A node made in an earlier session is never taken as held (Curator's open CURATOR-604).
		if li.c.SessionID() != created.SessionID {
			return grant{}, errStartOver
		}
		var names []string
		var st *zk.Stat
		if first != nil && first.Stat != nil {
			names, st = first.Children, first.Stat
			first = nil
		} else {
			var err error
			names, st, err = li.c.Children(ctx, li.basePath)
			if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrSessionExpired) {
				return grant{}, errStartOver
			}
			if err != nil {
				return grant{}, err
			}
		}
		if li.c.SessionID() != created.SessionID {
			return grant{}, errStartOver
		}
		li.sort(names)
		ours := slices.Index(names, ourName)
		if ours < 0 {
			return grant{}, errStartOver
		}
		held, watch, err := li.grants(ctx, names, ours, created)
		if err != nil {
			return grant{}, err
		}
		if held {
			return grant{node: created.Path, sessionID: created.SessionID, token: grantToken(st)}, nil
		}
		if try {
			return grant{}, fmt.Errorf("acquire %s: %w", li.basePath, ErrLocked)
		}
		_, _, w, err := li.c.GetW(ctx, framework.JoinPath(li.basePath, watch))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if errors.Is(err, zk.ErrSessionExpired) {
			return grant{}, errStartOver
		}
		if err != nil {
			return grant{}, err
		}
		select {
		case <-w:
		case <-li.c.SessionEnded(created.SessionID):
		case <-ctx.Done():
			return grant{}, fmt.Errorf("acquire %s: %w", li.basePath, context.Cause(ctx))
		case <-li.c.Done():
			return grant{}, fmt.Errorf("acquire %s: %w", li.basePath, ErrClosed)
		}
	}
}

// grantToken is the fencing token of a grant: the lock parent's pzxid in the children listing
// that granted the lock, read at no extra cost.
//
// Why it strictly increases from one holder to the next: pzxid is the zxid of the last change to
// the parent's children, creates and deletes alike. Holder A's granting listing was served by a
// server state that already had A's node, and A's node is deleted (by A's release, or by its
// session's expiry) in a later transaction D, so A's token is below D. The next holder B is granted
// only by a listing in which A's node is gone, so that listing's server state includes D and B's
// token is at least D: A's token < D <= B's token. Zxids are global to the ensemble and never go
// back, so this holds across a lock parent that was deleted and re-created (the new parent's pzxid
// starts at its own creation's zxid) and whichever member served each read.
func grantToken(st *zk.Stat) int64 {
	if st == nil {
		return 0
	}
	return st.Pzxid
}

// participantNodes lists the full paths of the children of the lock path, sorted by sequence (the
// holder first). A missing lock path has no participants.
func (li *lockInternals) participantNodes(ctx context.Context) ([]string, error) {
	names, _, err := li.c.Children(ctx, li.basePath)
	if errors.Is(err, zk.ErrNoNode) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	li.sort(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		if li.ownKindOnly && !strings.Contains(n, li.lockName) {
			continue
		}
		out = append(out, framework.JoinPath(li.basePath, n))
	}
	return out, nil
}
