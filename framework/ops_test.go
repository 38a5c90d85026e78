package framework

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

var sequenceSuffix = regexp.MustCompile(`-\d{10}$`)

// TestCreateModes creates a node in every mode under parents that do not exist yet.
func TestCreateModes(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	base := testPath(t)
	tests := []struct {
		mode       CreateMode
		name       string
		sequential bool
		ephemeral  bool
	}{
		{Persistent, "persistent", false, false},
		{PersistentSequential, "persistent-seq-", true, false},
		{Ephemeral, "ephemeral", false, true},
		{EphemeralSequential, "ephemeral-seq-", true, true},
		{Container, "container", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			ctx := testContext(t, 10*time.Second)
			path := base + "/" + tt.mode.String() + "/p1/p2/" + tt.name
			if _, err := c.Create(ctx, path, nil, tt.mode); !errors.Is(err, zk.ErrNoNode) {
				t.Fatalf("Create without WithParents under a missing parent = %v, want ErrNoNode", err)
			}
			got, err := c.Create(ctx, path, []byte("data"), tt.mode, WithParents())
			if err != nil {
				t.Fatal(err)
			}
			if tt.mode.IsEphemeral() != tt.ephemeral {
				t.Errorf("%v.IsEphemeral() = %v", tt.mode, tt.mode.IsEphemeral())
			}
			if tt.sequential {
				if !strings.HasPrefix(got.Path, path) || !sequenceSuffix.MatchString(got.Path) || len(got.Path) != len(path)+10 {
					t.Errorf("Created.Path = %q, want %q and a 10-digit sequence number", got.Path, path)
				}
			} else if got.Path != path {
				t.Errorf("Created.Path = %q, want %q", got.Path, path)
			}
			data, st, err := c.Get(ctx, got.Path)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != "data" {
				t.Errorf("data = %q, want %q", data, "data")
			}
			wantOwner := int64(0)
			if tt.ephemeral {
				wantOwner = c.SessionID()
			}
			if got.SessionID != wantOwner || st.EphemeralOwner != wantOwner {
				t.Errorf("Created.SessionID = %x, node's owner %x; want %x", got.SessionID, st.EphemeralOwner, wantOwner)
			}
			for _, parent := range []string{base + "/" + tt.mode.String() + "/p1", base + "/" + tt.mode.String() + "/p1/p2"} {
				if !exists(t, c, parent) {
					t.Errorf("parent %s not created", parent)
				}
			}
			// A second non-sequential create finds the node there.
			if !tt.sequential {
				if _, err := c.Create(ctx, path, nil, tt.mode, WithParents()); !errors.Is(err, zk.ErrNodeExists) {
					t.Errorf("second Create = %v, want ErrNodeExists", err)
				}
			}
		})
	}
	if _, err := c.Create(testContext(t, time.Second), base+"/bad", nil, CreateMode(9)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Create with mode 9 = %v, want ErrInvalidArgument", err)
	}
	if _, err := c.Create(testContext(t, time.Second), "/", nil, Persistent); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Create of / = %v, want ErrInvalidArgument", err)
	}
}

// TestCreateParentContainers checks that the parents WithParents makes are containers: the
// server reaps them once their last child is gone (zktest's servers check every second). With
// WithoutContainers they are persistent and stay.
func TestCreateParentContainers(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	plain := newClient(t, "", nil, WithoutContainers())
	base := testPath(t)
	mustCreate(t, c, base, nil) // persistent: not reaped
	if _, err := c.Create(testContext(t, 10*time.Second), base+"/a/b/leaf", nil, Ephemeral, WithParents()); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Create(testContext(t, 10*time.Second), base+"/x/y/leaf", nil, Ephemeral, WithParents()); err != nil {
		t.Fatal(err)
	}
	if !exists(t, c, base+"/a/b") || !exists(t, c, base+"/x/y") {
		t.Fatal("parents not created")
	}
	if err := c.Delete(testContext(t, 10*time.Second), base+"/a/b/leaf", -1); err != nil {
		t.Fatal(err)
	}
	if err := plain.Delete(testContext(t, 10*time.Second), base+"/x/y/leaf", -1); err != nil {
		t.Fatal(err)
	}
	// b goes at the first check after the delete, a (now empty) at the next.
	eventually(t, 10*time.Second, "the container parents to be reaped", func() bool {
		return !exists(t, c, base+"/a")
	})
	if !exists(t, c, base+"/x/y") {
		t.Error("parents made WithoutContainers were reaped as containers")
	}
	if !exists(t, c, base) {
		t.Error("a persistent node was reaped")
	}
}

