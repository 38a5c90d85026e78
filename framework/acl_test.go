package framework

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/retry"
)

// The credential the tests authenticate with, and the ACL the server makes of zk.AuthACL for a
// session holding it.
const (
	aclUser     = "alice"
	aclPassword = "alice-s3cret"
)

var (
	creatorAll = zk.AuthACL(zk.PermAll)
	aliceAll   = zk.DigestACL(zk.PermAll, aclUser, aclPassword)
	worldAll   = zk.WorldACL(zk.PermAll)
	worldRead  = zk.WorldACL(zk.PermRead)
)

func withAlice() Option { return WithAuth("digest", []byte(aclUser+":"+aclPassword)) }

// rawAlice returns a go-zookeeper connection of the server, outside any Client, authenticated as
// aclUser, for reading ACLs (the server shows a node's ACL only to who may read it).
func rawAlice(t testing.TB) *zk.Conn {
	t.Helper()
	raw, _, err := zk.Connect([]string{testServer.ConnectString()}, testSessionTimeout, zk.WithLogger(quietLog{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	if err := raw.AddAuth("digest", []byte(aclUser+":"+aclPassword)); err != nil {
		t.Fatal(err)
	}
	return raw
}

// aclOf returns the ACL of the node at server path p.
func aclOf(t testing.TB, raw *zk.Conn, p string) []zk.ACL {
	t.Helper()
	acl, _, err := raw.GetACL(p)
	if err != nil {
		t.Fatalf("get ACL of %s: %v", p, err)
	}
	return acl
}

// TestValidateACLAgainstServer checks ValidateACL against the server: every ACL the server refuses
// (zk.ErrInvalidACL) ValidateACL refuses too, so NewClient (WithACL) and Create (WithNodeACL) fail
// before anything is sent; the few it refuses that the server takes are ACLs that no client can
// ever use. Its errors wrap ErrInvalidArgument and zk.ErrInvalidACL, name the entry and never
// repeat a digest id's secret.
func TestValidateACLAgainstServer(t *testing.T) {
	t.Parallel()
	raw := rawAlice(t)
	base := testPath(t)
	if _, err := raw.Create(base, nil, 0, worldAll); err != nil {
		t.Fatal(err)
	}
	entry := func(perms int32, scheme, id string) []zk.ACL { return []zk.ACL{{Perms: perms, Scheme: scheme, ID: id}} }
	tests := []struct {
		name   string
		acl    []zk.ACL
		ok     bool   // ValidateACL accepts it
		server bool   // the server accepts it
		want   string // the error names this
	}{
		{"world anyone", worldAll, true, true, ""},
		{"world read", worldRead, true, true, ""},
		{"digest made by zk.DigestACL", aliceAll, true, true, ""},
		{"creator all", creatorAll, true, true, ""}, // the session holds a credential
		{"two entries", append(slices.Clone(aliceAll), worldRead...), true, true, ""},
		{"ip address", entry(zk.PermAll, "ip", "127.0.0.1"), true, true, ""},
		{"ip network", entry(zk.PermRead, "ip", "10.0.0.0/8"), true, true, ""},
		{"nil list", nil, false, false, "ACL is empty"},
		{"empty list", []zk.ACL{}, false, false, "ACL is empty"},
		{"no scheme", entry(zk.PermAll, "", "x"), false, false, "no scheme"},
		{"world nobody", entry(zk.PermAll, "world", "nobody"), false, false, `"world":"nobody"`},
		{"digest without colon", entry(zk.PermAll, "digest", aclPassword), false, false, "no colon"},
		{"digest without digest", entry(zk.PermAll, "digest", "alice:"), false, false, `digest user "alice"`},
		{"digest of three parts", entry(zk.PermAll, "digest", "alice:b:c"), false, false, "more than one colon"},
		{"digest second entry", append(slices.Clone(worldRead), entry(zk.PermAll, "digest", "x")...), false, false, "ACL entry 1"},
		{"digest password in clear", entry(zk.PermAll, "digest", aclUser+":"+aclPassword), false, true, "zk.DigestACL"},
		{"digest without user", entry(zk.PermAll, "digest", ":"+aliceAll[0].ID[len(aclUser)+1:]), false, true, "not user:digest"},
		{"no permission", entry(0, "world", "anyone"), false, true, "grants no permission"},
		{"unknown permission bits", entry(zk.PermAll|64, "world", "anyone"), false, true, "0x40"},
		{"negative permissions", entry(-1, "world", "anyone"), false, true, "outside zk.PermAll"},
		{"unknown scheme", entry(zk.PermAll, "nosuch", "x"), true, false, ""}, // the server's to say
		{"bad ip", entry(zk.PermAll, "ip", "300.1.1.1"), true, false, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateACL(tt.acl)
			if (err == nil) != tt.ok {
				t.Fatalf("ValidateACL(%v) = %v, want ok %v", tt.acl, err, tt.ok)
			}
			_, serr := raw.Create(JoinPath(base, string(rune('a'+i))), nil, 0, tt.acl)
			switch {
			case tt.server && serr != nil:
				t.Fatalf("the server refused %v: %v, want it accepted", tt.acl, serr)
			case !tt.server && !errors.Is(serr, zk.ErrInvalidACL):
				t.Fatalf("the server's create with %v = %v, want zk.ErrInvalidACL", tt.acl, serr)
			}
			c, cerr := NewClient("localhost:2181", WithACL(tt.acl))
			if cerr == nil {
				c.Close()
			}
			if (cerr == nil) != tt.ok {
				t.Fatalf("NewClient(WithACL(%v)) = %v, want ok %v", tt.acl, cerr, tt.ok)
			}
			if tt.ok {
				return
			}
			for _, err := range []error{err, cerr} {
				if !errors.Is(err, ErrInvalidArgument) || !errors.Is(err, zk.ErrInvalidACL) {
					t.Errorf("error %v does not wrap ErrInvalidArgument and zk.ErrInvalidACL", err)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %q does not name %q", err, tt.want)
				}
				if strings.Contains(err.Error(), aclPassword) || strings.Contains(err.Error(), aliceAll[0].ID) {
					t.Errorf("error %q repeats the secret", err)
				}
			}
		})
	}
}

// TestAuthOptions checks the credential and ACL options that NewClient refuses: the errors wrap
// ErrInvalidArgument, say what is wrong and never quote a password.
func TestAuthOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts []Option
		want string // "" for no error
	}{
		{"digest user:password", []Option{WithAuth("digest", []byte("u:p"))}, ""},
		{"digest empty password", []Option{WithAuth("digest", []byte("u:"))}, ""},
		{"other scheme, any data", []Option{WithAuth("ip", []byte("x"))}, ""},
		{"digest without colon", []Option{WithAuth("digest", []byte(aclPassword))}, "not user:password"},
		{"digest without user", []Option{WithAuth("digest", []byte(":"+aclPassword))}, "not user:password"},
		{"nil ACL provider", []Option{WithACLProvider(nil)}, "ACL provider is nil"},
		{"ACL provider and ACL", []Option{withAlice(), WithACL(creatorAll), WithACLProvider(func(string) []zk.ACL { return nil })}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient("localhost:2181", tt.opts...)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewClient = %v, want no error", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("NewClient = nil error, want one saying %q", tt.want)
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewClient = %v, want an ErrInvalidArgument saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), aclPassword) {
				t.Errorf("error %q quotes the password", err)
			}
		})
	}
}

