package recipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
)

// NodeKind is what a lock node is, by its name.
type NodeKind int

// The kinds of lock node.
const (
	// NodeUnknown is the zero NodeKind: no node has it.
	NodeUnknown NodeKind = iota
	// NodeMutex is an InterProcessMutex node (<path>/_c_<uuid>-lock-<sequence>), a LeaderSelector's
	// too.
	NodeMutex
	// NodeReader is a read-write lock's read node (<path>/_c_<uuid>-__READ__<sequence>).
	NodeReader
	// NodeWriter is a read-write lock's write node (<path>/_c_<uuid>-__WRIT__<sequence>).
	NodeWriter
	// NodeLease is a semaphore's lease node (<path>/leases/_c_<uuid>-lease-<sequence>), of a
	// Semaphore or a SemaphoreMutex.
	NodeLease
	// NodeInternalLock is a node of a semaphore's internal mutex
	// (<path>/locks/_c_<uuid>-lock-<sequence>): the queue of the acquirers about to take a lease.
	NodeInternalLock
	// NodeLatch is a LeaderLatch node (<path>/_c_<uuid>-latch-<sequence>).
	NodeLatch
)

// String returns the kind's name: unknown, mutex, reader, writer, lease, internal-lock or latch.
func (k NodeKind) String() string {
	switch k {
	case NodeMutex:
		return "mutex"
	case NodeReader:
		return "reader"
	case NodeWriter:
		return "writer"
	case NodeLease:
		return "lease"
	case NodeInternalLock:
		return "internal-lock"
	case NodeLatch:
		return "latch"
	}
	return "unknown"
}

// LockNode is one node of a lock, semaphore or election, as read from ZooKeeper.
type LockNode struct {
	// Path is the node's full path.
	Path string
	// Name is the last element of Path.
	Name string
	// Kind is what the node is, by its name.
	Kind NodeKind
	// Sequence is the number after the node's lock name (lock-, __READ__, __WRIT__, lease-,
	// latch-): the sequence ZooKeeper gave it, or for a read node made by a downgrade the
	// sequence of its write node. It is -1 for a name without one.
	Sequence int64
	// SessionID is the session that owns the node (its ephemeralOwner), 0 for a node that is
	// not ephemeral.
	SessionID int64
	// Data is the node's data: the holder's id (a participant id, or by default the client's
	// default data, which Curator sets to the host's IP address).
	Data []byte
	// Created is when the node was made (its ctime, to the millisecond).
	Created time.Time
	// Holds reports whether the node holds what it queues for, by the recipe's rules applied to
	// the nodes read (see the Participants methods and InspectLock): the lock, a lease,
	// leadership, or for a NodeInternalLock the semaphore's internal mutex.
	Holds bool

	czxid int64 // the zxid of the node's create
}

// ID returns the holder's id: the node's data as a string.
func (n LockNode) ID() string { return string(n.Data) }

// RecipeKind is the recipe a lock path's nodes belong to.
type RecipeKind int

// The recipes InspectLock tells apart.
const (
	// RecipeNone: the path does not exist, or has no children.
	RecipeNone RecipeKind = iota
	// RecipeMutex: lock- nodes, of an InterProcessMutex or a LeaderSelector.
	RecipeMutex
	// RecipeReadWriteLock: __READ__ and __WRIT__ nodes, of a ReadWriteLock.
	RecipeReadWriteLock
	// RecipeSemaphore: the locks and leases children of a Semaphore or a SemaphoreMutex.
	RecipeSemaphore
	// RecipeLeaderLatch: latch- nodes, of a LeaderLatch.
	RecipeLeaderLatch
	// RecipeUnknown: children that are the nodes of none of the recipes.
	RecipeUnknown
)

// String returns the recipe's name: none, mutex, read-write lock, semaphore, leader latch or
// unknown.
func (k RecipeKind) String() string {
	switch k {
	case RecipeNone:
		return "none"
	case RecipeMutex:
		return "mutex"
	case RecipeReadWriteLock:
		return "read-write lock"
	case RecipeSemaphore:
		return "semaphore"
	case RecipeLeaderLatch:
		return "leader latch"
	}
	return "unknown"
}

