// Package testkit holds helpers that the tests of several packages share. It is imported only by
// tests.
package testkit

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
)

// WaitChildren waits, with a child watch (and an exists watch while path does not exist yet),
// until path has at least n children, failing the test after d.
func WaitChildren(t testing.TB, c *framework.Client, path string, n int, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		names, _, w, err := c.ChildrenW(ctx, path)
		if errors.Is(err, zk.ErrNoNode) {
			var ok bool
			ok, _, w, err = c.ExistsW(ctx, path)
			if err == nil && ok {
				continue
			}
		}
		if err != nil {
			t.Fatalf("waiting for %d children of %s: %v", n, path, err)
		}
		if len(names) >= n {
			return
		}
		select {
		case <-w:
		case <-ctx.Done():
			t.Fatalf("waiting for %d children of %s: %v (have %v)", n, path, ctx.Err(), names)
		}
	}
}
