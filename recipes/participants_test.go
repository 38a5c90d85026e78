package recipes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
)

// wantNode is what a test expects of one LockNode: its kind, the client whose session owns it,
// whether it holds, and its id.
type wantNode struct {
	kind   NodeKind
	client int
	holds  bool
	id     string
}

// waitChildren waits until path has at least n children (testkit.WaitChildren).
func waitChildren(t testing.TB, c *framework.Client, path string, n int) {
	t.Helper()
	testkit.WaitChildren(t, c, path, n, 20*time.Second)
}

// background runs acquire on a goroutine with a context that ends at the test's end (a waiter
// gives up then), and waits for it to return before the test's clients close. What it acquired,
// if anything, is released then.
func background(t testing.TB, acquire func(ctx context.Context) ([]*Lease, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		leases, err := acquire(ctx)
		if err == nil {
			for _, l := range leases {
				_ = l.Release()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// holdNow acquires at once, and releases at the test's end.
func holdNow(t testing.TB, acquire func(ctx context.Context) (*Lease, error)) *Lease {
	t.Helper()
	l, err := acquire(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Release() })
	return l
}

// TestParticipants sets up each recipe with holders and waiters of several sessions and checks
// what the recipe's Participants (or the latch's Nodes) and InspectLock report: the nodes in queue
// order, their kinds, sessions, ids and holder flags.
func TestParticipants(t *testing.T) {
	for _, tc := range []struct {
		name    string
		recipe  RecipeKind
		clients int
		// setup makes the holders and waiters and returns the lock path and the recipe's own
		// listing.
		setup     func(t *testing.T, cs []*framework.Client, path string) func(context.Context) ([]LockNode, error)
		inspect   []InspectOption
		want      []wantNode
		wantOther []wantNode // InspectLock's answer, if it differs from want
	}{
		{
			name: "mutex", recipe: RecipeMutex, clients: 3,
			setup: func(t *testing.T, cs []*framework.Client, path string) func(context.Context) ([]LockNode, error) {
				holdNow(t, NewInterProcessMutex(cs[0], path).Acquire)
				for i := 1; i < 3; i++ {
					background(t, one(NewInterProcessMutex(cs[i], path).Acquire))
					waitChildren(t, cs[0], path, i+1)
				}
				return NewInterProcessMutex(cs[0], path).Participants
			},
			want: []wantNode{{NodeMutex, 0, true, "c0"}, {NodeMutex, 1, false, "c1"}, {NodeMutex, 2, false, "c2"}},
		},
		{
			name: "semaphore mutex", recipe: RecipeSemaphore, clients: 2,
			setup: func(t *testing.T, cs []*framework.Client, path string) func(context.Context) ([]LockNode, error) {
				holdNow(t, NewSemaphoreMutex(cs[0], path).Acquire)
				background(t, one(NewSemaphoreMutex(cs[1], path).Acquire))
				waitChildren(t, cs[0], path+"/leases", 2)
				return NewSemaphoreMutex(cs[0], path).Participants
			},
			want: []wantNode{{NodeLease, 0, true, "c0"}, {NodeLease, 1, false, "c1"}, {NodeInternalLock, 1, true, "c1"}},
		},
		{
			// Two leases held, a third acquirer waits for a lease with the internal mutex, a
			// fourth waits for the internal mutex. Without maxLeases InspectLock infers the same.
			name: "semaphore of 2, 4 acquirers", recipe: RecipeSemaphore, clients: 4,
			setup: func(t *testing.T, cs []*framework.Client, path string) func(context.Context) ([]LockNode, error) {
				for i := range 2 {
					holdNow(t, func(ctx context.Context) (*Lease, error) {
						return oneLease(NewSemaphore(cs[i], path, 2).Acquire(ctx, 1))
					})
				}
				background(t, func(ctx context.Context) ([]*Lease, error) { return NewSemaphore(cs[2], path, 2).Acquire(ctx, 1) })
				waitChildren(t, cs[0], path+"/leases", 3)
				background(t, func(ctx context.Context) ([]*Lease, error) { return NewSemaphore(cs[3], path, 2).Acquire(ctx, 1) })
				waitChildren(t, cs[0], path+"/locks", 2)
				return NewSemaphore(cs[0], path, 2).Participants
			},
			want: []wantNode{
				{NodeLease, 0, true, "c0"}, {NodeLease, 1, true, "c1"}, {NodeLease, 2, false, "c2"},
				{NodeInternalLock, 2, true, ""}, {NodeInternalLock, 3, false, ""},
			},
		},
		{
			name: "semaphore of 2, maxLeases given", recipe: RecipeSemaphore, clients: 3,
			setup: func(t *testing.T, cs []*framework.Client, path string) func(context.Context) ([]LockNode, error) {
				s := NewSemaphore(cs[0], path, 2)
				leases, err := s.Acquire(testContext(t, 10*time.Second), 2)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					for _, l := range leases {
						_ = l.Release()
					}
				})
				background(t, func(ctx context.Context) ([]*Lease, error) { return NewSemaphore(cs[1], path, 2).Acquire(ctx, 1) })
				waitChildren(t, cs[0], path+"/leases", 3)
				return s.Participants
			},
			inspect: []InspectOption{InspectMaxLeases(2)},
			want: []wantNode{
				{NodeLease, 0, true, "c0"}, {NodeLease, 0, true, "c0"}, {NodeLease, 1, false, "c1"},
				{NodeInternalLock, 1, true, ""},
			},
		},
		{
			name: "read-write lock", recipe: RecipeReadWriteLock, clients: 4,
			setup: func(t *testing.T, cs []*framework.Client, path string) func(context.Context) ([]LockNode, error) {
				holdNow(t, NewReadWriteLock(cs[0], path).ReadLock().Acquire)
				holdNow(t, NewReadWriteLock(cs[1], path).ReadLock().Acquire)
				background(t, one(NewReadWriteLock(cs[2], path).WriteLock().Acquire))
				waitChildren(t, cs[0], path, 3)
				background(t, one(NewReadWriteLock(cs[3], path).ReadLock().Acquire))
				waitChildren(t, cs[0], path, 4)
				return NewReadWriteLock(cs[0], path).Participants
			},
			want: []wantNode{{NodeReader, 0, true, "c0"}, {NodeReader, 1, true, "c1"}, {NodeWriter, 2, false, "c2"}, {NodeReader, 3, false, "c3"}},
		},
		{
			// A writer holds and has downgraded (its read node has the write node's
			// sequence); a writer and a reader of other sessions wait.
			name: "read-write lock downgraded", recipe: RecipeReadWriteLock, clients: 3,
			setup: func(t *testing.T, cs []*framework.Client, path string) func(context.Context) ([]LockNode, error) {
				rw := NewReadWriteLock(cs[0], path)
				w := holdNow(t, rw.WriteLock().Acquire)
				r, err := rw.ReadLock().Acquire(w.Context())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = r.Release() })
				background(t, one(NewReadWriteLock(cs[1], path).WriteLock().Acquire))
				waitChildren(t, cs[0], path, 3)
				background(t, one(NewReadWriteLock(cs[2], path).ReadLock().Acquire))
				waitChildren(t, cs[0], path, 4)
				return rw.Participants
			},
			want: []wantNode{{NodeWriter, 0, true, "c0"}, {NodeReader, 0, true, "c0"}, {NodeWriter, 1, false, "c1"}, {NodeReader, 2, false, "c2"}},
		},
		{
			name: "leader selector", recipe: RecipeMutex, clients: 3,
			setup: func(t *testing.T, cs []*framework.Client, path string) func(context.Context) ([]LockNode, error) {
				lead := func(ctx context.Context) error { <-ctx.Done(); return nil }
				var first *LeaderSelector
				for i, c := range cs {
					s := startSelector(t, c, path, lead, WithSelectorID(fmt.Sprintf("c%d", i)))
					waitChildren(t, cs[0], path, i+1)
					if i == 0 {
						first = s
					}
				}
				return first.Nodes
			},
			want: []wantNode{{NodeMutex, 0, true, "c0"}, {NodeMutex, 1, false, "c1"}, {NodeMutex, 2, false, "c2"}},
		},
		{
			name: "leader latch", recipe: RecipeLeaderLatch, clients: 3,
			setup: func(t *testing.T, cs []*framework.Client, path string) func(context.Context) ([]LockNode, error) {
				var first *LeaderLatch
				for i, c := range cs {
					l := startLatch(t, c, path, WithParticipantID(fmt.Sprintf("c%d", i)))
					waitChildren(t, cs[0], path, i+1)
					if i == 0 {
						first = l
					}
				}
				return first.Nodes
			},
			want: []wantNode{{NodeLatch, 0, true, "c0"}, {NodeLatch, 1, false, "c1"}, {NodeLatch, 2, false, "c2"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := make([]*framework.Client, tc.clients)
			for i := range cs {
				cs[i] = newClient(t, framework.WithDefaultData([]byte(fmt.Sprintf("c%d", i))))
			}
			path := testPath(t, "lock")
			list := tc.setup(t, cs, path)
			ctx := testContext(t, 10*time.Second)
			got, err := list(ctx)
			if err != nil {
				t.Fatal(err)
			}
			checkNodes(t, "Participants", got, tc.want, cs, path)
			info, err := InspectLock(ctx, cs[0], path, tc.inspect...)
			if err != nil {
				t.Fatal(err)
			}
			if info.Recipe != tc.recipe || info.Path != path {
				t.Errorf("InspectLock: recipe %v path %s, want %v %s", info.Recipe, info.Path, tc.recipe, path)
			}
			want := tc.want
			if tc.wantOther != nil {
				want = tc.wantOther
			}
			checkNodes(t, "InspectLock", info.Nodes, want, cs, path)
		})
	}
}