// LockInfo is what InspectLock found at a lock path.
type LockInfo struct {
	// Path is the inspected path.
	Path string
	// Recipe is the recipe the path's nodes belong to.
	Recipe RecipeKind
	// MaxLeases is, for a semaphore, the maxLeases given to InspectLock with InspectMaxLeases;
	// 0 if it was not given (then Holds of the lease nodes is inferred: see InspectLock).
	MaxLeases int
	// Nodes are the recipe's nodes in queue order (for a semaphore, the lease nodes, then the
	// internal mutex's nodes). Never nil.
	Nodes []LockNode
}

// Holders returns the nodes that hold the lock, a lease or leadership: those with Holds set,
// except the head of a semaphore's internal mutex (its acquirer is taking a lease, and is counted
// by its lease node).
func (i LockInfo) Holders() []LockNode {
	var out []LockNode
	for _, n := range i.Nodes {
		if n.Holds && n.Kind != NodeInternalLock {
			out = append(out, n)
		}
	}
	return out
}

// Waiters returns the nodes that wait: those without Holds (for a semaphore, lease nodes that wait
// for a lease and the acquirers queued behind the head of its internal mutex).
func (i LockInfo) Waiters() []LockNode {
	var out []LockNode
	for _, n := range i.Nodes {
		if !n.Holds {
			out = append(out, n)
		}
	}
	return out
}

// InspectOption sets an option of InspectLock.
type InspectOption func(*inspectOptions)

type inspectOptions struct {
	maxLeases int
	errs      []error
}

// InspectMaxLeases tells InspectLock the maxLeases of the semaphore at the path (a convention of
// its users that its nodes do not record), so that it can tell the lease nodes that hold from the
// one that waits. n must be at least 1; it is ignored for a path that is not a semaphore.
func InspectMaxLeases(n int) InspectOption {
	return func(o *inspectOptions) {
		if n < 1 {
			o.errs = append(o.errs, fmt.Errorf("%w: maxLeases %d is below 1", ErrInvalidArgument, n))
			return
		}
		o.maxLeases = n
	}
}

// InspectLock reads the nodes at path and tells from their names which recipe they belong to.
// Only a name with a lock name followed by a valid sequence suffix (ten digits, as ZooKeeper
// appends to a sequential node) is a lock node: children named "locks" or "leases" make a
// semaphore (Semaphore or SemaphoreMutex) if the lock nodes under them (lease-, lock-) are such
// names, or if both are empty (a semaphore no one uses now); otherwise __READ__ or __WRIT__ nodes
// make a read-write lock, latch- nodes a leader latch, lock- nodes a mutex (InterProcessMutex, or
// LeaderSelector), in that order of precedence. Children of other names (a name that merely
// contains "lock-", say) are left out; a path none of whose children is a lock node (a plain
// parent of lock paths, such as <root> of <root>/locks/lock-0) is RecipeUnknown, and a missing or
// empty path RecipeNone, both with no nodes and no error.
//
// The nodes come in queue order, Holds set by the recipe's rules as the Participants methods set
// it (see InterProcessMutex.Participants, ReadWriteLock.Participants, Semaphore.Participants,
// LeaderLatch.Nodes). For a semaphore without InspectMaxLeases, Holds of its lease nodes is
// inferred: a lease node holds unless it is the newest lease node, made by the session whose node
// heads the internal mutex after that node was made. Only the holder of the internal mutex creates
// lease nodes, and it keeps the internal mutex while it waits for a lease, and otherwise only for
// the few requests that a granted lease or an Acquire of several leases takes: so such a node
// waits, or was granted a moment ago.
//
// Cost: one listing of path (for a semaphore, one of path, leases and locks each), then one read
// (get) of each node, pipelined on the client's connection (up to 32 reads under way at once). A
// node deleted between the listing and its read is left out, and Holds is decided among the
// nodes that are left. The result is a snapshot: it may be stale as soon as it is returned.
//
// A nil client, a bad path or a bad option is an error wrapping ErrInvalidArgument.
func InspectLock(ctx context.Context, c *framework.Client, path string, opts ...InspectOption) (LockInfo, error) {
	info := LockInfo{Path: path, Nodes: []LockNode{}}
	if err := checkInspect(ctx, c, path); err != nil {
		return info, fmt.Errorf("inspect lock: %w", err)
	}
	var o inspectOptions
	for _, opt := range opts {
		if opt == nil {
			o.errs = append(o.errs, fmt.Errorf("%w: nil InspectOption", ErrInvalidArgument))
			continue
		}
		opt(&o)
	}
	if len(o.errs) > 0 {
		return info, fmt.Errorf("inspect lock %s: %w", path, errors.Join(o.errs...))
	}
	names, err := listChildren(ctx, c, path)
	if err != nil {
		return info, fmt.Errorf("inspect lock %s: %w", path, err)
	}
	has := func(s string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return isLockNode(n, s) })
	}
	var nodes []LockNode
	switch {
	case len(names) == 0:
		return info, nil
	case slices.Contains(names, semaphoreLeases) || slices.Contains(names, semaphoreLocks):
		var listed int
		nodes, listed, err = semaphoreNodes(ctx, c, path, o.maxLeases)
		if err == nil && len(nodes) == 0 && listed > 0 {
			info.Recipe, nodes = RecipeUnknown, nil // locks or leases holds no lock node
			break
		}
		info.Recipe, info.MaxLeases = RecipeSemaphore, o.maxLeases
	case has(readLockName) || has(writeLockName):
		info.Recipe = RecipeReadWriteLock
		rwNames := slices.DeleteFunc(slices.Clone(names), func(n string) bool {
			return !isLockNode(n, readLockName) && !isLockNode(n, writeLockName)
		})
		nodes, err = rwNodesOf(ctx, c, path, rwNames)
	case has(latchName):
		info.Recipe = RecipeLeaderLatch
		nodes, err = queueNodesOf(ctx, c, path, sequential(names, latchName), latchName, NodeLatch)
	case has(lockName):
		info.Recipe = RecipeMutex
		nodes, err = queueNodesOf(ctx, c, path, sequential(names, lockName), lockName, NodeMutex)
	default:
		info.Recipe = RecipeUnknown
	}
	if err != nil {
		return info, fmt.Errorf("inspect lock %s: %w", path, err)
	}
	if nodes != nil {
		info.Nodes = nodes
	}
	return info, nil
}

