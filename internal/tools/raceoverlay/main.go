// Command raceoverlay writes a go.mod for the test build under which go-zookeeper's one known data
// race is gone, so that every test of ours can run under -race, the fault tests included.
//
// go-zookeeper v1.0.4 writes Conn.lastZxid in its receive loop and reads it, without
// synchronisation, when it re-sends watches and authenticates on a reconnect (conn.go). Any test
// that reconnects often trips the race detector on it. raceoverlay copies the module from the module
// cache into a directory of the caller's (never into this repository), makes lastZxid an
// atomic.Int64 in the copy's conn.go (nothing else changes), and writes a copy of the given go.mod
// (and its go.sum) that replaces go-zookeeper with the patched copy. `go test -modfile=` that file
// then builds against it; users' builds are untouched.
//
// Usage: go run ./internal/tools/raceoverlay GOMOD DIR writes DIR/zk (the patched module),
// DIR/test.mod and DIR/test.sum, and prints the path of DIR/test.mod. It fails, naming the pattern,
// if go-zookeeper's source is not the one it knows how to patch.
package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

const module = "github.com/go-zookeeper/zk"

// edits are the replacements, each with how many times it must occur in conn.go.
var edits = []struct {
	old, new string
	count    int
}{
	{"\tlastZxid         int64\n", "\tlastZxid         atomic.Int64\n", 1},
	{"RelativeZxid: c.lastZxid,", "RelativeZxid: c.lastZxid.Load(),", 1},
	{"LastZxidSeen:    c.lastZxid,", "LastZxidSeen:    c.lastZxid.Load(),", 1},
	{"c.lastZxid = 0\n", "c.lastZxid.Store(0)\n", 1},
	{"c.lastZxid = res.Zxid\n", "c.lastZxid.Store(res.Zxid)\n", 1},
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: raceoverlay GOMOD DIR")
		os.Exit(2)
	}
	path, err := write(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "raceoverlay:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// write makes the patched module and the go.mod that uses it, and returns that go.mod's path.
func write(gomod, dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = filepath.Dir(gomod)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating %s: %w", module, err)
	}
	src := strings.TrimSpace(string(out))
	dst := filepath.Join(dir, "zk")
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	if err := copyTree(src, dst); err != nil {
		return "", err
	}
	conn := filepath.Join(dst, "conn.go")
	text, err := os.ReadFile(conn)
	if err != nil {
		return "", err
	}
	patched, err := patch(string(text))
	if err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Join(src, "conn.go"), err)
	}
	if err := os.WriteFile(conn, []byte(patched), 0o644); err != nil {
		return "", err
	}
	mod, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	mod = append(mod, fmt.Sprintf("\nreplace %s => %s\n", module, dst)...)
	testMod := filepath.Join(dir, "test.mod")
	if err := os.WriteFile(testMod, mod, 0o644); err != nil {
		return "", err
	}
	sum, err := os.ReadFile(strings.TrimSuffix(gomod, ".mod") + ".sum")
	if err != nil {
		return "", err
	}
	return testMod, os.WriteFile(filepath.Join(dir, "test.sum"), sum, 0o644)
}

// copyTree copies the regular files under src to dst, writable (the module cache is read-only).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// patch applies edits to conn.go's text.
func patch(src string) (string, error) {
	for _, e := range edits {
		if n := strings.Count(src, e.old); n != e.count {
			return "", fmt.Errorf("found %q %d times, want %d: not the go-zookeeper source this patch is for", e.old, n, e.count)
		}
		src = strings.ReplaceAll(src, e.old, e.new)
	}
	if n := strings.Count(src, "c.lastZxid") - strings.Count(src, "c.lastZxid.Load()") - strings.Count(src, "c.lastZxid.Store("); n != 0 {
		return "", fmt.Errorf("%d accesses of lastZxid left unpatched", n)
	}
	return src, nil
}
