package framework

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// protectedName matches Curator's protected names: "_c_", a version 4 UUID as Java prints it,
// "-", then the name.
var protectedName = regexp.MustCompile(`^_c_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-`)

func TestProtectedNameHelpers(t *testing.T) {
	tests := []struct {
		name      string
		protected bool
		stripped  string
	}{
		{"_c_2b1e5a5e-6c4e-4b43-9f1c-1d2a3b4c5d6e-lock-0000000001", true, "lock-0000000001"},
		{"_c_2B1E5A5E-6C4E-4B43-9F1C-1D2A3B4C5D6E-x", true, "x"},
		{"_c_2b1e5a5e-6c4e-4b43-9f1c-1d2a3b4c5d6e-", false, "_c_2b1e5a5e-6c4e-4b43-9f1c-1d2a3b4c5d6e-"}, // nothing after the prefix
		{"_c_2b1e5a5e-6c4e-4b43-9f1c-1d2a3b4c5d6eXlock", false, "_c_2b1e5a5e-6c4e-4b43-9f1c-1d2a3b4c5d6eXlock"},
		{"_c_2b1e5a5e_6c4e-4b43-9f1c-1d2a3b4c5d6e-lock", false, "_c_2b1e5a5e_6c4e-4b43-9f1c-1d2a3b4c5d6e-lock"},
		{"_c_zb1e5a5e-6c4e-4b43-9f1c-1d2a3b4c5d6e-lock", false, "_c_zb1e5a5e-6c4e-4b43-9f1c-1d2a3b4c5d6e-lock"},
		{"lock-0000000001", false, "lock-0000000001"},
		{"", false, ""},
	}
	for _, tt := range tests {
		if got := IsProtectedName(tt.name); got != tt.protected {
			t.Errorf("IsProtectedName(%q) = %v, want %v", tt.name, got, tt.protected)
		}
		if got := StripProtectedPrefix(tt.name); got != tt.stripped {
			t.Errorf("StripProtectedPrefix(%q) = %q, want %q", tt.name, got, tt.stripped)
		}
	}
	seen := map[string]bool{}
	for range 100 {
		u := newUUID()
		if !protectedName.MatchString(ProtectedPrefix + u + "-x") {
			t.Fatalf("newUUID() = %q, not a version 4 UUID in Java's form", u)
		}
		if seen[u] {
			t.Fatalf("newUUID() repeated %q", u)
		}
		seen[u] = true
	}
}

// TestProtectedCreateNames creates protected nodes in every mode: each name is Curator's.
func TestProtectedCreateNames(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	base := testPath(t)
	for _, mode := range []CreateMode{Persistent, PersistentSequential, Ephemeral, EphemeralSequential, Container} {
		t.Run(mode.String(), func(t *testing.T) {
			got, err := c.Create(testContext(t, 10*time.Second), base+"/"+mode.String()+"/lock-", nil, mode, WithProtection(), WithParents())
			if err != nil {
				t.Fatal(err)
			}
			parent, name := SplitPath(got.Path)
			if parent != base+"/"+mode.String() {
				t.Errorf("parent of %q = %q", got.Path, parent)
			}
			want := "lock-"
			if mode == PersistentSequential || mode == EphemeralSequential {
				want = `lock-\d{10}`
			}
			if !regexp.MustCompile(protectedName.String() + want + "$").MatchString(name) {
				t.Errorf("name %q does not match _c_<uuid>-%s", name, want)
			}
			if !IsProtectedName(name) || !strings.HasPrefix(StripProtectedPrefix(name), "lock-") {
				t.Errorf("IsProtectedName(%q) = %v, StripProtectedPrefix = %q", name, IsProtectedName(name), StripProtectedPrefix(name))
			}
			if len(name) != 40+len("lock-")+map[bool]int{true: 10}[mode == PersistentSequential || mode == EphemeralSequential] {
				t.Errorf("name %q has length %d", name, len(name))
			}
			if mode.IsEphemeral() != (got.SessionID != 0) || (got.SessionID != 0 && got.SessionID != c.SessionID()) {
				t.Errorf("Created.SessionID = %x for %v (session %x)", got.SessionID, mode, c.SessionID())
			}
			if !exists(t, c, got.Path) {
				t.Errorf("%s does not exist", got.Path)
			}
		})
	}
}

