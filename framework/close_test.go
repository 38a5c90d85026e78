package framework

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
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

// TestCallsRacingClose races operations of every kind (with and without a deadline) with Close:
// Close returns promptly, every call returns, an operation that fails fails with ErrClosed, and
// no create told it failed is applied. go-zookeeper's Close answers a request queued as it
// starts at once, yet may still send it, and decode its reply into a response its caller has
// read already (a data race): the client lets the calls in flight end before that Close.
func TestCallsRacingClose(t *testing.T) {
	checker := newClient(t, "", nil)
	const rounds, per = 12, 40
	for round := range rounds {
		c := newClient(t, "", nil)
		base := testPath(t)
		mustCreate(t, checker, base, nil)
		var wg sync.WaitGroup
		errs := make([]error, per)
		for i := range per {
			wg.Go(func() {
				ctx := context.Background()
				if i%2 == 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
				}
				p := fmt.Sprintf("%s/n%d", base, i)
				switch i % 4 {
				case 0, 1:
					_, errs[i] = c.Create(ctx, p, nil, Persistent)
				case 2:
					_, _, errs[i] = c.CreateAndList(ctx, p, nil, EphemeralSequential)
				case 3:
					_, _, errs[i] = c.Exists(ctx, p)
				}
			})
		}
		// Close at a different moment each round, while the calls are being made.
		time.Sleep(time.Duration(round%6) * 200 * time.Microsecond)
		start := time.Now()
		c.Close()
		if took := time.Since(start); took > 900*time.Millisecond {
			t.Errorf("round %d: Close took %v", round, took.Round(time.Millisecond))
		}
		returned := make(chan struct{})
		go func() { wg.Wait(); close(returned) }()
		waitClosed(t, returned, 10*time.Second, "the calls' return after Close")
		for i, err := range errs {
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrClosed) {
				t.Errorf("round %d: call %d failed with %v, want ErrClosed", round, i, err)
			}
			if i%4 < 2 && exists(t, checker, fmt.Sprintf("%s/n%d", base, i)) {
				t.Errorf("round %d: Create of n%d = %v, yet the node exists", round, i, err)
			}
		}
	}
}

// TestDialTimeoutIsNotCallersDeadline checks that an operation that fails because every dial
// times out says zk.ErrNoServer and does not match context.DeadlineExceeded (nor count as
// "other"): the caller's context has not ended, and the caller must not take it for its own.
func TestDialTimeoutIsNotCallersDeadline(t *testing.T) {
	dial := func(network, address string, _ time.Duration) (net.Conn, error) {
		d := net.Dialer{Timeout: time.Nanosecond} // every dial times out at once
		return d.Dial(network, address)
	}
	c, err := NewClient(testServer.ConnectString(), WithDialer(dial), WithConnectionTimeout(200*time.Millisecond),
		WithSessionTimeout(testSessionTimeout), WithRetryPolicy(retry.UntilElapsed(time.Second, 50*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = c.Exists(context.Background(), "/a")
	var ne net.Error
	if !errors.Is(err, zk.ErrNoServer) || errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) ||
		RequestOutcome(err) != "connection_loss" {
		t.Errorf("Exists = %v (outcome %q); want zk.ErrNoServer with the dial's net.Error, not context.DeadlineExceeded, outcome connection_loss",
			err, RequestOutcome(err))
	}
}

// TestStalledReconnectErrorText checks the errors while a connected client's reconnect stalls (the
// server takes the TCP connection and never answers the handshake, so no dial fails): the client
// has no dial error to report, and its errors say only what ended them.
func TestStalledReconnectErrorText(t *testing.T) {
	silent, _ := silentServer(t)
	p := testServer.Proxy(t)
	rec := newRecorder()
	c := newClient(t, p.Addr(), rec, WithConnectionTimeout(200*time.Millisecond))
	if err := c.lastConnErr(); err != nil {
		t.Errorf("lastConnErr() once connected = %#v, want nil", err)
	}
	p.SetTarget(silent)
	p.CloseConnections()
	rec.waitState(t, 1, Suspended, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.BlockUntilConnected(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "PANIC") || strings.Contains(err.Error(), "no server reachable") {
		t.Errorf("BlockUntilConnected = %v; want the context's error, and no dial error (none failed)", err)
	}
	_, _, err = c.Exists(testContext(t, 300*time.Millisecond), "/a")
	var ne *net.OpError
	if err == nil || strings.Contains(err.Error(), "PANIC") || errors.As(err, &ne) {
		t.Errorf("Exists = %v; want an error with no dial error in it", err)
	}
}
