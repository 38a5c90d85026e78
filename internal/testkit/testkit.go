// Package testkit holds helpers that the tests of several packages share. It is imported only by
// tests.
package testkit

import (
	"context"
	"errors"
	"strings"
	"sync"
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

// Registry records the clients each test made, by test name, so that a check can wait for them.
type Registry struct {
	mu      sync.Mutex
	clients map[string][]*framework.Client
}

// Add records c as a client of t, until t ends.
func (r *Registry) Add(t testing.TB, c *framework.Client) {
	name := t.Name()
	r.mu.Lock()
	if r.clients == nil {
		r.clients = map[string][]*framework.Client{}
	}
	r.clients[name] = append(r.clients[name], c)
	r.mu.Unlock()
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.clients, name)
	})
}

// Of returns the clients made by t and by the tests t is a subtest of.
func (r *Registry) Of(t testing.TB) []*framework.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*framework.Client
	for name, cs := range r.clients {
		if name == t.Name() || strings.HasPrefix(t.Name(), name+"/") {
			out = append(out, cs...)
		}
	}
	return out
}

// settleWait bounds how long Settle waits for one client's deletes.
const settleWait = 5 * time.Second

// Settle waits until every connected client of t (see Registry) has no delete under way
// (framework.Client.PendingDeletes). A release sends its delete without waiting for the reply, so
// another client may still see the node for a round trip after Release returned; a check for nodes
// left behind looks once the releases' deletes are confirmed. A client that is not connected is not
// waited for, nor one whose deletes are not confirmed within a few seconds: the check then sees
// what is there.
func (r *Registry) Settle(t testing.TB) {
	t.Helper()
	for _, c := range r.Of(t) {
		deadline := time.Now().Add(settleWait)
		for c.State().IsConnected() && c.PendingDeletes() > 0 && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
	}
}