// TestProtectedCreateCut cuts the connection right after the create request reaches the
// server, so the server makes the node and the client never hears of it. A protected create
// finds its node again after the reconnect: exactly one node exists, the one returned. The
// control case shows that without protection the retried create makes a second node.
func TestProtectedCreateCut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode      CreateMode
		protected bool
		wantNodes int
	}{
		{EphemeralSequential, true, 1},
		{PersistentSequential, true, 1},
		{Ephemeral, true, 1},
		{EphemeralSequential, false, 2}, // control: an orphan
	}
	for _, tt := range tests {
		name := tt.mode.String()
		if !tt.protected {
			name += " unprotected"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := testServer.Proxy(t)
			rec := newRecorder()
			c := newClient(t, p.Addr(), rec)
			sid := c.SessionID()
			parent := testPath(t)
			mustCreate(t, c, parent, nil)
			var opts []CreateOption
			if tt.protected {
				opts = append(opts, WithProtection())
			}
			cut := p.CutAfterNextCreate()
			got, err := c.Create(testContext(t, 20*time.Second), parent+"/lock-", nil, tt.mode, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if !isClosed(cut) {
				t.Fatal("the create went through without the cut")
			}
			rec.expect(t, 5*time.Second, Connected, Suspended, Reconnected)
			names := childrenWithPrefix(t, c, parent, "")
			if len(names) != tt.wantNodes {
				t.Fatalf("%d nodes after the cut create, want %d: %v", len(names), tt.wantNodes, names)
			}
			if !slices.Contains(names, strings.TrimPrefix(got.Path, parent+"/")) {
				t.Errorf("returned %s, not among %v", got.Path, names)
			}
			if tt.protected && got.Path != parent+"/"+names[0] {
				t.Errorf("returned %s, the node is %s", got.Path, names[0])
			}
			if tt.mode.IsEphemeral() {
				_, st, err := c.Get(testContext(t, 10*time.Second), got.Path)
				if err != nil {
					t.Fatal(err)
				}
				if got.SessionID != sid || st.EphemeralOwner != sid || c.SessionID() != sid {
					t.Errorf("Created.SessionID %x, owner %x, client session %x; want all %x", got.SessionID, st.EphemeralOwner, c.SessionID(), sid)
				}
			}
		})
	}
}

// TestProtectedCreateAbandoned abandons protected creates (their context ends) at points where
// the server may have made the node: each such node is deleted in the background once the
// connection is back.
func TestProtectedCreateAbandoned(t *testing.T) {
	t.Parallel()
	t.Run("cut", func(t *testing.T) {
		t.Parallel()
		// The server makes the node, the connection is cut before the reply, and the context
		// ends while the client waits to reconnect.
		p := testServer.Proxy(t)
		gate := &dialGate{}
		c := newClient(t, p.Addr(), nil, WithDialer(gate.dial))
		watcher := newClient(t, "", nil)
		parent := testPath(t)
		mustCreate(t, c, parent, nil)
		gate.shut.Store(true) // no reconnect until the context has ended
		cut := p.CutAfterNextCreate()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := c.Create(ctx, parent+"/lock-", nil, PersistentSequential, WithProtection())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Create = %v, want DeadlineExceeded", err)
		}
		if !isClosed(cut) {
			t.Fatal("the create was not cut")
		}
		// The server did make it.
		if names := childrenWithPrefix(t, watcher, parent, ProtectedPrefix); len(names) != 1 {
			t.Fatalf("protected nodes on the server after the cut: %v, want 1", names)
		}
		if n := c.PendingDeletes(); n != 1 {
			t.Errorf("PendingDeletes() = %d, want 1 (the clean-up)", n)
		}
		gate.shut.Store(false)
		eventually(t, 10*time.Second, "the clean-up", func() bool { return c.PendingDeletes() == 0 })
		if names := childrenWithPrefix(t, watcher, parent, ""); len(names) != 0 {
			t.Errorf("nodes left after an abandoned protected create: %v", names)
		}
	})
	t.Run("blackhole", func(t *testing.T) {
		t.Parallel()
		// The context ends while the connection is partitioned.
		rec := newRecorder()
		n := newProxiedNode(t, rec)
		p, c, watcher, parent := n.p, n.c, n.watcher, n.path
		p.Blackhole(true)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := c.Create(ctx, parent+"/lock-", nil, EphemeralSequential, WithProtection())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Create = %v, want DeadlineExceeded", err)
		}
		rec.expect(t, 5*time.Second, Connected, Suspended)
		p.Blackhole(false)
		// Reconnected, in the same session or (if the server expired it meanwhile) a new one.
		rec.waitState(t, 2, Reconnected, 10*time.Second)
		eventually(t, 10*time.Second, "the clean-up", func() bool { return c.PendingDeletes() == 0 })
		if names := childrenWithPrefix(t, watcher, parent, ""); len(names) != 0 {
			t.Errorf("nodes left after an abandoned protected create: %v", names)
		}
	})
}

