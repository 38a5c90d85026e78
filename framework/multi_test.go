package framework

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/zktest"
)

// Each op kind commits, in a client with and without a namespace, and its result says what it did.
func TestMultiOps(t *testing.T) {
	t.Parallel()
	plain := newClient(t, "", nil)
	base := testPath(t)
	for _, tt := range []struct {
		name string
		ns   string // the client's namespace
	}{
		{"no namespace", ""},
		{"namespace", strings.TrimPrefix(base, "/") + "/ns"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t, 20*time.Second)
			var opts []Option
			root, serverRoot := base+"/plain", base+"/plain"
			if tt.ns != "" {
				opts = append(opts, WithNamespace(tt.ns))
				root, serverRoot = "/r", "/"+tt.ns+"/r"
			}
			c := newClient(t, "", nil, opts...)
			mustCreate(t, c, root+"/old", []byte("v0"))
			mustCreate(t, c, root+"/gone", nil)
			res, err := c.Multi(ctx,
				CheckOp(root+"/old", 0),
				CreateOp(root+"/p", []byte("p"), Persistent),
				CreateOp(root+"/s-", []byte("s"), PersistentSequential),
				CreateOp(root+"/e", nil, Ephemeral),
				CreateOp(root+"/es-", nil, EphemeralSequential, WithNodeACL(zk.WorldACL(zk.PermAll))),
				SetOp(root+"/old", []byte("v1"), 0),
				DeleteOp(root+"/gone", AnyVersion),
				CheckOp(root+"/old", 1),
			)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != 8 {
				t.Fatalf("%d results, want 8", len(res))
			}
			want := []string{root + "/old", root + "/p", root + "/s-0000000", root + "/e", root + "/es-0000000", root + "/old", root + "/gone", root + "/old"}
			for i, w := range want {
				if !strings.HasPrefix(res[i].Path, w) {
					t.Errorf("result %d: path %q, want %q", i, res[i].Path, w)
				}
			}
			if st := res[5].Stat; st == nil || st.Version != 1 {
				t.Errorf("set's result Stat = %+v, want version 1", st)
			}
			for _, n := range []struct {
				path string
				data string
				ok   bool
			}{{"/old", "v1", true}, {"/p", "p", true}, {"/gone", "", false}, {"/e", "*", true}} { // "*": the client's default data, whatever it is
				data, _, err := plain.Get(ctx, serverRoot+n.path)
				if n.ok && (err != nil || (string(data) != n.data && n.data != "*")) {
					t.Errorf("Get(%s) = %q, %v; want %q", serverRoot+n.path, data, err, n.data)
				}
				if !n.ok && !errors.Is(err, zk.ErrNoNode) {
					t.Errorf("Get(%s) = %v; want no node", serverRoot+n.path, err)
				}
			}
			_, st, err := plain.Get(ctx, serverRoot+"/e")
			if err != nil || st.EphemeralOwner != c.SessionID() {
				t.Errorf("the ephemeral node's owner = %v, %v; want the client's session", st, err)
			}
		})
	}
}

// A transaction that fails in any op applies none of them, and its error names the op and why.
func TestMultiFailsAtomically(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	base := testPath(t)
	mustCreate(t, c, base+"/x", []byte("x0"))
	for _, tt := range []struct {
		name  string
		bad   Op
		cause error
	}{
		{"check of a missing node", CheckOp(base+"/missing", AnyVersion), zk.ErrNoNode},
		{"check of a wrong version", CheckOp(base+"/x", 7), zk.ErrBadVersion},
		{"set of a wrong version", SetOp(base+"/x", []byte("no"), 3), zk.ErrBadVersion},
		{"create of an existing node", CreateOp(base+"/x", nil, Persistent), zk.ErrNodeExists},
		{"create without its parent", CreateOp(base+"/none/y", nil, Persistent), zk.ErrNoNode},
		{"delete of a missing node", DeleteOp(base+"/missing", AnyVersion), zk.ErrNoNode},
		{"delete of a node with children", DeleteOp(base, AnyVersion), zk.ErrNotEmpty},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t, 10*time.Second)
			made := base + "/made-" + strings.ReplaceAll(tt.name, " ", "-")
			res, err := c.Multi(ctx,
				CreateOp(made, nil, Persistent),
				SetOp(base+"/x", []byte("x1"), AnyVersion),
				tt.bad,
				CreateOp(made+"-after", nil, Persistent),
			)
			var me *MultiError
			if !errors.As(err, &me) {
				t.Fatalf("Multi = %v, %v; want a *MultiError", res, err)
			}
			if me.Index != 2 || me.Op.String() != tt.bad.String() {
				t.Errorf("MultiError names op %d (%v), want op 2 (%v)", me.Index, me.Op, tt.bad)
			}
			if !errors.Is(err, tt.cause) {
				t.Errorf("error %v does not match %v", err, tt.cause)
			}
			if res != nil {
				t.Errorf("results %v of a refused transaction", res)
			}
			if exists(t, c, made) || exists(t, c, made+"-after") {
				t.Error("a create of the refused transaction was applied")
			}
			if data, _, err := c.Get(ctx, base+"/x"); err != nil || string(data) != "x0" {
				t.Errorf("the refused transaction's set was applied: %q, %v", data, err)
			}
		})
	}
}

