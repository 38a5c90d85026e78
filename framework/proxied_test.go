package framework

import (
	"context"
	"testing"
	"time"

	"github.com/gocurator/curator/zktest"
)

// proxiedNode is a test's client of testServer through a fault proxy, a node that client made,
// and a second client straight to the server, which sees the node whatever the proxy does.
type proxiedNode struct {
	p       *zktest.Proxy
	c       *Client // through p
	watcher *Client // straight to testServer
	path    string  // a new persistent node with no data, made by c
}

// newProxiedNode starts a proxy to testServer, c through it (its state changes go to rec, which
// may be nil; opts are c's), watcher straight to the server, and makes a new node with c. All
// are closed when the test ends.
func newProxiedNode(t *testing.T, rec *recorder, opts ...Option) proxiedNode {
	t.Helper()
	n := proxiedNode{p: testServer.Proxy(t)}
	n.c = newClient(t, n.p.Addr(), rec, opts...)
	n.watcher = newClient(t, "", nil)
	n.path = testPath(t)
	mustCreate(t, n.c, n.path, nil)
	return n
}

// deleteBehindPartition partitions n's proxy and deletes n's node with DeleteGuaranteed, under a
// context that ends after timeout: the test stops unless the call returns nil and leaves exactly
// one background delete pending. The proxy stays partitioned.
func (n proxiedNode) deleteBehindPartition(t *testing.T, timeout time.Duration) {
	t.Helper()
	n.p.Blackhole(true)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := n.c.DeleteGuaranteed(ctx, n.path); err != nil {
		t.Fatalf("DeleteGuaranteed on a partitioned connection = %v, want nil", err)
	}
	if pending := n.c.PendingDeletes(); pending != 1 {
		t.Fatalf("PendingDeletes() = %d, want 1", pending)
	}
}

// goProtectedCreate starts c.Create(path, nil, mode, WithProtection()) in a goroutine, under a
// context that ends after 30s, and returns a function that waits for its return and gives what
// it returned; the test stops if it has not returned within 30s of that wait.
func goProtectedCreate(t *testing.T, c *Client, path string, mode CreateMode) (wait func() (Created, error)) {
	type result struct {
		created Created
		err     error
	}
	done := make(chan result, 1)
	go func() {
		got, err := c.Create(testContext(t, 30*time.Second), path, nil, mode, WithProtection())
		done <- result{got, err}
	}()
	return func() (Created, error) {
		t.Helper()
		select {
		case res := <-done:
			return res.created, res.err
		case <-time.After(30 * time.Second):
			t.Fatal("Create did not return")
			return Created{}, nil
		}
	}
}

// suspendedClient starts a proxy to testServer and a client through it, made with opts, then
// partitions the proxy, closes its connections, and returns once the client is Suspended. The
// proxy stays partitioned.
func suspendedClient(t *testing.T, opts ...Option) (*zktest.Proxy, *Client) {
	t.Helper()
	p := testServer.Proxy(t)
	rec := newRecorder()
	c := newClient(t, p.Addr(), rec, opts...)
	p.Blackhole(true)
	p.CloseConnections()
	rec.waitState(t, 1, Suspended, 10*time.Second)
	return p, c
}

// healAndWantDeleted ends the partition of n's proxy, waits up to 15s for c's background deletes
// to be done, and checks that they deleted n's node. It returns when the partition ended.
func (n proxiedNode) healAndWantDeleted(t *testing.T) (healed time.Time) {
	t.Helper()
	healed = time.Now()
	n.p.Blackhole(false)
	eventually(t, 15*time.Second, "the background delete", func() bool { return n.c.PendingDeletes() == 0 })
	if exists(t, n.watcher, n.path) {
		t.Error("node still there after the background delete")
	}
	return healed
}