// isLockNode reports whether name is a lock node of lockName: it contains lockName, and its sort key
// (the part after the last lockName, see sortKey) is a valid sequence suffix. For the read-write
// lock names (readLockName, writeLockName) the sort key is the read-write lock's (see rwSortKey).
func isLockNode(name, lockName string) bool {
	if !strings.Contains(name, lockName) {
		return false
	}
	if lockName == readLockName || lockName == writeLockName {
		return parseSequence(rwSortKey(name)) >= 0
	}
	return parseSequence(sortKey(name, lockName)) >= 0
}

// sequential returns the names of names that are lock nodes of lockName (see isLockNode), in a new
// slice.
func sequential(names []string, lockName string) []string {
	return slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !isLockNode(n, lockName) })
}

// checkInspect reports a nil context or client, or a bad lock path.
func checkInspect(ctx context.Context, c *framework.Client, path string) error {
	if ctx == nil {
		return fmt.Errorf("%w: context is nil", ErrInvalidArgument)
	}
	return checkArgs(c, path)
}

// Participants returns the mutex's nodes in queue order, Curator's (by the sequence after the
// lock name, the protected prefix ignored): the first holds the lock (Holds), the others wait.
// Children whose names lack the lock name are left out (Curator would count such a foreign child
// in its queue; none of the recipes makes one).
//
// For the ReadLock or WriteLock of a ReadWriteLock it returns that lock's nodes only (NodeReader
// or NodeWriter), with Holds set by the read-write rules over the whole queue (see
// ReadWriteLock.Participants).
//
// Cost: one listing of the lock path and one read of each node, pipelined (see InspectLock). A
// node deleted between the listing and its read is left out, and the first node left holds. A
// missing lock path has no nodes.
func (m *InterProcessMutex) Participants(ctx context.Context) ([]LockNode, error) {
	if m == nil || m.li == nil {
		return nil, fmt.Errorf("participants: %w: nil or zero InterProcessMutex", ErrInvalidArgument)
	}
	if m.err != nil {
		return nil, fmt.Errorf("participants: %w", m.err)
	}
	if ctx == nil {
		return nil, fmt.Errorf("participants of %s: %w: context is nil", m.li.basePath, ErrInvalidArgument)
	}
	path := m.li.basePath
	names, err := listChildren(ctx, m.c, path)
	if err != nil {
		return nil, fmt.Errorf("participants of %s: %w", path, err)
	}
	var nodes []LockNode
	if m.li.ownKindOnly {
		kind := NodeWriter
		if m.li.lockName == readLockName {
			kind = NodeReader
		}
		nodes, err = rwNodesOf(ctx, m.c, path, names)
		nodes = slices.DeleteFunc(nodes, func(n LockNode) bool { return n.Kind != kind })
	} else {
		nodes, err = queueNodesOf(ctx, m.c, path, names, m.li.lockName, NodeMutex)
	}
	if err != nil {
		return nil, fmt.Errorf("participants of %s: %w", path, err)
	}
	return nonNil(nodes), nil
}

