package framework

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
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