// pathRecorder is an ACL provider that records the paths it is asked about.
type pathRecorder struct {
	mu    sync.Mutex
	paths map[string]bool
	acls  map[string][]zk.ACL // by path; nil for the client's
}

func newPathRecorder(acls map[string][]zk.ACL) *pathRecorder {
	return &pathRecorder{paths: map[string]bool{}, acls: acls}
}

func (r *pathRecorder) provide(path string) []zk.ACL {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paths[path] = true
	return r.acls[path]
}

func (r *pathRecorder) asked() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for p := range r.paths {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// TestACLOfCreatedNodes checks the ACL of every node that creates make, parents included, against
// the server: WithACL's for every node, WithNodeACL's for its node only, the ACL provider's by path
// (namespace-free, asked for every node and every parent made) with WithACL's as the default.
func TestACLOfCreatedNodes(t *testing.T) {
	t.Parallel()
	raw := rawAlice(t)
	type create func(ctx context.Context, c *Client, path string, opts ...CreateOption) (string, error)
	plain := func(ctx context.Context, c *Client, path string, opts ...CreateOption) (string, error) {
		created, err := c.Create(ctx, path, nil, Persistent, append([]CreateOption{WithParents()}, opts...)...)
		return created.Path, err
	}
	lockNode := func(ctx context.Context, c *Client, path string, opts ...CreateOption) (string, error) {
		created, _, err := c.CreateAndList(ctx, path, nil, EphemeralSequential, opts...)
		return created.Path, err
	}
	inMulti := func(ctx context.Context, c *Client, path string, opts ...CreateOption) (string, error) {
		parent, _ := SplitPath(path)
		if _, err := c.Create(ctx, parent, nil, Persistent, WithParents()); err != nil {
			return "", err
		}
		res, err := c.Multi(ctx, CreateOp(path, nil, Persistent, opts...))
		if err != nil {
			return "", err
		}
		return res[0].Path, nil
	}
	tests := []struct {
		name     string
		create   create
		opts     []Option            // besides WithAuth (alice)
		acls     map[string][]zk.ACL // the provider's, by path under the client's view ("" for none)
		nodeACL  []zk.ACL            // WithNodeACL, if not nil
		want     map[string][]zk.ACL // the ACL of a/b/c (the node), a/b and a, by path relative to the test's base
		wantAsks []string            // the paths the provider must be asked about (nil: no provider)
	}{
		{
			name:   "WithACL on the node and its parents",
			create: plain,
			opts:   []Option{WithACL(creatorAll)},
			want:   map[string][]zk.ACL{"a": aliceAll, "a/b": aliceAll, "a/b/c": aliceAll},
		},
		{
			name:   "WithACL on a lock node and its parents",
			create: lockNode,
			opts:   []Option{WithACL(creatorAll)},
			want:   map[string][]zk.ACL{"a": aliceAll, "a/b": aliceAll, "a/b/c": aliceAll},
		},
		{
			name:    "WithNodeACL wins for its node only",
			create:  plain,
			opts:    []Option{WithACL(creatorAll)},
			nodeACL: worldRead,
			want:    map[string][]zk.ACL{"a": aliceAll, "a/b": aliceAll, "a/b/c": worldRead},
		},
		{
			name:     "provider per path, parents included",
			create:   plain,
			acls:     map[string][]zk.ACL{"a/b": creatorAll, "a/b/c": worldRead},
			want:     map[string][]zk.ACL{"a": worldAll, "a/b": aliceAll, "a/b/c": worldRead},
			wantAsks: []string{"a", "a/b", "a/b/c"},
		},
		{
			name:     "provider over WithACL, which is its default",
			create:   lockNode,
			opts:     []Option{WithACL(creatorAll)},
			acls:     map[string][]zk.ACL{"a": worldAll},
			want:     map[string][]zk.ACL{"a": worldAll, "a/b": aliceAll, "a/b/c": aliceAll},
			wantAsks: []string{"a", "a/b", "a/b/c"},
		},
		{
			name:     "WithNodeACL over the provider",
			create:   plain,
			acls:     map[string][]zk.ACL{"a/b/c": creatorAll},
			nodeACL:  worldRead,
			want:     map[string][]zk.ACL{"a": worldAll, "a/b": worldAll, "a/b/c": worldRead},
			wantAsks: []string{"a", "a/b"},
		},
		{
			name:     "provider in a transaction",
			create:   inMulti,
			acls:     map[string][]zk.ACL{"a/b/c": creatorAll},
			want:     map[string][]zk.ACL{"a": worldAll, "a/b": worldAll, "a/b/c": aliceAll},
			wantAsks: []string{"a", "a/b", "a/b/c"},
		},
	}
	for _, tt := range tests {
		for _, ns := range []bool{false, true} {
			name := tt.name
			if ns {
				name += ", in a namespace"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				base := testPath(t)
				// The provider sees paths as the caller names them: under base, or, in a
				// namespace of base, from "/", which is then the namespace's own node.
				view := base + "/"
				opts := append([]Option{withAlice()}, tt.opts...)
				if ns {
					view = "/"
					opts = append(opts, WithNamespace(base))
				}
				var rec *pathRecorder
				if tt.wantAsks != nil {
					acls := map[string][]zk.ACL{}
					for p, acl := range tt.acls {
						acls[view+p] = acl
					}
					rec = newPathRecorder(acls)
					opts = append(opts, WithACLProvider(rec.provide))
				}
				c := newClient(t, "", nil, opts...)
				var copts []CreateOption
				if tt.nodeACL != nil {
					copts = append(copts, WithNodeACL(tt.nodeACL))
				}
				created, err := tt.create(testContext(t, 10*time.Second), c, view+"a/b/c", copts...)
				if err != nil {
					t.Fatal(err)
				}
				for rel, want := range tt.want {
					p := base + "/" + rel
					if rel == "a/b/c" {
						p = base + strings.TrimPrefix(created, strings.TrimSuffix(view, "/"))
					}
					if got := aclOf(t, raw, p); !slices.Equal(got, want) {
						t.Errorf("ACL of %s = %v, want %v", p, got, want)
					}
				}
				if rec == nil {
					return
				}
				var want []string
				for _, p := range tt.wantAsks {
					want = append(want, view+p)
				}
				if ns {
					want = append(want, "/") // the namespace's own node, made as a parent
				} else {
					want = append(want, base) // base, a parent too
				}
				sort.Strings(want)
				if got := rec.asked(); !slices.Equal(got, want) {
					t.Errorf("the provider was asked about %q, want %q", got, want)
				}
			})
		}
	}
}

