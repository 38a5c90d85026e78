package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWritePatchesEveryAccess(t *testing.T) {
	dir := t.TempDir()
	mod, err := write("../../../go.mod", dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(mod)
	if err != nil {
		t.Fatal(err)
	}
	if want := "replace " + module + " => " + filepath.Join(dir, "zk"); !strings.Contains(string(b), want) {
		t.Errorf("test.mod lacks %q:\n%s", want, b)
	}
	src, err := os.ReadFile(filepath.Join(dir, "zk", "conn.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), "lastZxid         atomic.Int64") {
		t.Error("lastZxid is not atomic in the patched copy")
	}
	if _, err := os.Stat(filepath.Join(dir, "test.sum")); err != nil {
		t.Error(err)
	}
}

func TestPatchRefusesUnknownSource(t *testing.T) {
	if _, err := patch("package zk\n"); err == nil {
		t.Fatal("patch of a source without lastZxid succeeded")
	}
}