// Participants returns the read and write nodes of the lock in queue order (by sequence; a
// downgrade's read node has its write node's sequence). Holds follows the read-write rules: the
// write node at the head of the queue holds; a read node holds while no write node is ahead of
// it, and also when it is a downgrade of the write node at the head: of the same session AND with
// that write node's sequence (the holder of the write lock took the read lock with the write
// lease). A read node of the head writer's session with a sequence of its own (a plain read
// Acquire of the same client, from another goroutine) waits behind the writer, as it does.
// Children of other names are left out.
//
// The rules are decided from the nodes alone, so one case of Java processes is read apart from
// what Curator decided in it: Curator 5.4's downgrade read node gets a sequence of its own (it is
// a plain read node, granted because the thread holds the write lock), so it shows as waiting
// while its write node is at the head, and behind a writer that followed once that write lock
// was released.
//
// Cost: one listing and one read of each node, pipelined (see InspectLock). A node deleted
// between the listing and its read is left out, and Holds is decided among the nodes left. A
// missing lock path has no nodes.
func (rw *ReadWriteLock) Participants(ctx context.Context) ([]LockNode, error) {
	if rw == nil || rw.read == nil || rw.read.li == nil {
		return nil, fmt.Errorf("participants: %w: nil or zero ReadWriteLock", ErrInvalidArgument)
	}
	m := rw.read
	if m.err != nil {
		return nil, fmt.Errorf("participants: %w", m.err)
	}
	if ctx == nil {
		return nil, fmt.Errorf("participants of %s: %w: context is nil", m.li.basePath, ErrInvalidArgument)
	}
	names, err := listChildren(ctx, m.c, m.li.basePath)
	if err == nil {
		var nodes []LockNode
		nodes, err = rwNodesOf(ctx, m.c, m.li.basePath, names)
		if err == nil {
			return nonNil(nodes), nil
		}
	}
	return nil, fmt.Errorf("participants of %s: %w", m.li.basePath, err)
}

// Participants returns the semaphore's lease nodes in queue order (by sequence), then the nodes
// of its internal mutex in queue order. Of the lease nodes the first MaxLeases hold a lease
// (Holds) and the others wait: only the holder of the internal mutex creates lease nodes, so at
// most one acquirer waits for a lease, with the newest nodes. Of the internal mutex's nodes the
// first holds the internal mutex (its acquirer is taking a lease: if it waits for one, its lease
// node is the one that waits), and the others wait to take it.
//
// Cost: one listing each of the leases and the locks parent and one read of each node,
// pipelined (see InspectLock). A node deleted between the listing and its read is left out, and
// Holds is decided among the nodes left. A semaphore whose path does not exist has no nodes.
func (s *Semaphore) Participants(ctx context.Context) ([]LockNode, error) {
	if s == nil {
		return nil, fmt.Errorf("participants: %w: nil Semaphore", ErrInvalidArgument)
	}
	if s.err != nil {
		return nil, fmt.Errorf("participants: %w", s.err)
	}
	if s.c == nil || s.maxLeases < 1 {
		return nil, fmt.Errorf("participants: %w: zero Semaphore", ErrInvalidArgument)
	}
	if ctx == nil {
		return nil, fmt.Errorf("participants of %s: %w: context is nil", s.path, ErrInvalidArgument)
	}
	nodes, _, err := semaphoreNodes(ctx, s.c, s.path, s.maxLeases)
	if err != nil {
		return nil, fmt.Errorf("participants of %s: %w", s.path, err)
	}
	return nonNil(nodes), nil
}

// Participants returns the mutex's nodes as Semaphore.Participants does for a semaphore of one
// lease: the lease node that holds the mutex, the one that waits for it, then the nodes of the
// internal mutex.
func (m *SemaphoreMutex) Participants(ctx context.Context) ([]LockNode, error) {
	if m == nil || m.s == nil {
		return nil, fmt.Errorf("participants: %w: nil or zero SemaphoreMutex", ErrInvalidArgument)
	}
	return m.s.Participants(ctx)
}