// TestACLProviderRefused checks that an ACL from the provider that ValidateACL refuses fails the
// create, unsent, with an error that names the path.
func TestACLProviderRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		acl  []zk.ACL
	}{
		{"password in clear", []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: aclUser + ":" + aclPassword}}},
		{"world nobody", []zk.ACL{{Perms: zk.PermAll, Scheme: "world", ID: "nobody"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := testPath(t)
			bad := base + "/bad"
			c := newClient(t, "", nil, WithACLProvider(func(p string) []zk.ACL {
				if p == bad {
					return tt.acl
				}
				return nil
			}))
			before := c.RequestCount()
			_, err := c.Create(testContext(t, 10*time.Second), bad+"/node", nil, Persistent, WithParents())
			if !errors.Is(err, ErrInvalidArgument) || !errors.Is(err, zk.ErrInvalidACL) || !strings.Contains(err.Error(), `"`+bad+`"`) {
				t.Fatalf("Create = %v, want ErrInvalidArgument and zk.ErrInvalidACL naming %q", err, bad)
			}
			if exists(t, c, bad) {
				t.Errorf("%s was made", bad)
			}
			_, err = c.Create(testContext(t, 10*time.Second), bad, nil, Persistent, WithParents())
			if !errors.Is(err, zk.ErrInvalidACL) {
				t.Fatalf("Create of %s = %v, want zk.ErrInvalidACL", bad, err)
			}
			// The create of the node (whose parent is missing), and the exists.
			if n := c.RequestCount() - before; n > 2 {
				t.Errorf("%d requests sent, want no create of %s", n, bad)
			}
		})
	}
}

