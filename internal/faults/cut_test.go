package faults

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// TestCutAfterCreate cuts a client's connection right after each kind of create the recipes make
// (the ensemble performs the create, but its reply never reaches the client). The client
// reconnects with its session, finds the node it made (protected mode) and takes the lock with
// it: no second node, no orphan. A client that then waits for the lock gets it only once the
// first lets go, and afterwards nothing is left.
func TestCutAfterCreate(t *testing.T) {
	e := startEnsemble(t)
	admin := newSession(t, e, "admin", direct)
	for _, tc := range []struct {
		name  string
		match string // in the path of the create to cut
		kind  lockKind
		rival lockKind // what another client waits for meanwhile, if anything
	}{
		{"mutex lock node", "-lock-", mutexKind, mutexKind},
		{"read lock node", "__READ__", readKind, writeKind},
		{"write lock node", "__WRIT__", writeKind, writeKind},
		{"semaphore internal lock node", "/locks/", semaphoreMutexKind, semaphoreMutexKind},
		{"semaphore lease node", "/leases/", semaphoreMutexKind, semaphoreMutexKind},
		{"semaphore of 2 lease node", "/leases/", semaphore2Kind, lockKind{}},
		{"leader latch node", "latch-", lockKind{name: "leader latch"}, lockKind{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/cut/" + strings.ReplaceAll(tc.name, " ", "-")
			ctx := testContext(t, time.Minute)
			// With the parents there, the cut create is the one that makes the node.
			for _, p := range []string{path, path + "/locks", path + "/leases"} {
				if _, err := admin.c.Create(ctx, p, nil, framework.Persistent, framework.WithParents()); err != nil {
					t.Fatal(err)
				}
			}
			tr := newCreateTrap(tc.match)
			cfg := proxied
			cfg.dialer = tr.dial
			s := newSession(t, e, "cut", cfg)
			tr.attach(s.ep)
			sid, mark := s.c.SessionID(), s.states.mark()

			var node string
			var release func() error
			if tc.kind.acquire == nil {
				l := recipes.NewLeaderLatch(s.c, path)
				if err := l.Start(); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				if err := l.Await(ctx); err != nil {
					t.Fatal(err)
				}
				node, release = l.OurPath(), l.Close
			} else {
				lease, err := tc.kind.acquire(s.c, path)(ctx)
				if err != nil {
					t.Fatalf("Acquire with its create cut: %v", err)
				}
				node, release = lease.Node(), lease.Release
				if lease.Err() != nil {
					t.Errorf("lease ended at once: %v", lease.Err())
				}
			}
			select {
			case <-tr.armed:
			default:
				t.Fatalf("no create matching %q was made", tc.match)
			}
			select {
			case <-tr.cutDone():
			case <-time.After(waitTimeout):
				t.Fatalf("the create was not cut")
			}
			if !slices.Contains(s.states.since(mark), framework.Suspended) {
				t.Errorf("states %v; want the connection lost after the cut", s.states.since(mark))
			}
			if s.c.SessionID() != sid {
				t.Errorf("session 0x%x after the cut; want 0x%x", s.c.SessionID(), sid)
			}
			// The cut create made its node, and the holder took the lock with that very node,
			// or (for the semaphore's internal lock) went on with it and deleted it.
			cut := tr.path()
			nodes, err := nodesUnder(ctx, admin.c, path, "leases", "locks")
			if err != nil {
				t.Fatal(err)
			}
			if tc.match == "/locks/" {
				if len(nodes) != 1 || nodes[0] != node || strings.Contains(node, "/locks/") {
					t.Errorf("nodes %v; want only the lease node %s", nodes, node)
				}
				if !strings.HasPrefix(strings.TrimPrefix(cut, "/"), strings.TrimPrefix(path, "/")+"/locks/") {
					t.Errorf("the cut create was %s; want the internal lock node", cut)
				}
			} else {
				if len(nodes) != 1 || nodes[0] != node {
					t.Errorf("nodes %v; want only the holder's node %s", nodes, node)
				}
				if !strings.HasPrefix(node, cut) {
					t.Errorf("holder's node %s was not made by the cut create %s", node, cut)
				}
			}
			var w *waiter
			if tc.rival.acquire != nil {
				other := newSession(t, e, "rival", direct)
				w = startWaiter(ctx, "rival", other, tc.rival, path, newMonitor(), &grants{}, holdFor(0))
				eventually(t, waitTimeout, "the rival queued", func() bool {
					n, _ := nodesUnder(ctx, admin.c, path, "leases", "locks")
					return len(n) > len(nodes)
				})
				pause(ctx, 200*time.Millisecond)
				if w.finished() {
					t.Fatalf("the rival got the lock while it was held (err %v)", w.err)
				}
			}
			if err := release(); err != nil {
				t.Errorf("release: %v", err)
			}
			if w != nil {
				select {
				case <-w.done:
					if w.err != nil {
						t.Errorf("rival: %v", w.err)
					}
				case <-time.After(waitTimeout):
					t.Fatalf("the rival did not get the lock after it was released")
				}
			}
			noPendingDeletes(t, waitTimeout, s)
			noNodesLeft(t, admin.c, waitTimeout, path)
		})
	}
}