func TestGetSetExistsChildrenDelete(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	ctx := testContext(t, 20*time.Second)
	base := testPath(t)
	mustCreate(t, c, base, []byte("v0"))

	ok, st, err := c.Exists(ctx, base)
	if err != nil || !ok || st == nil {
		t.Fatalf("Exists(existing) = %v, %v, %v", ok, st, err)
	}
	ok, st, err = c.Exists(ctx, base+"/missing")
	if err != nil || ok || st != nil {
		t.Fatalf("Exists(missing) = %v, %v, %v; want false, nil, nil", ok, st, err)
	}
	if _, _, err := c.Get(ctx, base+"/missing"); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("Get(missing) = %v, want ErrNoNode", err)
	}
	if _, err := c.Set(ctx, base+"/missing", nil, -1); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("Set(missing) = %v, want ErrNoNode", err)
	}
	if err := c.Delete(ctx, base+"/missing", -1); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("Delete(missing) = %v, want ErrNoNode", err)
	}
	if _, _, err := c.Children(ctx, base+"/missing"); !errors.Is(err, zk.ErrNoNode) {
		t.Errorf("Children(missing) = %v, want ErrNoNode", err)
	}

	data, st, err := c.Get(ctx, base)
	if err != nil || string(data) != "v0" || st.Version != 0 {
		t.Fatalf("Get = %q, %+v, %v", data, st, err)
	}
	st, err = c.Set(ctx, base, []byte("v1"), 0)
	if err != nil || st.Version != 1 {
		t.Fatalf("Set(version 0) = %+v, %v", st, err)
	}
	if _, err := c.Set(ctx, base, []byte("v2"), 0); !errors.Is(err, zk.ErrBadVersion) {
		t.Errorf("Set(stale version) = %v, want ErrBadVersion", err)
	}
	if _, err := c.Set(ctx, base, []byte("v2"), -1); err != nil {
		t.Errorf("Set(any version) = %v", err)
	}
	if data, _, _ := c.Get(ctx, base); string(data) != "v2" {
		t.Errorf("data = %q after Set, want v2", data)
	}

	want := []string{"a", "b", "c"}
	for _, n := range want {
		mustCreate(t, c, base+"/"+n, nil)
	}
	names, st, err := c.Children(ctx, base)
	slices.Sort(names)
	if err != nil || !slices.Equal(names, want) || st.NumChildren != 3 {
		t.Fatalf("Children = %v, %+v, %v; want %v", names, st, err, want)
	}
	if err := c.Delete(ctx, base, -1); !errors.Is(err, zk.ErrNotEmpty) {
		t.Errorf("Delete(with children) = %v, want ErrNotEmpty", err)
	}
	if err := c.Delete(ctx, base+"/a", 5); !errors.Is(err, zk.ErrBadVersion) {
		t.Errorf("Delete(wrong version) = %v, want ErrBadVersion", err)
	}
	if err := c.Delete(ctx, base+"/a", 0); err != nil {
		t.Errorf("Delete(version 0) = %v", err)
	}
	if exists(t, c, base+"/a") {
		t.Error("node still there after Delete")
	}
	for name, path := range map[string]string{"relative": "a/b", "empty": "", "trailing slash": base + "/"} {
		if _, _, err := c.Get(ctx, path); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Get(%s path %q) = %v, want ErrInvalidArgument", name, path, err)
		}
		if _, err := c.Create(ctx, path, nil, Persistent); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("Create(%s path %q) = %v, want ErrInvalidArgument", name, path, err)
		}
	}
}

