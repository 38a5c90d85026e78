package recipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

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
	// whether we hold and, if not, what to wait for. It decides from that listing only (and, for
	// a refusal, what else it reads): no local flag may grant. An error ends the acquire.
	grants func(ctx context.Context, sorted []string, ours int, created framework.Created) (verdict, error)

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
	// behind, if set, is called when a look finds that our node does not hold (the latch ends a
	// leadership term there).
	behind func()
	// create, if set, replaces framework.Client.CreateAndList for enqueue (tests).
	create func(ctx context.Context, path string, data []byte, mode framework.CreateMode, opts ...framework.CreateOption) (framework.Created, framework.Listing, error)
}

// verdict is a predicate's decision (lockInternals.grants) from one listing.
type verdict struct {
	held  bool
	watch string          // not held: the child to wait behind (its change or delete ends the wait)
	also  <-chan zk.Event // not held: another watch whose event ends the wait too; nil: none
}

// grant is a lock node that holds.
type grant struct {
	node      string
	sessionID int64
	token     int64
}

// errStartOver means our node is no longer ours to wait with: make a new one. The errors that say
// why wrap it.
var errStartOver = errors.New("queue node lost")

var (
	errNodeSessionEnded = fmt.Errorf("%w: it belongs to an ended session", errStartOver)
	errNodeGone         = fmt.Errorf("%w: it is gone", errStartOver)
	errPathGone         = fmt.Errorf("%w: the lock path is gone", errStartOver)
)

