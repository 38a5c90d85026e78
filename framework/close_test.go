package framework

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/retry"
)

// TestCloseWithoutSession checks that Close returns at once when the client never got a session,
// wherever its connection stands: a handshake the server never answers, a port that refuses, a
// name that does not resolve. go-zookeeper's Close waits a fixed second for an answer to its close
// request when no session ever sends one; the Client must not pass that wait on to its caller (a
// command-line tool with a connection timeout would overrun it by that second).
func TestCloseWithoutSession(t *testing.T) {
	refused := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	silent, accepted := silentServer(t)
	// Close must take far less than go-zookeeper's fixed second; the bound leaves room for a
	// loaded machine.
	const bound = 500 * time.Millisecond
	for _, tc := range []struct {
		name, servers string
		wait          func(t *testing.T, c *Client)
	}{
		{"handshake pending", silent, func(t *testing.T, c *Client) {
			select {
			case <-accepted:
			case <-time.After(10 * time.Second):
				t.Fatal("the client did not connect to the silent server")
			}
		}},
		{"refused", refused, nil},
		{"unresolvable name", "gocurator-no-such-host.invalid:2181", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 8 {
				c, err := NewClient(tc.servers, WithConnectionTimeout(time.Minute), WithSessionTimeout(testSessionTimeout))
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				if tc.wait != nil {
					tc.wait(t, c)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(round)*10*time.Millisecond)
				if err := c.BlockUntilConnected(ctx); err == nil {
					t.Fatal("connected")
				}
				cancel()
				start := time.Now()
				c.Close()
				if took := time.Since(start); took > bound {
					t.Errorf("round %d: Close took %v without a session", round, took.Round(time.Millisecond))
				}
			}
		})
	}
}

// TestNoTryOnDisconnectedConnection checks that an operation is never handed to a connection the
// client does not know to be up: against a server that takes the connection and never answers the
// handshake, each try fails (retryably, nothing sent) after the connection timeout, and the
// operation returns under its retry policy even with a context that never ends. go-zookeeper would
// queue a request made on such a connection and fail it only when the handshake does, or send it
// whenever a session comes, long after its caller was told it failed.
func TestNoTryOnDisconnectedConnection(t *testing.T) {
	silent, _ := silentServer(t)
	c, err := NewClient(silent, WithConnectionTimeout(300*time.Millisecond), WithSessionTimeout(testSessionTimeout),
		WithRetryPolicy(retry.UntilElapsed(2*time.Second, 50*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Exists(context.Background(), "/a")
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, zk.ErrNoServer) || !retry.IsRetryable(err) {
			t.Errorf("Exists = %v; want a retryable zk.ErrNoServer", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("Exists(context.Background()) did not return within 8s; its retry policy gives up after 2s")
	}
}

// TestCloseRightAfterDrop checks that Close returns at once when it comes right after the
// connection dropped (a process that shuts down on a network blip): go-zookeeper still says it
// has a session until its loops have ended, and its Close would queue its close request where no
// one takes it, and wait a second for the answer.
func TestCloseRightAfterDrop(t *testing.T) {
	const rounds = 12
	for round := range rounds {
		p := testServer.Proxy(t)
		c, err := NewClient(p.Addr(), WithSessionTimeout(4*time.Second), WithConnectionTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		if err := c.BlockUntilConnected(testContext(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		p.CloseConnections()
		// Close a little after the drop, at a different moment each round: the window is the
		// time go-zookeeper's loops take to end.
		time.Sleep(time.Duration(round%4) * 500 * time.Microsecond)
		start := time.Now()
		c.Close()
		if took := time.Since(start); took > 500*time.Millisecond {
			t.Errorf("round %d: Close right after a connection drop took %v", round, took.Round(time.Millisecond))
		}
	}
}