// opSetAuth is go-zookeeper's opcode for a credential (setAuth).
const opSetAuth = 100

// authSpy is a dialer whose connections report the credentials sent on them and the server's
// replies, and cut the connection in place of sending a credential while told to.
type authSpy struct {
	target string // the address every dial goes to
	drop   atomic.Int32
	sent   atomic.Int32 // credentials sent
	acked  atomic.Int32 // replies to them read
}

func (s *authSpy) dial(network, _ string, timeout time.Duration) (net.Conn, error) {
	conn, err := net.DialTimeout(network, s.target, timeout)
	if err != nil {
		return nil, err
	}
	return &spyConn{Conn: conn, s: s, xids: map[int32]bool{}}, nil
}

// dropNext makes the next n credentials, on whichever connection, go unsent and cut their
// connection.
func (s *authSpy) dropNext(n int32) { s.drop.Store(n) }

func (s *authSpy) takeDrop() bool {
	for {
		n := s.drop.Load()
		if n <= 0 {
			return false
		}
		if s.drop.CompareAndSwap(n, n-1) {
			return true
		}
	}
}

type spyConn struct {
	net.Conn
	s      *authSpy
	mu     sync.Mutex
	wrote  bool // the connect request is written
	xids   map[int32]bool
	framer replyFramer // the read side: one goroutine
}