// singleHolder is the predicate of a mutex (and of the semaphore of maxLeases, Curator's
// StandardLockInternalsDriver): the first maxLeases nodes hold; the others watch the node
// maxLeases places ahead.
func singleHolder(maxLeases int) func(context.Context, []string, int, framework.Created) (verdict, error) {
	return func(_ context.Context, sorted []string, ours int, _ framework.Created) (verdict, error) {
		if ours < maxLeases {
			return verdict{held: true}, nil
		}
		return verdict{watch: sorted[ours-maxLeases]}, nil
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
//
// A waiting acquire keeps only its goroutine, parked a few small frames deep (so that the garbage
// collector can shrink its stack), and the watch on the node ahead: the creation of its node, the
// listings and the watch request happen in calls that have returned by then, and no listing is
// kept while it waits.
func (li *lockInternals) acquire(ctx context.Context, try bool) (grant, error) {
	for {
		created, first, err := li.enqueue(ctx)
		if err != nil {
			return grant{}, err
		}
		g, err := li.await(ctx, created, &first, try, nil)
		if err == nil {
			return g, nil
		}
		if !errors.Is(err, errStartOver) {
			li.abandon(created.Path, err)
			return grant{}, err
		}
		li.startOver(created.Path)
	}
}

// await waits until created, our node, holds, and returns the grant; with try it only looks once.
// first, if it holds a listing, is the first look's (see look). It returns an error wrapping
// errStartOver if the node is no longer ours to wait with (its session ended, it or the lock path
// is gone), and the node is then left to the caller. A wake that fires makes it look again (nil:
// never fires).
//
// The select is in this frame, and look has returned by then, so a waiter's stack holds only a few
// small frames.
//
//go:noinline
func (li *lockInternals) await(ctx context.Context, created framework.Created, first *framework.Listing, try bool, wake <-chan struct{}) (grant, error) {
	for {
		g, w, also, err := li.look(ctx, created, try, first)
		if err != nil {
			return grant{}, err
		}
		if w == nil {
			return g, nil
		}
		select {
		case <-w:
		case <-also:
		case <-wake:
		case <-li.c.SessionEnded(created.SessionID):
		case <-ctx.Done():
			return grant{}, li.waitError(ctx)
		case <-li.c.Done():
			return grant{}, li.waitError(nil)
		}
	}
}

// enqueue creates our node and reads the first listing of the queue, pipelined behind the create
// (one round trip's wait). A create whose session ended under it is made again.
//
//go:noinline
func (li *lockInternals) enqueue(ctx context.Context) (framework.Created, framework.Listing, error) {
	for {
		var data []byte
		if li.data != nil {
			data = li.data(ctx)
		}
		name, mode := li.lockName, framework.EphemeralSequential
		if li.node != nil {
			n, m, ok, err := li.node(ctx)
			if err != nil {
				return framework.Created{}, framework.Listing{}, err
			}
			if ok {
				name, mode = n, m
			}
		}
		create := li.c.CreateAndList
		if li.create != nil {
			create = li.create
		}
		created, first, err := create(ctx, framework.JoinPath(li.basePath, name), data, mode)
		if errors.Is(err, zk.ErrSessionExpired) {
			// The session ended under the create; go-zookeeper is making a new one. A node the
			// create may have made went with the old session.
			continue
		}
		if err != nil {
			if created.Path != "" {
				// Made, but the listing after it failed (ctx ended, say): leave no node behind.
				li.abandon(created.Path, err)
			}
			return framework.Created{}, framework.Listing{}, err
		}
		return created, first, nil
	}
}

// startOver hands a node lost with its session to the background deleter.
//
//go:noinline
func (li *lockInternals) startOver(node string) {
	li.c.DeleteInBackground(node)
	li.c.Logger().Debug("lock node lost; queueing again", zap.String("node", node))
}

// abandon removes the node of an acquire that failed with err, now or in the background; a closed
// client's nodes went with its session.
//
//go:noinline
func (li *lockInternals) abandon(node string, err error) {
	if !errors.Is(err, ErrClosed) {
		_ = removeNode(li.c, node)
	}
}

// waitError is the error of a wait that ctx ended, or, with ctx nil, that the client's Close
// ended.
//
//go:noinline
func (li *lockInternals) waitError(ctx context.Context) error {
	if ctx == nil {
		return fmt.Errorf("acquire %s: %w", li.basePath, ErrClosed)
	}
	return fmt.Errorf("acquire %s: %w", li.basePath, framework.ContextError(ctx))
}

// eventClosed is a closed watch channel: look returns it to have the queue looked at again at
// once.
var eventClosed = func() chan zk.Event { c := make(chan zk.Event); close(c); return c }()

// look reads the queue (first, if it holds a listing, which look then clears: no listing is kept
// while waiting), asks the predicate, and either returns the grant (w nil, err nil), an error, or
// the channel of a data watch on the node to wait behind, and the predicate's other watch (also,
// nil if none). A node ahead that is gone already gives a closed channel: look again.
//
//go:noinline
func (li *lockInternals) look(ctx context.Context, created framework.Created, try bool, first *framework.Listing) (g grant, w, also <-chan zk.Event, err error) {
	// A node made in an earlier session is never taken as held (Curator's open CURATOR-604).
	if li.c.SessionID() != created.SessionID {
		return grant{}, nil, nil, errNodeSessionEnded
	}
	names, st := first.Children, first.Stat
	*first = framework.Listing{}
	if st == nil {
		names, st, err = li.c.Children(ctx, li.basePath)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			return grant{}, nil, nil, errPathGone // CURATOR-724
		case errors.Is(err, zk.ErrSessionExpired):
			return grant{}, nil, nil, errNodeSessionEnded
		case err != nil:
			return grant{}, nil, nil, err
		}
	}
	if li.c.SessionID() != created.SessionID {
		return grant{}, nil, nil, errNodeSessionEnded
	}
	_, ourName := framework.SplitPath(created.Path)
	li.sort(names)
	ours := slices.Index(names, ourName)
	if ours < 0 {
		return grant{}, nil, nil, errNodeGone
	}
	v, err := li.grants(ctx, names, ours, created)
	if err != nil {
		return grant{}, nil, nil, err
	}
	if v.held {
		return grant{node: created.Path, sessionID: created.SessionID, token: grantToken(st)}, nil, nil, nil
	}
	if li.behind != nil {
		li.behind()
	}
	if try {
		return grant{}, nil, nil, fmt.Errorf("acquire %s: %w", li.basePath, ErrLocked)
	}
	_, _, w, err = li.c.GetW(ctx, framework.JoinPath(li.basePath, v.watch))
	if errors.Is(err, zk.ErrNoNode) {
		return grant{}, eventClosed, nil, nil
	}
	if errors.Is(err, zk.ErrSessionExpired) {
		return grant{}, nil, nil, errNodeSessionEnded
	}
	if err != nil {
		return grant{}, nil, nil, err
	}
	return grant{}, w, v.also, nil
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
