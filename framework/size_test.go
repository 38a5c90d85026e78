package framework

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// TestRequestTooLarge makes requests larger than the server's jute.maxbuffer (which would make it
// drop the connection, again on every retry): each fails at once with ErrRequestTooLarge, nothing
// is sent, and the client's other nodes are unaffected: the client never went Suspended.
func TestRequestTooLarge(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	c := newClient(t, "", rec)
	sid := c.SessionID()
	base := testPath(t)
	mustCreate(t, c, base, nil)
	held, err := c.Create(testContext(t, 10*time.Second), base+"/held", nil, Ephemeral)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 2<<20)
	longPath := base + "/" + strings.Repeat("x", 1200<<10)
	tests := []struct {
		name string
		op   func(ctx context.Context) error
	}{
		{"create 2 MiB data", func(ctx context.Context) error {
			_, err := c.Create(ctx, base+"/big", big, Persistent)
			return err
		}},
		{"protected ephemeral create 1200 KiB data", func(ctx context.Context) error {
			_, err := c.Create(ctx, base+"/big", make([]byte, 1200<<10), EphemeralSequential, WithProtection())
			return err
		}},
		{"create 1200 KiB path", func(ctx context.Context) error {
			_, err := c.Create(ctx, longPath, nil, Ephemeral, WithParents())
			return err
		}},
		{"CreateAndList 1200 KiB path", func(ctx context.Context) error {
			_, _, err := c.CreateAndList(ctx, longPath+"/lock-", nil, EphemeralSequential)
			return err
		}},
		{"CheckCreate 2 MiB data", func(context.Context) error { return c.CheckCreate(base+"/x", big) }},
		{"CheckCreate 1200 KiB path", func(context.Context) error { return c.CheckCreate(longPath, nil) }},
		{"set 2 MiB", func(ctx context.Context) error {
			_, err := c.Set(ctx, held.Path, big, -1)
			return err
		}},
		{"get", func(ctx context.Context) error { _, _, err := c.Get(ctx, longPath); return err }},
		{"getw", func(ctx context.Context) error { _, _, _, err := c.GetW(ctx, longPath); return err }},
		{"exists", func(ctx context.Context) error { _, _, err := c.Exists(ctx, longPath); return err }},
		{"existsw", func(ctx context.Context) error { _, _, _, err := c.ExistsW(ctx, longPath); return err }},
		{"children", func(ctx context.Context) error { _, _, err := c.Children(ctx, longPath); return err }},
		{"childrenw", func(ctx context.Context) error { _, _, _, err := c.ChildrenW(ctx, longPath); return err }},
		{"delete", func(ctx context.Context) error { return c.Delete(ctx, longPath, -1) }},
		{"DeleteGuaranteed", func(ctx context.Context) error { return c.DeleteGuaranteed(ctx, longPath) }},
	}
	sent := c.RequestCount()
	for _, tt := range tests {
		start := time.Now()
		err := tt.op(testContext(t, 20*time.Second))
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s took %v, want an error at once", tt.name, d)
		}
		if !errors.Is(err, ErrRequestTooLarge) || !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s = %v, want ErrRequestTooLarge and ErrInvalidArgument", tt.name, err)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprint(DefaultMaxRequestBytes)) || len(err.Error()) > 1000 {
			t.Errorf("%s: error %.300q... (%d bytes) does not name the limit briefly", tt.name, err, len(err.Error()))
		}
	}
	if n := c.RequestCount() - sent; n != 0 {
		t.Errorf("%d requests sent for requests too large to send", n)
	}
	if n := c.PendingDeletes(); n != 0 {
		t.Errorf("PendingDeletes() = %d, want 0", n)
	}
	if got := rec.get(); len(got) != 1 || got[0] != Connected || c.SessionID() != sid {
		t.Fatalf("states %v, session %x (was %x): the client lost its connection", got, c.SessionID(), sid)
	}
	_, st, err := c.Get(testContext(t, 10*time.Second), held.Path)
	if err != nil || st.EphemeralOwner != sid {
		t.Fatalf("the other node of the client: %v, %+v", err, st)
	}
}

