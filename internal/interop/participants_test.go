package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/recipes"
)

// wantNode is what a test expects of one node: its kind, the session that owns it, and whether it
// holds.
type wantNode struct {
	kind    recipes.NodeKind
	session int64
	holds   bool
}

// checkNodes compares got with want, in order; a Curator node's data is its default data, the
// host's address, so every node has an id.
func checkNodes(t *testing.T, what string, got []recipes.LockNode, want []wantNode) {
	t.Helper()
	var b strings.Builder
	for _, n := range got {
		fmt.Fprintf(&b, "\n\t%s %s session %#x holds %v id %q", n.Kind, n.Path, n.SessionID, n.Holds, n.ID())
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d nodes, want %d:%s", what, len(got), len(want), b.String())
	}
	for i, w := range want {
		n := got[i]
		if n.Kind != w.kind || n.SessionID != w.session || n.Holds != w.holds || n.ID() == "" || n.Sequence < 0 {
			t.Errorf("%s: node %d: want %v of session %#x holding %v:%s", what, i, w.kind, w.session, w.holds, b.String())
		}
	}
}

// Curator's nodes, read from Go: a Curator peer holds a mutex, a Go client and another Curator
// peer wait for it; a Curator peer and a Go client hold leases of a semaphore of 2 and another
// Curator peer waits for one. Participants (and InspectLock) report each node's kind, session and
// holder flag in queue order, the waiting Curator acquirer's internal mutex node among them.
func TestParticipantsOfCuratorNodes(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, js []*peer, c *framework.Client, path string)
	}{
		{"mutex", func(t *testing.T, js []*peer, c *framework.Client, path string) {
			ctx := testContext(t, 60*time.Second)
			jnode := js[0].must("mutex.acquire m %s 10000", path)
			m := recipes.NewInterProcessMutex(c, path)
			got := acquireAsync(ctx, m.Acquire)
			testkit.WaitChildren(t, c, path, 2, 30*time.Second)
			js[1].send(fmt.Sprintf("mutex.acquire m %s 30000", path))
			testkit.WaitChildren(t, c, path, 3, 30*time.Second)

			nodes, err := m.Participants(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := []wantNode{{recipes.NodeMutex, js[0].sid, true}, {recipes.NodeMutex, c.SessionID(), false}, {recipes.NodeMutex, js[1].sid, false}}
			checkNodes(t, "Participants", nodes, want)
			if nodes[0].Path != jnode {
				t.Errorf("holder %s, Curator holds with %s", nodes[0].Path, jnode)
			}
			info, err := recipes.InspectLock(ctx, c, path)
			if err != nil || info.Recipe != recipes.RecipeMutex {
				t.Fatalf("InspectLock: %v, %v", info.Recipe, err)
			}
			checkNodes(t, "InspectLock", info.Nodes, want)

			// Hand the lock down the queue: Curator, Go, Curator.
			js[0].must("mutex.release m")
			r := within(t, got, 10*time.Second, "Go Acquire after Curator released")
			if r.err != nil {
				t.Fatal(r.err)
			}
			if err := r.lease.Release(); err != nil {
				t.Fatal(err)
			}
			if a, err := js[1].answer(10 * time.Second); err != nil || !strings.HasPrefix(a, "OK ") {
				t.Fatalf("Curator waiter: %q, %v", a, err)
			}
			js[1].must("mutex.release m")
		}},
		{"semaphore", func(t *testing.T, js []*peer, c *framework.Client, path string) {
			ctx := testContext(t, 60*time.Second)
			jlease := js[0].must("sem.acquire s %s 2 1 10000", path)
			s := recipes.NewSemaphore(c, path, 2)
			mine, err := s.Acquire(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			js[1].send(fmt.Sprintf("sem.acquire s %s 2 1 30000", path))
			testkit.WaitChildren(t, c, path+"/leases", 3, 30*time.Second)

			want := []wantNode{
				{recipes.NodeLease, js[0].sid, true}, {recipes.NodeLease, c.SessionID(), true}, {recipes.NodeLease, js[1].sid, false},
				{recipes.NodeInternalLock, js[1].sid, true},
			}
			nodes, err := s.Participants(ctx)
			if err != nil {
				t.Fatal(err)
			}
			checkNodes(t, "Participants", nodes, want)
			if nodes[0].Name != jlease || nodes[1].Path != mine[0].Node() {
				t.Errorf("lease nodes %s %s; Curator's is %s, Go's %s", nodes[0].Name, nodes[1].Path, jlease, mine[0].Node())
			}
			// Without maxLeases, InspectLock infers that the newest lease waits.
			info, err := recipes.InspectLock(ctx, c, path)
			if err != nil || info.Recipe != recipes.RecipeSemaphore || info.MaxLeases != 0 {
				t.Fatalf("InspectLock: %v %d, %v", info.Recipe, info.MaxLeases, err)
			}
			checkNodes(t, "InspectLock", info.Nodes, want)

			if err := mine[0].Release(); err != nil {
				t.Fatal(err)
			}
			if a, err := js[1].answer(10 * time.Second); err != nil || !strings.HasPrefix(a, "OK ") {
				t.Fatalf("Curator waiter: %q, %v", a, err)
			}
			js[1].must("sem.release s")
			js[0].must("sem.release s")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := startPeers(t, 2)
			tc.run(t, js, newClient(t), testPath(t, "lock"))
		})
	}
}