// Nodes returns the election's nodes in queue order (by sequence), with what Participants gives
// and more (sessions, creation times, sequences): the first node leads (Holds), the others wait.
// It works whether or not the latch is started, to watch an election without joining it; a node
// deleted between the listing and its read is left out, and the first node left leads, as in
// Participants.
//
// Cost: one listing and one read of each node, pipelined (see InspectLock). A missing latch path
// has no nodes.
func (l *LeaderLatch) Nodes(ctx context.Context) ([]LockNode, error) {
	if l == nil || l.c == nil {
		return nil, fmt.Errorf("latch nodes: %w: nil or zero LeaderLatch", ErrInvalidArgument)
	}
	if l.err != nil {
		return nil, fmt.Errorf("latch nodes: %w", l.err)
	}
	if ctx == nil {
		return nil, fmt.Errorf("latch nodes of %s: %w: context is nil", l.path, ErrInvalidArgument)
	}
	nodes, err := l.queueNodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("latch nodes of %s: %w", l.path, err)
	}
	return nodes, nil
}

// queueNodes reads the latch's nodes in queue order (see Nodes); never nil without an error.
func (l *LeaderLatch) queueNodes(ctx context.Context) ([]LockNode, error) {
	names, err := listChildren(ctx, l.c, l.path)
	if err != nil {
		return nil, err
	}
	nodes, err := queueNodesOf(ctx, l.c, l.path, names, latchName, NodeLatch)
	if err != nil {
		return nil, err
	}
	return nonNil(nodes), nil
}

// Nodes returns the election's nodes (NodeMutex: a LeaderSelector queues on an
// InterProcessMutex) in queue order, as InterProcessMutex.Participants: the first leads (Holds),
// the others wait. It works whether or not the selector is started.
func (s *LeaderSelector) Nodes(ctx context.Context) ([]LockNode, error) {
	if s == nil || s.m == nil {
		return nil, fmt.Errorf("selector nodes: %w: nil or zero LeaderSelector", ErrInvalidArgument)
	}
	if s.err != nil {
		return nil, fmt.Errorf("selector nodes: %w", s.err)
	}
	return s.m.Participants(ctx)
}

func nonNil(nodes []LockNode) []LockNode {
	if nodes == nil {
		return []LockNode{}
	}
	return nodes
}

// listChildren lists path's children; a missing path has none.
func listChildren(ctx context.Context, c *framework.Client, path string) ([]string, error) {
	names, _, err := c.Children(ctx, path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	return names, err
}

// queueNodesOf reads the queue of one lock name under parent (a mutex, a latch, a semaphore's
// lease or internal mutex nodes): the children whose names contain name, sorted as Curator sorts
// them; the first node left holds.
func queueNodesOf(ctx context.Context, c *framework.Client, parent string, names []string, name string, kind NodeKind) ([]LockNode, error) {
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return !strings.Contains(n, name) })
	sortChildren(names, name)
	nodes, err := readLockNodes(ctx, c, parent, names, kind, func(n string) int64 { return parseSequence(sortKey(n, name)) })
	for i := range nodes {
		nodes[i].Holds = i == 0
	}
	return nodes, err
}

// rwNodesOf reads a read-write lock's read and write nodes in queue order and sets Holds by the
// read-write rules (see ReadWriteLock.Participants).
func rwNodesOf(ctx context.Context, c *framework.Client, parent string, names []string) ([]LockNode, error) {
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool {
		return !strings.Contains(n, readLockName) && !strings.Contains(n, writeLockName)
	})
	// Curator's order, and of a downgrade's read node and its write node (one sequence), the
	// write node first: it was made first, and holds.
	slices.SortStableFunc(names, func(a, b string) int {
		if c := strings.Compare(rwSortKey(a), rwSortKey(b)); c != 0 {
			return c
		}
		aw, bw := strings.Contains(a, writeLockName), strings.Contains(b, writeLockName)
		switch {
		case aw && !bw:
			return -1
		case bw && !aw:
			return 1
		}
		return strings.Compare(a, b)
	})
	nodes, err := readLockNodes(ctx, c, parent, names, NodeUnknown, func(n string) int64 { return parseSequence(rwSortKey(n)) })
	if err != nil {
		return nil, err
	}
	for i := range nodes {
		if strings.Contains(nodes[i].Name, writeLockName) {
			nodes[i].Kind = NodeWriter
		} else {
			nodes[i].Kind = NodeReader
		}
	}
	firstWriter := slices.IndexFunc(nodes, func(n LockNode) bool { return n.Kind == NodeWriter })
	for i := range nodes {
		switch {
		case nodes[i].Kind == NodeWriter:
			nodes[i].Holds = i == 0
		case firstWriter < 0 || i < firstWriter:
			nodes[i].Holds = true
		default:
			// A downgrade: the write node at the head, which holds, is of this reader's session,
			// and the read node has its sequence. A read node of that session with a sequence of
			// its own is a plain reader that waits behind the writer.
			nodes[i].Holds = firstWriter == 0 && nodes[0].SessionID != 0 && nodes[0].SessionID == nodes[i].SessionID &&
				nodes[i].Sequence >= 0 && nodes[i].Sequence == nodes[0].Sequence
		}
	}
	return nodes, nil
}