// Write looks at each request (go-zookeeper writes each whole, in one Write).
func (c *spyConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	first := !c.wrote
	c.wrote = true
	c.mu.Unlock()
	if !first && len(b) >= 12 && int32(binary.BigEndian.Uint32(b[8:12])) == opSetAuth {
		if c.s.takeDrop() {
			c.Conn.Close() // lost on the way: the reply never comes
			return len(b), nil
		}
		c.mu.Lock()
		c.xids[int32(binary.BigEndian.Uint32(b[4:8]))] = true
		c.mu.Unlock()
		c.s.sent.Add(1)
	}
	return c.Conn.Write(b)
}

func (c *spyConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	for rest := b[:n]; len(rest) > 0; {
		k, done := c.framer.advance(rest)
		rest = rest[k:]
		if done && !c.framer.first {
			c.mu.Lock()
			ours := c.xids[c.framer.xid]
			c.mu.Unlock()
			if ours {
				c.s.acked.Add(1)
			}
		}
	}
	return n, err
}

// TestCredentialsEstablishSession checks that the credentials are part of establishing every
// session: the first, the same one after a reconnect and a new one after an expiry. The client
// reports Connected or Reconnected only after the server has answered the credentials, and sends
// them again when they are lost on the way (the connection dropping under them), so the session
// never goes on without them: a node made right after with zk.AuthACL carries the credential's ACL
// (a session without credentials cannot make one: zk.ErrInvalidACL).
func TestCredentialsEstablishSession(t *testing.T) {
	t.Parallel()
	const (
		firstSession = iota // the credentials are cut on the first connection
		reconnect           // on a reconnect to the same session, after the connection was closed
		expiry              // on the new session after the server expired the first
	)
	tests := []struct {
		name  string
		drop  int32 // credentials cut on the way
		event int
		want  []State
	}{
		{"first session", 1, firstSession, []State{Connected}},
		{"first session, cut twice", 2, firstSession, []State{Connected}},
		{"reconnect to the same session", 1, reconnect, []State{Connected, Suspended, Reconnected}},
		{"new session after an expiry", 1, expiry, []State{Connected, Suspended, Lost, Reconnected}},
	}
	// A connection whose credentials are cut drops at once, so the reconnect after it backs off
	// (up to a second once the backoff has grown): a session that must outlive two reconnects gets
	// the longest timeout the server grants (20 ticks).
	const longSessionTimeout = 4 * time.Second
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := testServer.Proxy(t)
			spy := &authSpy{target: p.Addr()}
			if tt.event == firstSession {
				spy.dropNext(tt.drop)
			}
			var (
				mu      sync.Mutex
				ackedAt []int32 // the credential replies read when each Connected or Reconnected was delivered
			)
			rec := newRecorder()
			listeners := []func(State){func(s State) {
				if s == Connected || s == Reconnected {
					mu.Lock()
					ackedAt = append(ackedAt, spy.acked.Load())
					mu.Unlock()
				}
			}, rec.listen}
			opts := []Option{withAlice(), WithDialer(spy.dial)}
			if tt.event == reconnect {
				opts = append(opts, WithSessionTimeout(longSessionTimeout))
			}
			c := startClient(t, p.Addr(), listeners, opts...)
			acked := spy.acked.Load()
			switch tt.event {
			case reconnect:
				rec.expect(t, 10*time.Second, Connected)
				spy.dropNext(tt.drop)
				p.CloseConnections()
			case expiry:
				rec.expect(t, 10*time.Second, Connected)
				spy.dropNext(tt.drop)
				if err := p.ExpireSession(testContext(t, 30*time.Second), testServer, c.SessionID()); err != nil {
					t.Fatal(err)
				}
			}
			rec.expect(t, 20*time.Second, tt.want...)
			mu.Lock()
			defer mu.Unlock()
			last := ackedAt[len(ackedAt)-1]
			if tt.event == firstSession && last < 1 || tt.event != firstSession && last <= acked {
				t.Errorf("%v delivered when %d credential replies had been read (%d before), want one more: the session was reported up before the server answered its credentials",
					tt.want[len(tt.want)-1], last, acked)
			}
			if n := spy.drop.Load(); n != 0 {
				t.Errorf("%d credential cuts left unused", n)
			}
			node := testPath(t)
			if _, err := c.Create(testContext(t, 10*time.Second), node, nil, Ephemeral, WithParents(), WithNodeACL(creatorAll)); err != nil {
				t.Fatalf("create with the creator's ACL on the session: %v", err)
			}
			if got := aclOf(t, rawAlice(t), node); !slices.Equal(got, aliceAll) {
				t.Errorf("ACL of %s = %v, want %v", node, got, aliceAll)
			}
		})
	}
}