// TestWatches sets each kind of watch and checks that it fires with the right event.
func TestWatches(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	other := newClient(t, "", nil)
	base := testPath(t)
	mustCreate(t, c, base, nil)
	// The watches a test can set, by the name of the call, on a node that exists or not.
	watches := map[string]func(ctx context.Context, path string) (bool, <-chan zk.Event, error){
		"GetW": func(ctx context.Context, path string) (bool, <-chan zk.Event, error) {
			_, _, w, err := c.GetW(ctx, path)
			return err == nil, w, err
		},
		"ExistsW": func(ctx context.Context, path string) (bool, <-chan zk.Event, error) {
			ok, _, w, err := c.ExistsW(ctx, path)
			return ok, w, err
		},
		"ChildrenW": func(ctx context.Context, path string) (bool, <-chan zk.Event, error) {
			_, _, w, err := c.ChildrenW(ctx, path)
			return err == nil, w, err
		},
	}
	// The changes other makes once the watch is set.
	setData := func(ctx context.Context, path string) error {
		_, err := other.Set(ctx, path, []byte("new"), -1)
		return err
	}
	deleteNode := func(ctx context.Context, path string) error { return other.Delete(ctx, path, -1) }
	createNode := func(ctx context.Context, path string) error {
		_, err := other.Create(ctx, path, nil, Ephemeral)
		return err
	}
	createChild := func(ctx context.Context, path string) error { return createNode(ctx, path+"/child") }
	tests := []struct {
		name   string
		exists bool   // c creates the node before it sets the watch
		watch  string // a key of watches
		change func(ctx context.Context, path string) error
		want   zk.EventType
	}{
		{"GetW data changed", true, "GetW", setData, zk.EventNodeDataChanged},
		{"GetW deleted", true, "GetW", deleteNode, zk.EventNodeDeleted},
		{"ExistsW created", false, "ExistsW", createNode, zk.EventNodeCreated},
		{"ExistsW deleted", true, "ExistsW", deleteNode, zk.EventNodeDeleted},
		{"ChildrenW child created", true, "ChildrenW", createChild, zk.EventNodeChildrenChanged},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t, 10*time.Second)
			path := base + "/" + string(rune('a'+i))
			if tt.exists {
				if _, err := c.Create(ctx, path, nil, Persistent); err != nil {
					t.Fatal(err)
				}
			}
			exists, w, err := watches[tt.watch](ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if exists != tt.exists {
				t.Fatalf("%s saw the node existing: %v, want %v", tt.watch, exists, tt.exists)
			}
			select {
			case ev := <-w:
				t.Fatalf("watch fired before the change: %+v", ev)
			default:
			}
			if err := tt.change(ctx, path); err != nil {
				t.Fatal(err)
			}
			select {
			case ev := <-w:
				if ev.Type != tt.want || ev.Path != path {
					t.Errorf("event %v on %q, want %v on %q", ev.Type, ev.Path, tt.want, path)
				}
			case <-ctx.Done():
				t.Fatal("watch did not fire")
			}
		})
	}
}

// TestNamespace checks that a namespaced client works under /ns and reports paths without it.
func TestNamespace(t *testing.T) {
	t.Parallel()
	plain := newClient(t, "", nil)
	base := testPath(t)
	tests := []struct {
		name     string
		connect  string // after the server's address
		ns       string
		serverNS string // where the client's "/" is on the server
	}{
		{"namespace", "", strings.TrimPrefix(base, "/") + "/ns", base + "/ns"},
		{"nested namespace with slash", "", base + "/app/locks", base + "/app/locks"},
		{"chroot", base + "/chroot", "", base + "/chroot"},
		{"chroot and namespace", base + "/chroot2", "ns", base + "/chroot2/ns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t, 10*time.Second)
			var opts []Option
			if tt.ns != "" {
				opts = append(opts, WithNamespace(tt.ns))
			}
			c := newClient(t, testServer.ConnectString()+tt.connect, nil, opts...)
			got, err := c.Create(ctx, "/a/b", []byte("x"), Persistent, WithParents())
			if err != nil {
				t.Fatal(err)
			}
			if got.Path != "/a/b" {
				t.Errorf("Created.Path = %q, want /a/b", got.Path)
			}
			if data, _, err := plain.Get(ctx, tt.serverNS+"/a/b"); err != nil || string(data) != "x" {
				t.Errorf("plain client Get(%s/a/b) = %q, %v", tt.serverNS, data, err)
			}
			if data, _, err := c.Get(ctx, "/a/b"); err != nil || string(data) != "x" {
				t.Errorf("namespaced Get(/a/b) = %q, %v", data, err)
			}
			if names, _, err := c.Children(ctx, "/"); err != nil || !slices.Equal(names, []string{"a"}) {
				t.Errorf("namespaced Children(/) = %v, %v; want [a]", names, err)
			}
			seq, err := c.Create(ctx, "/a/seq-", nil, EphemeralSequential, WithProtection())
			if err != nil {
				t.Fatal(err)
			}
			parent, name := SplitPath(seq.Path)
			if parent != "/a" || !IsProtectedName(name) {
				t.Errorf("protected Created.Path = %q, want /a/_c_<uuid>-seq-<n>", seq.Path)
			}
			if !exists(t, plain, tt.serverNS+seq.Path) {
				t.Errorf("%s not on the server", tt.serverNS+seq.Path)
			}
			_, _, w, err := c.GetW(ctx, "/a/b")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, "/a/b", -1); err != nil {
				t.Fatal(err)
			}
			if exists(t, plain, tt.serverNS+"/a/b") {
				t.Error("namespaced Delete left the node")
			}
			select {
			case ev := <-w:
				// Documented: event paths are the server's.
				if ev.Type != zk.EventNodeDeleted || ev.Path != tt.serverNS+"/a/b" {
					t.Errorf("watch event %v %q, want NodeDeleted on %q", ev.Type, ev.Path, tt.serverNS+"/a/b")
				}
			case <-ctx.Done():
				t.Fatal("watch did not fire")
			}
		})
	}
}