// semaphoreNodes reads a semaphore's lease nodes, then its internal mutex's nodes, each in queue
// order, with Holds as Semaphore.Participants (maxLeases >= 1) or InspectLock (maxLeases 0) set
// it. Only children with a valid sequence suffix are lock nodes (see isLockNode). listed is the
// number of children of the leases and locks nodes, lock nodes or not.
func semaphoreNodes(ctx context.Context, c *framework.Client, path string, maxLeases int) (nodes []LockNode, listed int, err error) {
	leasesPath := framework.JoinPath(path, semaphoreLeases)
	locksPath := framework.JoinPath(path, semaphoreLocks)
	leaseNames, err := listChildren(ctx, c, leasesPath)
	if err != nil {
		return nil, 0, err
	}
	lockNames, err := listChildren(ctx, c, locksPath)
	if err != nil {
		return nil, 0, err
	}
	listed = len(leaseNames) + len(lockNames)
	leases, err := queueNodesOf(ctx, c, leasesPath, sequential(leaseNames, leaseName), leaseName, NodeLease)
	if err != nil {
		return nil, listed, err
	}
	locks, err := queueNodesOf(ctx, c, locksPath, sequential(lockNames, lockName), lockName, NodeInternalLock)
	if err != nil {
		return nil, listed, err
	}
	for i := range leases {
		leases[i].Holds = maxLeases < 1 || i < maxLeases
	}
	if maxLeases < 1 && len(leases) > 0 && len(locks) > 0 {
		// The newest lease node waits if the head of the internal mutex made it while holding it.
		newest, head := &leases[len(leases)-1], locks[0]
		if newest.SessionID != 0 && newest.SessionID == head.SessionID && newest.czxid > head.czxid {
			newest.Holds = false
		}
	}
	return append(leases, locks...), listed, nil
}

// parseSequence parses the sequence suffix of a node name (its sort key); -1 if it is not one.
func parseSequence(key string) int64 {
	if len(key) != sequenceLength {
		return -1
	}
	n, err := strconv.ParseInt(key, 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// readParallel bounds the reads of readLockNodes under way at once.
const readParallel = 32

// readLockNodes reads the nodes names (in that order) under parent, several at a time, and
// returns those that still exist, in the same order, of kind kind; seq gives a node's sequence
// from its name.
func readLockNodes(ctx context.Context, c *framework.Client, parent string, names []string,
	kind NodeKind, seq func(string) int64) ([]LockNode, error) {
	type result struct {
		node LockNode
		ok   bool
		err  error
	}
	results := make([]result, len(names))
	var wg sync.WaitGroup
	slots := make(chan struct{}, readParallel)
	for i, name := range names {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			p := framework.JoinPath(parent, name)
			data, st, err := c.Get(ctx, p)
			switch {
			case errors.Is(err, zk.ErrNoNode):
				return // deleted since the listing
			case err != nil:
				results[i].err = err
				return
			}
			n := LockNode{Path: p, Name: name, Kind: kind, Sequence: seq(name), Data: data}
			if st != nil {
				n.SessionID = st.EphemeralOwner
				n.Created = time.UnixMilli(st.Ctime).UTC()
				n.czxid = st.Czxid
			}
			results[i] = result{node: n, ok: true}
		}()
	}
	wg.Wait()
	out := make([]LockNode, 0, len(names))
	for _, r := range results {
		if r.err != nil {
			return nil, r.err
		}
		if r.ok {
			out = append(out, r.node)
		}
	}
	return out, nil
}