// TestRequestSizeLimitExact creates nodes whose create request is exactly the server's
// jute.maxbuffer, which the server takes, and one byte more, which the client refuses unsent: the
// client counts request sizes as the server does.
func TestRequestSizeLimitExact(t *testing.T) {
	t.Parallel()
	rec := newRecorder()
	c := newClient(t, "", rec)
	base := testPath(t)
	mustCreate(t, c, base, nil)
	acl := zk.WorldACL(zk.PermAll)
	for _, tt := range []struct {
		name string
		mode CreateMode
		opts []CreateOption
	}{
		{"plain", Persistent, nil},
		{"protected sequential", PersistentSequential, []CreateOption{WithProtection()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := base + "/" + strings.ReplaceAll(tt.name, " ", "-")
			p := path
			if tt.mode == PersistentSequential {
				_, name := SplitPath(path)
				p = base + "/" + ProtectedPrefix + newUUID() + "-" + name + "0000000000"
			}
			fixed := createRequestBytes(p, nil, acl)
			fits := make([]byte, DefaultMaxRequestBytes-fixed)
			if got := createRequestBytes(p, fits, acl); got != DefaultMaxRequestBytes {
				t.Fatalf("size %d, want %d", got, DefaultMaxRequestBytes)
			}
			ctx := testContext(t, 20*time.Second)
			if err := c.CheckCreate(path, fits); tt.opts != nil && err != nil {
				t.Errorf("CheckCreate at the limit = %v", err)
			}
			got, err := c.Create(ctx, path, fits, tt.mode, tt.opts...)
			if err != nil {
				t.Fatalf("create of a request of exactly %d bytes: %v", DefaultMaxRequestBytes, err)
			}
			if err := c.Delete(ctx, got.Path, -1); err != nil {
				t.Fatal(err)
			}
			over := append(fits, 0)
			if _, err := c.Create(ctx, path, over, tt.mode, tt.opts...); !errors.Is(err, ErrRequestTooLarge) {
				t.Errorf("create one byte over the limit = %v, want ErrRequestTooLarge", err)
			}
			if err := c.CheckCreate(path, over); tt.opts != nil && !errors.Is(err, ErrRequestTooLarge) {
				t.Errorf("CheckCreate one byte over the limit = %v, want ErrRequestTooLarge", err)
			}
		})
	}
	if got := rec.get(); len(got) != 1 {
		t.Errorf("states %v: the server dropped the connection", got)
	}
	// One byte more is indeed too much for the server: it drops the connection.
	raw, _, err := zk.Connect([]string{testServer.ConnectString()}, testSessionTimeout, zk.WithLogger(quietLog{}))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	p := base + "/raw"
	over := make([]byte, DefaultMaxRequestBytes-createRequestBytes(p, nil, acl)+1)
	// The server closes the connection while the request is still being written (a broken pipe or a
	// reset), or after it read it (a connection loss).
	if _, err := raw.Create(p, over, 0, acl); !errors.Is(err, zk.ErrConnectionClosed) && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("a create request of %d bytes sent anyway = %v, want the server to drop the connection", DefaultMaxRequestBytes+1, err)
	}
}

func TestWithMaxRequestBytes(t *testing.T) {
	t.Parallel()
	if _, err := NewClient(testServer.ConnectString(), WithMaxRequestBytes(1000)); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(fmt.Sprint(err), "1000") {
		t.Errorf("WithMaxRequestBytes(1000) = %v, want ErrInvalidArgument naming 1000", err)
	}
	// Above what go-zookeeper can encode, a create that passed the check would fail with its own
	// "buffer too small": the limit itself is refused.
	if _, err := NewClient(testServer.ConnectString(), WithMaxRequestBytes(4<<20)); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(fmt.Sprint(err), "4194304") {
		t.Errorf("WithMaxRequestBytes(4 MiB) = %v, want ErrInvalidArgument naming 4194304", err)
	}
	if _, err := NewClient(testServer.ConnectString(), WithMaxRequestBytes(MaxRequestBytesLimit)); err != nil {
		t.Errorf("WithMaxRequestBytes(MaxRequestBytesLimit) = %v", err)
	}
	c := newClient(t, "", nil, WithMaxRequestBytes(4096))
	base := testPath(t)
	ctx := testContext(t, 10*time.Second)
	if _, err := c.Create(ctx, base, make([]byte, 4096), Persistent); !errors.Is(err, ErrRequestTooLarge) || !strings.Contains(err.Error(), "4096") {
		t.Errorf("create of 4 KiB data with a 4096-byte limit = %v, want ErrRequestTooLarge naming 4096", err)
	}
	if _, err := c.Create(ctx, base, make([]byte, 3000), Persistent); err != nil {
		t.Errorf("create of 3000 bytes with a 4096-byte limit: %v", err)
	}
}
