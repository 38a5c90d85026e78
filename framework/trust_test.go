package framework

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// TestDeleteGuaranteedNeverWaits deletes a node while the proxy swallows everything: before the
// client notices (the one try goes out and is bounded by the 500ms ctx), after it has noticed (no
// try: the node goes to the background at once, whatever the ctx), and with no deadline at all
// before it notices (the try ends when the connection drops). Each time DeleteGuaranteed returns
// nil in time, and the node is gone once the connection is back.
func TestDeleteGuaranteedNeverWaits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		noticed bool          // wait for Suspended before the delete
		timeout time.Duration // the delete's ctx, 0 for none
		within  time.Duration
	}{
		{"not yet noticed", false, 500 * time.Millisecond, 600 * time.Millisecond},
		{"suspended", true, 500 * time.Millisecond, 100 * time.Millisecond},
		{"suspended no deadline", true, 0, 100 * time.Millisecond},
		// go-zookeeper notices the silence after two thirds of the session timeout.
		{"not yet noticed no deadline", false, 0, testSessionTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := newRecorder()
			n := newProxiedNode(t, rec)
			p, c, path := n.p, n.c, n.path
			p.Blackhole(true)
			if tt.noticed {
				rec.waitState(t, 1, Suspended, 10*time.Second)
			}
			ctx := deadlineOrNone(t, tt.timeout)
			start := time.Now()
			err := c.DeleteGuaranteed(ctx, path)
			d := time.Since(start)
			if err != nil {
				t.Fatalf("DeleteGuaranteed = %v, want nil", err)
			}
			if d > tt.within {
				t.Errorf("DeleteGuaranteed took %v, want at most %v", d, tt.within)
			}
			t.Logf("DeleteGuaranteed returned after %v", d)
			if pending := c.PendingDeletes(); pending != 1 {
				t.Errorf("PendingDeletes() = %d, want 1", pending)
			}
			n.healAndWantDeleted(t)
		})
	}
}

// TestDeleteGuaranteedClosedAndUnstarted: errors, not background deletes.
func TestDeleteGuaranteedClosedAndUnstarted(t *testing.T) {
	t.Parallel()
	c, err := NewClient(testServer.ConnectString())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteGuaranteed(context.Background(), "/x"); !errors.Is(err, ErrNotStarted) {
		t.Errorf("DeleteGuaranteed before Start = %v, want ErrNotStarted", err)
	}
	c.Close()
	if err := c.DeleteGuaranteed(context.Background(), "/x"); !errors.Is(err, ErrClosed) {
		t.Errorf("DeleteGuaranteed after Close = %v, want ErrClosed", err)
	}
}

// signalPolicy retries once after sleep, and says on ch when it is asked (the sleep begins).
type signalPolicy struct {
	ch    chan struct{}
	sleep time.Duration
}

func (p signalPolicy) Next(retries int, _ time.Duration) (time.Duration, bool) {
	select {
	case p.ch <- struct{}{}:
	default:
	}
	return p.sleep, retries < 1
}

// TestCloseEndsRetrySleep closes the client while an operation sleeps between two tries (its
// create was cut): the operation returns ErrClosed at once, not after the sleep.
func TestCloseEndsRetrySleep(t *testing.T) {
	t.Parallel()
	for _, protected := range []bool{false, true} {
		name := "plain"
		var opts []CreateOption
		if protected {
			name = "protected"
			opts = append(opts, WithProtection())
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := testServer.Proxy(t)
			pol := signalPolicy{ch: make(chan struct{}, 1), sleep: 20 * time.Second}
			c := newClient(t, p.Addr(), nil, WithRetryPolicy(pol))
			parent := testPath(t)
			mustCreate(t, c, parent, nil)
			p.CutAfterNextCreate()
			errc := make(chan error, 1)
			go func() {
				_, err := c.Create(context.Background(), parent+"/n-", nil, PersistentSequential, opts...)
				errc <- err
			}()
			select {
			case <-pol.ch:
			case err := <-errc:
				t.Fatalf("Create returned %v before it was retried", err)
			case <-time.After(10 * time.Second):
				t.Fatal("the create was not retried")
			}
			start := time.Now()
			c.Close()
			select {
			case err := <-errc:
				if !errors.Is(err, ErrClosed) {
					t.Errorf("Create cut short by Close = %v, want ErrClosed", err)
				}
				if errors.Is(err, context.Canceled) {
					t.Errorf("Create cut short by Close = %v, which claims the caller's context ended", err)
				}
				t.Logf("Create returned %v after Close", time.Since(start))
			case <-time.After(2 * time.Second):
				t.Fatal("Create still sleeping 2s after Close")
			}
		})
	}
}