// TestProtectedCreateEndedSession is Curator's testProtectionWithKilledSession (CURATOR-498):
// the server makes a protected ephemeral node, the client does not hear of it, and the session
// ends before the client is back. The create must return a node of the new session, never the
// old session's, and leave only that one.
//
// In "found alive" the client gives its session up while the server still keeps it: the client
// asks for a 100ms session timeout, the server grants no less than 400ms (two ticks), and the
// client's own timer goes by the shorter. So the retry finds the old session's node still there
// (CURATOR-498's case) and must not take it. In "expired" the client stays away until the server
// has expired the session, so the retry finds nothing and creates anew.
func TestProtectedCreateEndedSession(t *testing.T) {
	t.Parallel()
	for _, foundAlive := range []bool{true, false} {
		name := "expired"
		if foundAlive {
			name = "found alive"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := testServer.Proxy(t)
			rec := newRecorder()
			core, logs := observer.New(zapcore.InfoLevel)
			gate := &dialGate{}
			opts := []Option{WithLogger(zap.New(core)), WithDialer(gate.dial)}
			if foundAlive {
				opts = append(opts, WithSessionTimeout(100*time.Millisecond))
			}
			c := newClient(t, p.Addr(), rec, opts...)
			watcher := newClient(t, "", nil)
			sid := c.SessionID()
			parent := testPath(t)
			mustCreate(t, c, parent, nil)

			gate.shut.Store(foundAlive)
			cut := p.CutAfterNextCreate()
			created := goProtectedCreate(t, c, parent+"/lock-", EphemeralSequential)
			waitClosed(t, cut, 10*time.Second, "the cut")
			if foundAlive {
				// Keep the client away until its own timer has given the session up (it would
				// reconnect within milliseconds, long before that).
				rec.expect(t, 10*time.Second, Connected, Suspended, Lost)
				gate.shut.Store(false)
			}
			if !foundAlive {
				// Keep the client away until it has given the session up, and the server too.
				p.Blackhole(true)
				rec.expect(t, 10*time.Second, Connected, Suspended, Lost)
				eventually(t, 10*time.Second, "the server to expire the old session", func() bool {
					return len(childrenWithPrefix(t, watcher, parent, ProtectedPrefix)) == 0
				})
				p.Blackhole(false)
			}
			made, err := created()
			if err != nil {
				t.Fatal(err)
			}
			rec.expect(t, 10*time.Second, Connected, Suspended, Lost, Reconnected)
			sid2 := c.SessionID()
			if sid2 == sid || sid2 == 0 {
				t.Fatalf("session %x after the loss, want a new one (old %x)", sid2, sid)
			}
			// With a 400 ms session the client presumes its session lost while the server may still
			// keep it for up to a tick: whether the retry meets the old node then depends on timing
			// (TestProtectedCreateTryFindsNode forces that branch). A node of a session the server
			// has expired can never be met.
			foundOld := logs.FilterMessage("protected node of an ended session found, deleting it").Len() > 0
			if foundOld && !foundAlive {
				t.Errorf("the retry found the node of a session the server had expired")
			}
			t.Logf("the retry met the old session's node: %v", foundOld)
			if made.SessionID != sid2 {
				t.Errorf("Created.SessionID = %x, want the new session %x (old %x)", made.SessionID, sid2, sid)
			}
			_, st, err := watcher.Get(testContext(t, 10*time.Second), made.Path)
			if err != nil {
				t.Fatalf("the returned node %s: %v", made.Path, err)
			}
			if st.EphemeralOwner != sid2 {
				t.Errorf("returned node owned by %x, want the new session %x (old %x)", st.EphemeralOwner, sid2, sid)
			}
			_, name := SplitPath(made.Path)
			eventually(t, 10*time.Second, "only the new session's node", func() bool {
				return slices.Equal(childrenWithPrefix(t, watcher, parent, ""), []string{name})
			})
		})
	}
}

