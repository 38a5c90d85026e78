//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/recipes"
)

// waitInBackground runs acquire on a goroutine whose context ends with the test (a waiter gives up
// then), and waits for it to return before the test's clients close; what it got is released.
func waitInBackground(t testing.TB, acquire func(ctx context.Context) ([]*recipes.Lease, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if leases, err := acquire(ctx); err == nil {
			for _, l := range leases {
				l.Release()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func oneLease(acquire func(context.Context) (*recipes.Lease, error)) func(context.Context) ([]*recipes.Lease, error) {
	return func(ctx context.Context) ([]*recipes.Lease, error) {
		l, err := acquire(ctx)
		if err != nil {
			return nil, err
		}
		return []*recipes.Lease{l}, nil
	}
}

// TestStatusRecipes checks status of a leader latch, a semaphore with and without --semaphore, and
// a read-write lock, each with holders and waiters of several sessions, against the recipes'
// Participants (or InspectLock, for a semaphore of unknown maxLeases): the recipe, the nodes in
// order, their roles, kinds, ids and sessions, the counts, and the table's header.
func TestStatusRecipes(t *testing.T) {
	dir := t.TempDir()
	servers := testServer.ConnectString()
	cs := make([]*framework.Client, 4)
	for i := range cs {
		cs[i] = newClient(t, framework.WithDefaultData([]byte(fmt.Sprintf("c%d", i))))
	}
	latchPath, semPath, rwPath := testPath(t, "latch"), testPath(t, "sem"), testPath(t, "rw")

	// A leader latch of two.
	for i := range 2 {
		l := recipes.NewLeaderLatch(cs[i], latchPath, recipes.WithParticipantID(fmt.Sprintf("c%d", i)))
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		testkit.WaitChildren(t, cs[0], latchPath, i+1, 20*time.Second)
	}
	// A semaphore of 2: two leases held, a third acquirer waits for one.
	for i := range 2 {
		t.Cleanup(holdLeases(t, recipes.NewSemaphore(cs[i], semPath, 2), 1))
	}
	waitInBackground(t, func(ctx context.Context) ([]*recipes.Lease, error) {
		return recipes.NewSemaphore(cs[2], semPath, 2).Acquire(ctx, 1)
	})
	testkit.WaitChildren(t, cs[0], semPath+"/leases", 3, 20*time.Second)
	// A read-write lock: two readers hold, a writer waits, and a reader behind it.
	for i := range 2 {
		t.Cleanup(holdLock(t, recipes.NewReadWriteLock(cs[i], rwPath).ReadLock()))
	}
	waitInBackground(t, oneLease(recipes.NewReadWriteLock(cs[2], rwPath).WriteLock().Acquire))
	testkit.WaitChildren(t, cs[0], rwPath, 3, 20*time.Second)
	waitInBackground(t, oneLease(recipes.NewReadWriteLock(cs[3], rwPath).ReadLock().Acquire))
	testkit.WaitChildren(t, cs[0], rwPath, 4, 20*time.Second)

	ctx := testContext(t, 30*time.Second)
	inspect := func(path string) func() ([]recipes.LockNode, error) {
		return func() ([]recipes.LockNode, error) {
			info, err := recipes.InspectLock(ctx, cs[0], path)
			return info.Nodes, err
		}
	}
	for _, tc := range []struct {
		name      string
		flags     []string
		path      string
		nodes     func() ([]recipes.LockNode, error) // what status must show
		kind      string
		maxLeases int
		roles     []string
		kinds     []string
		header    string
	}{
		{
			name: "leader latch", path: latchPath,
			nodes: func() ([]recipes.LockNode, error) { return recipes.NewLeaderLatch(cs[0], latchPath).Nodes(ctx) },
			kind:  "leader latch", roles: []string{"leader", "waiter"}, kinds: []string{"latch", "latch"},
			header: "leader latch, 1 holder, 1 waiter",
		},
		{
			name: "semaphore with --semaphore", flags: []string{"--semaphore", "2"}, path: semPath,
			nodes: func() ([]recipes.LockNode, error) { return recipes.NewSemaphore(cs[0], semPath, 2).Participants(ctx) },
			kind:  "semaphore", maxLeases: 2,
			roles:  []string{"holder", "holder", "waiter", "acquiring"},
			kinds:  []string{"lease", "lease", "lease", "internal-lock"},
			header: "semaphore of 2 leases, 2 holders, 1 waiter",
		},
		{
			name: "semaphore without --semaphore", path: semPath, nodes: inspect(semPath),
			kind:   "semaphore",
			roles:  []string{"holder", "holder", "waiter", "acquiring"},
			kinds:  []string{"lease", "lease", "lease", "internal-lock"},
			header: "semaphore, 2 holders, 1 waiter",
		},
		{
			name: "read-write lock", path: rwPath,
			nodes: func() ([]recipes.LockNode, error) { return recipes.NewReadWriteLock(cs[0], rwPath).Participants(ctx) },
			kind:  "read-write lock", roles: []string{"holder", "holder", "waiter", "waiter"},
			kinds:  []string{"reader", "reader", "writer", "reader"},
			header: "read-write lock, 2 holders, 2 waiters",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := tc.nodes()
			if err != nil {
				t.Fatal(err)
			}
			code, out, stderr := zklock(t, dir, args("status", servers, append(slices.Clone(tc.flags), "--json", tc.path)...)...)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var r report
			dec := json.NewDecoder(strings.NewReader(out))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&r); err != nil {
				t.Fatalf("%v in %s", err, out)
			}
			var roles, kinds []string
			holders, waiters := 0, 0
			for _, p := range r.Participants {
				roles, kinds = append(roles, p.Role), append(kinds, p.Kind)
				switch p.Role {
				case "holder", "leader":
					holders++
				case "waiter":
					waiters++
				}
			}
			if r.Schema != 1 || r.Path != tc.path || r.Kind != tc.kind || r.MaxLeases != tc.maxLeases ||
				r.Holders != holders || r.Waiters != waiters || !slices.Equal(roles, tc.roles) || !slices.Equal(kinds, tc.kinds) {
				t.Errorf("report schema %d path %s kind %q max_leases %d holders %d waiters %d roles %v kinds %v; want kind %q max_leases %d roles %v kinds %v",
					r.Schema, r.Path, r.Kind, r.MaxLeases, r.Holders, r.Waiters, roles, kinds, tc.kind, tc.maxLeases, tc.roles, tc.kinds)
			}
			if len(r.Participants) != len(want) {
				t.Fatalf("%d participants, want %d: %+v", len(r.Participants), len(want), r.Participants)
			}
			for i, n := range want {
				p := r.Participants[i]
				if p.Node != n.Path || p.Name != n.Name || p.Sequence != n.Sequence || p.Holds != n.Holds ||
					p.ID != n.ID() || p.Session != sessionHex(n.SessionID) || !p.Created.Equal(n.Created) || p.Kind != n.Kind.String() {
					t.Errorf("participant %d: %+v, want %+v", i, p, n)
				}
				if p.AgeSeconds < -1 || p.AgeSeconds > 60 {
					t.Errorf("participant %d: age %v", i, p.AgeSeconds)
				}
			}

			code, out, _ = zklock(t, dir, args("status", servers, append(slices.Clone(tc.flags), tc.path)...)...)
			if code != exitOK || !strings.Contains(out, tc.path+": "+tc.header+"\n") {
				t.Errorf("exit %d, table lacks %q:\n%s", code, tc.header, out)
			}
			for _, p := range r.Participants {
				if !strings.Contains(out, p.Name) {
					t.Errorf("table lacks %s:\n%s", p.Name, out)
				}
			}
		})
	}
}

// TestStatusJSONSchema checks that status --json prints exactly the documented fields, of the
// documented types, for a path with nodes and for a missing one; and that the help documents each.
func TestStatusJSONSchema(t *testing.T) {
	dir := t.TempDir()
	servers := testServer.ConnectString()
	c := newClient(t, framework.WithDefaultData([]byte("holder-id")))
	path := testPath(t, "lock")
	t.Cleanup(holdLock(t, recipes.NewInterProcessMutex(c, path)))
	top := []string{"schema", "path", "kind", "max_leases", "holders", "waiters", "participants"}
	node := []string{"role", "kind", "node", "name", "sequence", "holds", "id", "session", "created", "age_seconds"}
	_, help, _ := zklock(t, dir, "help")
	for _, f := range append(slices.Clone(top), node...) {
		if !strings.Contains(help, "  "+f+" ") {
			t.Errorf("help does not document the field %q", f)
		}
	}
	for _, tc := range []struct {
		path  string
		nodes int
	}{
		{path, 1},
		{testPath(t, "missing"), 0},
	} {
		code, out, stderr := zklock(t, dir, args("status", servers, "--json", tc.path)...)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v in %s", err, out)
		}
		if got := slices.Sorted(maps.Keys(r)); !slices.Equal(got, slices.Sorted(slices.Values(top))) {
			t.Errorf("fields %v, want %v", got, top)
		}
		for _, f := range []string{"schema", "max_leases", "holders", "waiters"} {
			if _, ok := r[f].(float64); !ok {
				t.Errorf("%s is %T, want a number", f, r[f])
			}
		}
		ps, ok := r["participants"].([]any)
		if !ok || len(ps) != tc.nodes {
			t.Fatalf("participants %v, want %d", r["participants"], tc.nodes)
		}
		for _, p := range ps {
			m, _ := p.(map[string]any)
			if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, slices.Sorted(slices.Values(node))) {
				t.Errorf("participant fields %v, want %v", got, node)
			}
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["created"])); err != nil {
				t.Errorf("created: %v", err)
			}
			if m["role"] != "holder" || m["kind"] != "mutex" || m["holds"] != true || m["id"] != "holder-id" ||
				m["session"] != sessionHex(c.SessionID()) {
				t.Errorf("participant %v", m)
			}
		}
		if !bytes.Contains([]byte(out), []byte(`"schema": 1`)) {
			t.Errorf("no schema 1 in %s", out)
		}
	}
}