// TestProtectedCreateAfterLost is a protected ephemeral create issued while the client has no
// session (so no session id to go by), that goes out on the next session and is cut: the retry, on
// that same session, must take the node the first try made, not delete it and fail with NodeExists
// making it again.
func TestProtectedCreateAfterLost(t *testing.T) {
	t.Parallel()
	for _, mode := range []CreateMode{Ephemeral, EphemeralSequential} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			p := testServer.Proxy(t)
			rec := newRecorder()
			c := newClient(t, p.Addr(), rec, WithConnectionTimeout(300*time.Millisecond))
			watcher := newClient(t, "", nil)
			parent := testPath(t)
			mustCreate(t, c, parent, nil)
			p.Blackhole(true)
			rec.waitState(t, 1, Lost, 15*time.Second)
			created := goProtectedCreate(t, c, parent+"/rw", mode)
			// The create waits for a session; the first create sent on the next one is cut.
			cut := p.CutAfterNextCreate()
			p.Blackhole(false)
			waitClosed(t, cut, 15*time.Second, "the cut")
			made, err := created()
			if err != nil {
				t.Fatalf("protected create after the cut: %v", err)
			}
			sid := c.SessionID()
			if made.SessionID != sid || sid == 0 {
				t.Errorf("Created.SessionID = %x, the client's session %x", made.SessionID, sid)
			}
			_, st, err := watcher.Get(testContext(t, 10*time.Second), made.Path)
			if err != nil {
				t.Fatalf("the returned node: %v", err)
			}
			if st.EphemeralOwner != sid {
				t.Errorf("node owned by %x, want %x", st.EphemeralOwner, sid)
			}
			_, name := SplitPath(made.Path)
			// Nothing pending may remove it later.
			eventually(t, 10*time.Second, "no pending deletes", func() bool { return c.PendingDeletes() == 0 })
			if got := childrenWithPrefix(t, watcher, parent, ""); !slices.Equal(got, []string{name}) {
				t.Errorf("nodes %v, want only %s", got, name)
			}
		})
	}
}

// TestProtectedCreateTryFindsNode forces the interleavings that a held reply makes: a try of a
// protected create meets a node with its own prefix, made by an earlier try.
func TestProtectedCreateTryFindsNode(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	other := newClient(t, "", nil)
	acl := zk.WorldACL(zk.PermAll)
	tests := []struct {
		name     string
		mode     CreateMode
		try      int
		earlier  []CreateMode // nodes made before, with the create's prefix
		byOther  bool         // made by another session (one that has ended, for the create)
		wantKept int          // which earlier node the create returns, -1 for a new one
	}{
		{"ephemeral ours", Ephemeral, 1, []CreateMode{Ephemeral}, false, 0},
		{"ephemeral ours retry", Ephemeral, 2, []CreateMode{Ephemeral}, false, 0},
		{"ephemeral ended session", Ephemeral, 1, []CreateMode{Ephemeral}, true, -1},
		{"ephemeral ended session retry", Ephemeral, 2, []CreateMode{Ephemeral}, true, -1},
		{"persistent", Persistent, 1, []CreateMode{Persistent}, false, 0},
		{"persistent by another client", Persistent, 2, []CreateMode{Persistent}, true, 0},
		{"sequential ended session", EphemeralSequential, 2, []CreateMode{EphemeralSequential}, true, -1},
		{"sequential twice", EphemeralSequential, 2, []CreateMode{EphemeralSequential, EphemeralSequential}, false, 0},
		{"persistent sequential twice", PersistentSequential, 2, []CreateMode{PersistentSequential, PersistentSequential}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := testPath(t)
			mustCreate(t, c, parent, nil)
			sp := c.serverPath(parent)
			prefix := ProtectedPrefix + newUUID() + "-"
			full := JoinPath(sp, prefix+"rw-")
			maker := c
			if tt.byOther {
				maker = other
			}
			c.mu.Lock()
			conn := c.conn
			c.mu.Unlock()
			maker.mu.Lock()
			mconn := maker.conn
			maker.mu.Unlock()
			var earlier []string
			for _, m := range tt.earlier {
				p, err := mconn.Create(full, nil, m.flags(), acl)
				if err != nil {
					t.Fatal(err)
				}
				earlier = append(earlier, p)
			}
			got, err := c.createProtectedTry(conn, tt.try, sp, prefix, full, []byte{}, tt.mode, createOptions{acl: acl, protected: true}, nil)
			if err != nil {
				t.Fatalf("createProtectedTry = %v", err)
			}
			if tt.wantKept >= 0 && got.Path != c.userPath(earlier[tt.wantKept]) {
				t.Errorf("returned %s, want the earlier node %s", got.Path, earlier[tt.wantKept])
			}
			if tt.wantKept < 0 && tt.mode.isSequential() && slices.Contains(earlier, c.serverPath(got.Path)) {
				t.Errorf("returned %s, a node of an ended session", got.Path)
			}
			wantOwner := int64(0)
			if tt.mode.IsEphemeral() {
				wantOwner = c.SessionID()
			}
			_, st, err := c.Get(testContext(t, 10*time.Second), got.Path)
			if err != nil {
				t.Fatalf("the returned node: %v", err)
			}
			if got.SessionID != wantOwner || st.EphemeralOwner != wantOwner {
				t.Errorf("Created.SessionID %x, owner %x, want %x", got.SessionID, st.EphemeralOwner, wantOwner)
			}
			_, name := SplitPath(got.Path)
			if names := childrenWithPrefix(t, c, parent, ""); !slices.Equal(names, []string{name}) {
				t.Errorf("nodes %v, want only %s", names, name)
			}
			if n := c.PendingDeletes(); n != 0 {
				t.Errorf("PendingDeletes() = %d, want 0: nothing left to the background", n)
			}
		})
	}
}
