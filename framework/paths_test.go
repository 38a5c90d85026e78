package framework

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// TestValidatePathAgainstServer checks ValidatePath against the server's own check
// (PathUtils.validatePath, on Java's UTF-16 strings): every name ValidatePath accepts, the server
// accepts too (it is created and deleted), and every name the server refuses, ValidatePath refuses
// first, with an error naming the path, so that Create never sends it.
func TestValidatePathAgainstServer(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	raw, _, err := zk.Connect([]string{testServer.ConnectString()}, testSessionTimeout, zk.WithLogger(quietLog{}))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	base := testPath(t)
	mustCreate(t, c, base, nil)
	tests := []struct {
		name string // a node name under base
		ok   bool
	}{
		{"plain", true},
		{"with space", true},
		{"ünïcode", true},
		{"日本語", true},
		{"a.b", true},
		{"..c", true},
		{"...", true},
		{"\u00a0nbsp", true}, // the first character after the C1 controls
		{"\u0020", true},
		{"\ud7ff", true}, // the last character before the surrogates
		{"\uf900", true}, // the first character after the private use area
		{"\uffef", true}, // the last character before the specials
		{"a\x7e", true},  // '~', the last character before DEL
		{"lock🔒", false}, // outside the BMP: a surrogate pair in Java
		{"\U00010000", false},
		{"\U0010ffff", false},
		{"a\x01b", false},
		{"a\x1fb", false}, // the last C0 control
		{"a\x7fb", false},
		{"a\u0085b", false},
		{"a\u009fb", false},
		{"a\ue000b", false}, // private use
		{"a\uf8ffb", false},
		{"a\ufff0b", false},
		{"a\ufffdb", false},
		{"a\uffffb", false},
		{"a\xffb", false},         // not UTF-8
		{"a\xed\xa0\x80b", false}, // a surrogate encoded in UTF-8
		{"a\xc0\xafb", false},     // an overlong '/'
	}
	for _, tt := range tests {
		path := base + "/" + tt.name
		err := ValidatePath(path)
		if (err == nil) != tt.ok {
			t.Errorf("ValidatePath(%q) = %v, want ok %v", path, err, tt.ok)
			continue
		}
		if !tt.ok {
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), strconv.Quote(path)) {
				t.Errorf("ValidatePath(%q) = %v, want ErrInvalidArgument naming the path", path, err)
			}
			sent := c.RequestCount()
			if _, err := c.Create(testContext(t, 5*time.Second), path, nil, Persistent); !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("Create(%q) = %v, want ErrInvalidArgument", path, err)
			}
			if c.RequestCount() != sent {
				t.Errorf("Create(%q) sent a request", path)
			}
			// The server (or go-zookeeper, before it) refuses it indeed.
			if _, err := raw.Create(path, nil, 0, zk.WorldACL(zk.PermAll)); err == nil {
				t.Errorf("the server accepted %q, which ValidatePath refuses", path)
				raw.Delete(path, -1)
			}
			continue
		}
		ctx := testContext(t, 10*time.Second)
		if _, err := c.Create(ctx, path, nil, Persistent); err != nil {
			t.Errorf("Create(%q), a path ValidatePath accepts: %v", path, err)
			continue
		}
		if err := c.Delete(ctx, path, -1); err != nil {
			t.Errorf("Delete(%q): %v", path, err)
		}
	}
}

type quietLog struct{}

func (quietLog) Printf(string, ...any) {}