// checkNodes compares got with want: kinds, sessions, holder flags and ids in order; and that
// paths, names, sequences and creation times are sound. An id of "" in want is not checked (an
// internal mutex node has the client's default data).
func checkNodes(t *testing.T, what string, got []LockNode, want []wantNode, cs []*framework.Client, path string) {
	t.Helper()
	describe := func(ns []LockNode) string {
		var b strings.Builder
		for _, n := range ns {
			fmt.Fprintf(&b, "\n\t%s %s session %#x holds %v id %q", n.Kind, n.Path, n.SessionID, n.Holds, n.ID())
		}
		return b.String()
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d nodes, want %d:%s", what, len(got), len(want), describe(got))
	}
	lastSeq := map[NodeKind]int64{}
	for i, w := range want {
		n := got[i]
		if n.Kind != w.kind || n.SessionID != cs[w.client].SessionID() || n.Holds != w.holds || (w.id != "" && n.ID() != w.id) {
			t.Errorf("%s: node %d is %v of session %#x, holds %v, id %q; want %v of client %d (%#x), holds %v, id %q:%s",
				what, i, n.Kind, n.SessionID, n.Holds, n.ID(), w.kind, w.client, cs[w.client].SessionID(), w.holds, w.id, describe(got))
		}
		parent, name := framework.SplitPath(n.Path)
		if name != n.Name || !strings.HasPrefix(parent, path) || !strings.HasPrefix(name, "_c_") {
			t.Errorf("%s: node %d: path %q, name %q", what, i, n.Path, n.Name)
		}
		if n.Sequence < lastSeq[n.Kind] {
			t.Errorf("%s: node %d: sequence %d after %d", what, i, n.Sequence, lastSeq[n.Kind])
		}
		lastSeq[n.Kind] = n.Sequence
		if age := time.Since(n.Created); age < -time.Minute || age > time.Minute {
			t.Errorf("%s: node %d created %v", what, i, n.Created)
		}
	}
}