// TestCredentialsRefused checks a credential that the server refuses (a scheme it does not know):
// the client does not go on without it. It reports no Connected, operations fail at once with an
// error wrapping zk.ErrAuthFailed (not after the connection timeout, nor retried), and so does a
// BlockUntilConnected whose context ends.
func TestCredentialsRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		auth []Option
	}{
		{"unknown scheme", []Option{WithAuth("nosuch", []byte("x"))}},
		{"unknown scheme after a good one", []Option{withAlice(), WithAuth("nosuch", []byte("x"))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const connectionTimeout = 10 * time.Second
			c, err := NewClient(testServer.ConnectString(), append(tt.auth,
				WithSessionTimeout(testSessionTimeout),
				WithConnectionTimeout(connectionTimeout),
				WithRetryPolicy(retry.UntilElapsed(time.Minute, 50*time.Millisecond)))...)
			if err != nil {
				t.Fatal(err)
			}
			rec := newRecorder()
			c.Listen(rec.listen)
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			_, err = c.Create(testContext(t, 30*time.Second), testPath(t), nil, Persistent, WithParents())
			took := time.Since(start)
			if !errors.Is(err, zk.ErrAuthFailed) {
				t.Fatalf("Create = %v, want zk.ErrAuthFailed", err)
			}
			if took > connectionTimeout/2 {
				t.Errorf("Create failed after %v, want at once", took)
			}
			err = c.BlockUntilConnected(testContext(t, 300*time.Millisecond))
			if !errors.Is(err, zk.ErrAuthFailed) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("BlockUntilConnected = %v, want the deadline and zk.ErrAuthFailed", err)
			}
			if got := rec.get(); len(got) != 0 || c.State() != 0 {
				t.Errorf("states %v (now %v), want none: the session never had its credentials", got, c.State())
			}
		})
	}
}