func TestDefaultData(t *testing.T) {
	t.Parallel()
	base := testPath(t)
	local := localAddress()
	tests := []struct {
		name string
		opts []Option
		data []byte // given to Create
		want []byte
	}{
		{"local address", nil, nil, local},
		{"WithDefaultData", []Option{WithDefaultData([]byte("mine"))}, nil, []byte("mine")},
		{"empty default", []Option{WithDefaultData(nil)}, nil, []byte{}},
		{"explicit empty data", nil, []byte{}, []byte{}},
		{"explicit data", []Option{WithDefaultData([]byte("mine"))}, []byte("given"), []byte("given")},
	}
	if len(local) == 0 {
		t.Log("this host's name does not resolve: the default data is empty")
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, "", nil, tt.opts...)
			path := base + "/" + string(rune('a'+i))
			if _, err := c.Create(testContext(t, 10*time.Second), path, tt.data, Persistent, WithParents()); err != nil {
				t.Fatal(err)
			}
			data, _, err := c.Get(testContext(t, 10*time.Second), path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, tt.want) {
				t.Errorf("data = %q, want %q", data, tt.want)
			}
			if tt.data == nil && !bytes.Equal(c.DefaultData(), tt.want) {
				t.Errorf("DefaultData() = %q, want %q", c.DefaultData(), tt.want)
			}
		})
	}
}

// TestOperationContextEnds runs operations on a partitioned connection with a short context: each
// returns about when its context ends, with an error wrapping the context's. Run with -race, it
// also checks that the abandoned calls do not touch the results handed back.
func TestOperationContextEnds(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	c := newClient(t, p.Addr(), nil)
	path := testPath(t)
	mustCreate(t, c, path, []byte("x"))
	p.Blackhole(true)
	// DeleteGuaranteed hands off to the background instead: see TestDeleteGuaranteed.
	for _, name := range []string{"Get", "GetW", "Set", "Exists", "ExistsW", "Children", "ChildrenW", "Delete", "Create", "Create protected"} {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		err := closedOps(ctx, c, path)[name]()
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s on a partitioned connection = %v, want DeadlineExceeded", name, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s took %v with a 150ms context", name, d)
		}
	}
	p.Blackhole(false)
	// Once the partition is over, the node is as it was.
	eventually(t, 10*time.Second, "reconnect", func() bool { return c.State().IsConnected() })
	if data, _, err := c.Get(testContext(t, 10*time.Second), path); err != nil || string(data) != "x" {
		t.Errorf("Get after the partition = %q, %v; want x", data, err)
	}
	eventually(t, 10*time.Second, "the clean-ups of abandoned protected creates", func() bool { return c.PendingDeletes() == 0 })
	if names := childrenWithPrefix(t, c, path, ""); len(names) != 0 {
		t.Errorf("nodes left by abandoned creates: %v", names)
	}
}

// TestSessionTimeoutNegotiated checks that SessionTimeout reports what the server granted: it
// clamps requests to between 2 and 20 ticks (400ms and 4s on zktest's servers).
func TestSessionTimeoutNegotiated(t *testing.T) {
	t.Parallel()
	if testServer.External() {
		t.Skip("the bounds of an external ensemble are unknown")
	}
	tests := []struct{ asked, granted time.Duration }{
		{100 * time.Millisecond, 400 * time.Millisecond},
		{1500 * time.Millisecond, 1500 * time.Millisecond},
		{time.Minute, 4 * time.Second},
	}
	for _, tt := range tests {
		c := newClient(t, "", nil, WithSessionTimeout(tt.asked))
		eventually(t, 5*time.Second, "the negotiated timeout", func() bool { return c.SessionTimeout() == tt.granted })
	}
}

// TestAuth checks that a client's auth lets it use nodes with a digest ACL, also after a
// reconnect, and that a client without it gets ErrNoAuth at once (no retries).
func TestAuth(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	rec := newRecorder()
	acl := zk.DigestACL(zk.PermAll, "user", "secret")
	c := newClient(t, p.Addr(), rec, WithAuth("digest", []byte("user:secret")), WithACL(acl))
	stranger := newClient(t, "", nil)
	base := testPath(t)
	mustCreate(t, stranger, base, nil)
	path := base + "/private"
	if _, err := c.Create(testContext(t, 10*time.Second), path, []byte("x"), Persistent); err != nil {
		t.Fatal(err)
	}
	before := stranger.RequestCount()
	if _, _, err := stranger.Get(testContext(t, 10*time.Second), path); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("Get without auth = %v, want ErrNoAuth", err)
	}
	if n := stranger.RequestCount() - before; n != 1 {
		t.Errorf("Get without auth sent %d requests, want 1 (ErrNoAuth is not retried)", n)
	}
	p.CloseConnections()
	rec.expect(t, 10*time.Second, Connected, Suspended, Reconnected)
	if data, _, err := c.Get(testContext(t, 10*time.Second), path); err != nil || string(data) != "x" {
		t.Errorf("Get with auth after a reconnect = %q, %v", data, err)
	}
}