// Ops that no transaction could carry fail before anything is sent, naming the op.
func TestMultiInvalidOps(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil, WithMaxRequestBytes(4096))
	base := testPath(t)
	for _, tt := range []struct {
		name string
		op   Op
		also error
	}{
		{"protected create", CreateOp(base+"/a", nil, EphemeralSequential, WithProtection()), nil},
		{"create with parents", CreateOp(base+"/a/b", nil, Persistent, WithParents()), nil},
		{"container", CreateOp(base+"/a", nil, Container), nil},
		{"bad mode", CreateOp(base+"/a", nil, CreateMode(42)), nil},
		{"root", CreateOp("/", nil, Persistent), nil},
		{"relative path", SetOp("a/b", nil, AnyVersion), nil},
		{"trailing slash", CheckOp(base+"/", AnyVersion), nil},
		{"zero op", Op{}, nil},
		{"too large", SetOp(base+"/a", make([]byte, 5000), AnyVersion), ErrRequestTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := c.RequestCount()
			_, err := c.Multi(testContext(t, 5*time.Second), CheckOp(base, AnyVersion), tt.op)
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("Multi = %v, want ErrInvalidArgument", err)
			}
			if tt.also != nil && !errors.Is(err, tt.also) {
				t.Errorf("Multi = %v, want %v too", err, tt.also)
			}
			if tt.also == nil && !strings.Contains(err.Error(), "op 1") {
				t.Errorf("error %q does not name op 1", err)
			}
			if n := c.RequestCount() - before; n != 0 {
				t.Errorf("%d requests sent", n)
			}
		})
	}
	if res, err := c.Multi(testContext(t, 5*time.Second)); res != nil || err != nil {
		t.Errorf("Multi() = %v, %v; want nothing", res, err)
	}
}

// A transaction sent whose reply never comes is reported with ErrUnknownOutcome and the cause, and
// is not sent again; the server may have applied it (here it has).
func TestMultiOutcomeUnknown(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		mode  zktest.HoldMode
		ctx   time.Duration // the Multi's context, 0 for none
		cause error
	}{
		{"connection dropped", zktest.Drop, 0, zk.ErrConnectionClosed},
		{"context ended", zktest.Deliver, 300 * time.Millisecond, context.DeadlineExceeded},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := testServer.Proxy(t)
			c := newClient(t, p.Addr(), nil)
			watcher := newClient(t, "", nil)
			path := testPath(t)
			held := p.HoldNextReply(zktest.OpMulti, time.Second, tt.mode)
			ctx := deadlineOrNone(t, tt.ctx)
			before := c.RequestCount()
			_, err := c.Multi(ctx, CreateOp(path, []byte("once"), Persistent))
			if !errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, tt.cause) {
				t.Fatalf("Multi = %v; want ErrUnknownOutcome and %v", err, tt.cause)
			}
			<-held
			if n := c.RequestCount() - before; n != 1 {
				t.Errorf("%d requests sent, want the one transaction", n)
			}
			// Find out by reading back: the server applied it.
			if !exists(t, watcher, path) {
				t.Error("the transaction was not applied; this test expects the server to have applied it")
			}
			// The client goes on working.
			if _, err := c.Multi(testContext(t, 20*time.Second), CheckOp(path, AnyVersion), SetOp(path, []byte("twice"), 0)); err != nil {
				t.Errorf("next Multi: %v", err)
			}
		})
	}
}

// A transaction that could not be sent (the connection is down) is no unknown outcome: it is
// tried again once the client is connected, under the retry policy.
func TestMultiRetriedUntilSent(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	rec := newRecorder()
	c := newClient(t, p.Addr(), rec)
	path := testPath(t)
	p.Blackhole(true)
	rec.waitState(t, 1, Suspended, 10*time.Second)
	go func() {
		time.Sleep(500 * time.Millisecond)
		p.Blackhole(false)
	}()
	if _, err := c.Multi(testContext(t, 20*time.Second), CreateOp(path, nil, Persistent)); err != nil {
		t.Fatalf("Multi after the connection came back: %v", err)
	}
	if !exists(t, c, path) {
		t.Error("node not created")
	}
}

// A closed client's Multi fails with ErrClosed, sending nothing.
func TestMultiClosed(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	c.Close()
	if _, err := c.Multi(context.Background(), CheckOp("/", AnyVersion)); !errors.Is(err, ErrClosed) || errors.Is(err, ErrUnknownOutcome) {
		t.Errorf("Multi on a closed client = %v; want ErrClosed", err)
	}
}
