package framework

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
)

// FuzzNewClient checks how NewClient reads a connect string ("host:port,...[/chroot]") and a
// namespace, without connecting (Start is never called):
//   - it does not panic;
//   - an error wraps ErrInvalidArgument;
//   - an accepted string yields at least one server and one per comma-separated entry, each a
//     "host:port" that net.SplitHostPort reads back into a non-empty host and a port in 1..65535
//     (2181 where the entry had none);
//   - the chroot and namespace together make a prefix that is empty or a valid path other than "/".
func FuzzNewClient(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:2181", "localhost", "zk1:2181,zk2:2182,zk3", "zk1:2181/app", "zk1:2181/app/locks",
		"zk1:2181/", "zk1:2181//", "zk1:2181/app/", "zk1/a/../b", "/app", "", ",", "zk1,", ",zk1",
		"zk1:", ":2181", "zk1:0", "zk1:65535", "zk1:65536", "zk1:99999999999999999999", "zk1:-1",
		"zk1:+80", "zk1:0x50", "zk1:٣", "[::1]:2181", "::1", "[::1]:", "[fe80::1%eth0]:2181",
		"zk1:2181:2181", "zk 1:2181", "zk1:2181/a\x00b", "zk1:2181/😀", "zk1\x00:2181", "[zk1]:2181",
		"[]:2181", "[:2181", "]:2181", "zk1:2181,/app",
	} {
		f.Add(s, "")
	}
	for _, ns := range []string{"app", "/app", "app/locks", "/", "//", "app/", ".", "a/../b", "\x00"} {
		f.Add("zk1:2181/chroot", ns)
	}
	f.Fuzz(func(t *testing.T, connect, namespace string) {
		// WithDefaultData spares NewClient its look-up of the local address.
		c, err := NewClient(connect, WithNamespace(namespace), WithDefaultData([]byte("fuzz")))
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("NewClient(%q) with namespace %q: %v, which does not wrap ErrInvalidArgument", connect, namespace, err)
			}
			return
		}
		hosts, _, _ := strings.Cut(connect, "/")
		if entries := strings.Count(hosts, ",") + 1; len(c.servers) != entries {
			t.Fatalf("NewClient(%q) has servers %q: want %d, one per entry", connect, c.servers, entries)
		}
		for _, s := range c.servers {
			host, port, err := net.SplitHostPort(s)
			if err != nil {
				t.Fatalf("NewClient(%q) has server %q, which is not host:port: %v", connect, s, err)
			}
			if host == "" {
				t.Fatalf("NewClient(%q) has server %q without a host", connect, s)
			}
			n, err := strconv.Atoi(port)
			if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
				t.Fatalf("NewClient(%q) has server %q whose port is not in 1..65535", connect, s)
			}
		}
		if c.prefix != "" {
			if err := ValidatePath(c.prefix); err != nil || c.prefix == "/" {
				t.Fatalf("NewClient(%q) with namespace %q has prefix %q, which is not a valid path other than /: %v", connect, namespace, c.prefix, err)
			}
		}
		if _, chroot, ok := strings.Cut(connect, "/"); ok && chroot != "" && !strings.HasPrefix(c.prefix, "/"+chroot) {
			t.Fatalf("NewClient(%q) has prefix %q, which does not start with the chroot", connect, c.prefix)
		}
		if !strings.HasSuffix(c.prefix, strings.TrimSuffix("/"+strings.TrimPrefix(namespace, "/"), "/")) {
			t.Fatalf("NewClient(%q) with namespace %q has prefix %q, which does not end with the namespace", connect, namespace, c.prefix)
		}
	})
}
