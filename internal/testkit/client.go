package testkit

import (
	"errors"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit/zkenv"
)

// ConnectWait bounds how long Connect waits for a new client to connect.
const ConnectWait = 20 * time.Second

// Connect returns a client of addr made with opts (framework.NewClient), started, connected
// within ConnectWait and closed when t ends. It fails t if the client cannot be made or started,
// or does not connect in time.
func Connect(t testing.TB, addr string, opts ...framework.Option) *framework.Client {
	t.Helper()
	return connect(t, nil, addr, opts)
}

// Connect is Connect that also records the client as one of t's (Add), before it starts.
func (r *Registry) Connect(t testing.TB, addr string, opts ...framework.Option) *framework.Client {
	t.Helper()
	return connect(t, r, addr, opts)
}

func connect(t testing.TB, r *Registry, addr string, opts []framework.Option) *framework.Client {
	t.Helper()
	c, err := framework.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if r != nil {
		r.Add(t, c)
	}
	zkenv.StartClient(t, c, ConnectWait)
	return c
}

// childrenWait bounds how long Children waits for the listing.
const childrenWait = 10 * time.Second

// Children lists the names of path's children as c sees them, nil if path does not exist. It
// fails t on any other error, or if the listing takes longer than 10s.
func Children(t testing.TB, c *framework.Client, path string) []string {
	t.Helper()
	names, _, err := c.Children(zkenv.Context(t, childrenWait), path)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("children of %s: %v", path, err)
	}
	return names
}