// TestDeleteGuaranteed deletes a node while the connection is partitioned: DeleteGuaranteed
// hands the delete to the background and returns nil; the node goes once the partition ends.
func TestDeleteGuaranteed(t *testing.T) {
	t.Parallel()
	n := newProxiedNode(t, nil)
	n.deleteBehindPartition(t, 300*time.Millisecond)
	if !exists(t, n.watcher, n.path) {
		t.Fatal("node deleted through a partition")
	}
	healed := n.healAndWantDeleted(t)
	t.Logf("background delete done %v after the partition ended", time.Since(healed))
}

func TestDeleteGuaranteedOutcomes(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	ctx := testContext(t, 10*time.Second)
	base := testPath(t)
	mustCreate(t, c, base+"/child", nil)
	if err := c.DeleteGuaranteed(ctx, base+"/missing"); err != nil {
		t.Errorf("DeleteGuaranteed(missing) = %v, want nil", err)
	}
	if err := c.DeleteGuaranteed(ctx, base); !errors.Is(err, zk.ErrNotEmpty) {
		t.Errorf("DeleteGuaranteed(not empty) = %v, want ErrNotEmpty", err)
	}
	if err := c.DeleteGuaranteed(ctx, base+"/child"); err != nil {
		t.Errorf("DeleteGuaranteed = %v", err)
	}
	if err := c.DeleteGuaranteed(ctx, "relative"); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("DeleteGuaranteed(relative) = %v, want ErrInvalidArgument", err)
	}
	if n := c.PendingDeletes(); n != 0 {
		t.Errorf("PendingDeletes() = %d, want 0", n)
	}
	if exists(t, c, base+"/child") {
		t.Error("node not deleted")
	}
	mustCreate(t, c, base+"/bg", nil)
	c.DeleteInBackground(base + "/bg")
	c.DeleteInBackground("not a path") // ignored
	eventually(t, 10*time.Second, "DeleteInBackground", func() bool { return !exists(t, c, base+"/bg") })
	eventually(t, 10*time.Second, "no pending deletes", func() bool { return c.PendingDeletes() == 0 })
}

// TestCloseStopsDeleter closes a client with a background delete pending: Close returns, the
// worker stops (goleak checks it at the end) and drops the job.
func TestCloseStopsDeleter(t *testing.T) {
	t.Parallel()
	n := newProxiedNode(t, nil)
	p, c, watcher, path := n.p, n.c, n.watcher, n.path
	n.deleteBehindPartition(t, 200*time.Millisecond)
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	t.Logf("Close with a pending delete on a partitioned connection took %v", time.Since(start))
	if pending := c.PendingDeletes(); pending != 0 {
		t.Errorf("PendingDeletes() = %d after Close, want 0", pending)
	}
	p.Blackhole(false)
	if !exists(t, watcher, path) {
		t.Error("the node was deleted though the client closed while partitioned")
	}
}
