package framework

import (
	"context"
	"net"
	"testing"
	"time"
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