// TestParticipantsBadInput checks that nil and zero values, bad paths and options give errors
// wrapping ErrInvalidArgument, not panics; and that a missing path has no nodes.
func TestParticipantsBadInput(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	var nilCtx context.Context
	missing := testPath(t, "missing")
	nodes := func(f func(context.Context) ([]LockNode, error), ctx context.Context) func() (int, error) {
		return func() (int, error) {
			ns, err := f(ctx)
			if err == nil && ns == nil {
				return 0, errors.New("nil nodes")
			}
			return len(ns), err
		}
	}
	inspect := func(c *framework.Client, path string, opts ...InspectOption) func() (int, error) {
		return func() (int, error) {
			info, err := InspectLock(ctx, c, path, opts...)
			if err == nil && (info.Nodes == nil || info.Recipe != RecipeNone) {
				return 0, fmt.Errorf("info %+v", info)
			}
			return len(info.Nodes), err
		}
	}
	for _, tc := range []struct {
		name    string
		call    func() (int, error)
		wantErr error // nil: no error and no nodes
		text    string
	}{
		{"nil mutex", nodes((*InterProcessMutex)(nil).Participants, ctx), ErrInvalidArgument, "nil"},
		{"zero mutex", nodes((&InterProcessMutex{}).Participants, ctx), ErrInvalidArgument, "zero"},
		{"mutex with nil client", nodes(NewInterProcessMutex(nil, missing).Participants, ctx), ErrInvalidArgument, "client is nil"},
		{"mutex with bad path", nodes(NewInterProcessMutex(c, "no/slash").Participants, ctx), ErrInvalidArgument, "no/slash"},
		{"mutex with nil context", nodes(NewInterProcessMutex(c, missing).Participants, nilCtx), ErrInvalidArgument, "context is nil"},
		{"nil semaphore", nodes((*Semaphore)(nil).Participants, ctx), ErrInvalidArgument, "nil"},
		{"zero semaphore", nodes((&Semaphore{}).Participants, ctx), ErrInvalidArgument, "zero"},
		{"semaphore of 0", nodes(NewSemaphore(c, missing, 0).Participants, ctx), ErrInvalidArgument, "maxLeases 0"},
		{"nil semaphore mutex", nodes((*SemaphoreMutex)(nil).Participants, ctx), ErrInvalidArgument, "nil"},
		{"nil read-write lock", nodes((*ReadWriteLock)(nil).Participants, ctx), ErrInvalidArgument, "nil"},
		{"zero read-write lock", nodes((&ReadWriteLock{}).Participants, ctx), ErrInvalidArgument, "zero"},
		{"nil latch", nodes((*LeaderLatch)(nil).Nodes, ctx), ErrInvalidArgument, "nil"},
		{"zero latch", nodes((&LeaderLatch{}).Nodes, ctx), ErrInvalidArgument, "zero"},
		{"latch with bad path", nodes(NewLeaderLatch(c, "/a//b").Nodes, ctx), ErrInvalidArgument, "/a//b"},
		{"nil selector", nodes((*LeaderSelector)(nil).Nodes, ctx), ErrInvalidArgument, "nil"},
		{"zero selector", nodes((&LeaderSelector{}).Nodes, ctx), ErrInvalidArgument, "zero"},
		{"missing selector", nodes(NewLeaderSelector(c, missing, func(context.Context) error { return nil }).Nodes, ctx), nil, ""},
		{"inspect with nil client", inspect(nil, missing), ErrInvalidArgument, "client is nil"},
		{"inspect the root", inspect(c, "/"), ErrInvalidArgument, `"/"`},
		{"inspect with maxLeases 0", inspect(c, missing, InspectMaxLeases(0)), ErrInvalidArgument, "maxLeases 0"},
		{"inspect with a nil option", inspect(c, missing, nil), ErrInvalidArgument, "nil InspectOption"},
		{"missing mutex", nodes(NewInterProcessMutex(c, missing).Participants, ctx), nil, ""},
		{"missing semaphore", nodes(NewSemaphore(c, missing, 2).Participants, ctx), nil, ""},
		{"missing semaphore mutex", nodes(NewSemaphoreMutex(c, missing).Participants, ctx), nil, ""},
		{"missing read-write lock", nodes(NewReadWriteLock(c, missing).Participants, ctx), nil, ""},
		{"missing read lock", nodes(NewReadWriteLock(c, missing).ReadLock().Participants, ctx), nil, ""},
		{"missing latch", nodes(NewLeaderLatch(c, missing).Nodes, ctx), nil, ""},
		{"inspect a missing path", inspect(c, missing), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := tc.call()
			if tc.wantErr == nil {
				if err != nil || n != 0 {
					t.Errorf("%d nodes, error %v; want none", n, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(fmt.Sprint(err), tc.text) {
				t.Errorf("error %v, want one wrapping %v and naming %q", err, tc.wantErr, tc.text)
			}
		})
	}
}

// TestInspectLockUnknown checks that children of no recipe make RecipeUnknown, with no nodes, and
// that a read lock's Participants lists its read nodes only, with the holder flags of the whole
// queue.
func TestInspectLockUnknown(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	path := testPath(t, "other")
	if _, err := c.Create(ctx, path+"/config", nil, framework.Persistent, framework.WithParents()); err != nil {
		t.Fatal(err)
	}
	info, err := InspectLock(ctx, c, path)
	if err != nil || info.Recipe != RecipeUnknown || info.Nodes == nil || len(info.Nodes) != 0 {
		t.Errorf("InspectLock: %+v, %v; want RecipeUnknown and no nodes", info, err)
	}

	rwPath := testPath(t, "rw")
	c2 := newClient(t)
	holdNow(t, NewReadWriteLock(c, rwPath).WriteLock().Acquire)
	background(t, one(NewReadWriteLock(c2, rwPath).ReadLock().Acquire))
	waitChildren(t, c, rwPath, 2)
	for _, tc := range []struct {
		lock *InterProcessMutex
		want []wantNode
	}{
		{NewReadWriteLock(c, rwPath).ReadLock(), []wantNode{{NodeReader, 1, false, ""}}},
		{NewReadWriteLock(c, rwPath).WriteLock(), []wantNode{{NodeWriter, 0, true, ""}}},
	} {
		got, err := tc.lock.Participants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkNodes(t, "Participants", got, tc.want, []*framework.Client{c, c2}, rwPath)
	}
}

// TestReadWriteParticipantsSameClientReader checks that a plain read Acquire of the client that
// holds the write lock (one session, another goroutine, no write lease in its context: not a
// downgrade) shows as waiting behind the writer, in ReadWriteLock.Participants and InspectLock:
// only a read node of the writer's session with the writer's sequence (a downgrade) holds.
func TestReadWriteParticipantsSameClientReader(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	path := testPath(t, "rw")
	rw := NewReadWriteLock(c, path)
	holdNow(t, rw.WriteLock().Acquire)

	got := make(chan error, 1)
	background(t, func(ctx context.Context) ([]*Lease, error) {
		l, err := rw.ReadLock().Acquire(ctx) // a plain read, from another goroutine
		got <- err
		if err != nil {
			return nil, err
		}
		return []*Lease{l}, nil
	})
	waitChildren(t, c, path, 2)

	nodes, err := rw.Participants(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		t.Fatalf("the read Acquire returned (%v) while the write lock is held", err)
	default:
	}
	if len(nodes) != 2 || nodes[0].Kind != NodeWriter || nodes[1].Kind != NodeReader {
		t.Fatalf("nodes %+v, want the writer then the reader", nodes)
	}
	if nodes[1].Holds {
		t.Errorf("the reader, whose Acquire is still waiting behind the writer, has Holds true (writer %s seq %d, reader %s seq %d, both session %x)",
			nodes[0].Name, nodes[0].Sequence, nodes[1].Name, nodes[1].Sequence, nodes[1].SessionID)
	}
	info, err := InspectLock(testContext(t, 10*time.Second), c, path)
	if err != nil {
		t.Fatal(err)
	}
	if h := len(info.Holders()); h != 1 {
		t.Errorf("InspectLock: %d holders of a write-locked read-write lock, want 1", h)
	}
}

// TestInspectLockPlainParent checks that InspectLock counts as lock nodes only names with a valid
// sequence suffix: a plain parent of lock paths (<root>/leader, <root>/locks/lock-0, ...), or one
// whose children merely contain a lock name, is RecipeUnknown with no nodes, while a semaphore
// whose locks and leases are empty (no one uses it now) is still a semaphore.
func TestInspectLockPlainParent(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	for _, tc := range []struct {
		name     string
		children []string // persistent, under the path
		want     RecipeKind
	}{
		{"parent of lock paths", []string{"leader", "locks/lock-0", "locks/lock-1"}, RecipeUnknown},
		{"lease paths without sequence", []string{"leases/x-lease-1", "locks"}, RecipeUnknown},
		{"names containing lock-", []string{"my-lock-file", "lock-backup"}, RecipeUnknown},
		{"names containing latch- and __READ__", []string{"a-latch-x", "b__READ__y"}, RecipeUnknown},
		{"idle semaphore", []string{"locks", "leases"}, RecipeSemaphore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t, 10*time.Second)
			root := testPath(t, "root")
			for _, child := range tc.children {
				if _, err := c.Create(ctx, root+"/"+child, nil, framework.Persistent, framework.WithParents()); err != nil {
					t.Fatal(err)
				}
			}
			info, err := InspectLock(ctx, c, root)
			if err != nil {
				t.Fatal(err)
			}
			if info.Recipe != tc.want || len(info.Nodes) != 0 {
				t.Errorf("InspectLock(%s) = %v with %d nodes %+v; want %v, no nodes", root, info.Recipe, len(info.Nodes), info.Nodes, tc.want)
			}
		})
	}
}
