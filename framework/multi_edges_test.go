package framework

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/zktest"
)

// A transaction made while the client is cut off is not handed to go-zookeeper (which would queue
// it and fail it later with zk.ErrNoServer): it is no unknown outcome, and it is tried again.
func TestMultiNotSentWhileCutOffIsRetried(t *testing.T) {
	t.Parallel()
	p, c := suspendedClient(t, WithConnectionTimeout(300*time.Millisecond))
	path := testPath(t)
	before := c.RequestCount()
	_, err := c.Multi(testContext(t, 20*time.Second), CreateOp(path, []byte("x"), Persistent))
	t.Logf("Multi: %v (requests counted: %d)", err, c.RequestCount()-before)
	p.Blackhole(false)
	if err := c.BlockUntilConnected(testContext(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	applied := exists(t, c, path)
	t.Logf("applied on the server: %v", applied)
	if errors.Is(err, ErrUnknownOutcome) && !applied {
		t.Errorf("Multi reported ErrUnknownOutcome (cause zk.ErrNoServer: %v) for a transaction that was never sent; it was not retried", errors.Is(err, zk.ErrNoServer))
	}
}

// flipCtx is a context whose Err turns to Canceled at its n-th call: as a deadline that passes
// between two checks.
type flipCtx struct {
	context.Context
	calls, n atomic.Int32
	done     chan struct{}
}

func (c *flipCtx) Done() <-chan struct{} { return c.done }
func (c *flipCtx) Err() error {
	if c.calls.Add(1) >= c.n.Load() {
		return context.Canceled
	}
	return nil
}

// A context that ends between two checks before the send: nothing is sent, and the error is the
// context's, not ErrUnknownOutcome.
func TestMultiContextEndingBeforeSendIsNotUnknown(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	path := testPath(t)
	// Err calls: retry.DoUntil's first check (1), Multi's check after connForTry (2), callUntil (3).
	ctx := &flipCtx{Context: context.Background(), done: make(chan struct{})}
	ctx.n.Store(3)
	_, err := c.Multi(ctx, CreateOp(path, nil, Persistent))
	t.Logf("Multi: %v", err)
	if errors.Is(err, ErrUnknownOutcome) && !exists(t, c, path) {
		t.Errorf("Multi reported ErrUnknownOutcome though go-zookeeper was never called")
	}
}

// A nil context is refused with ErrInvalidArgument, not a panic.
func TestMultiNilContext(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("Multi(nil ctx) panicked: %v", r)
		}
	}()
	//lint:ignore SA1012 the point of the test
	_, err := c.Multi(nil, CheckOp("/", AnyVersion)) //nolint:staticcheck
	t.Logf("Multi(nil): %v", err)
}

// A transaction whose context ends while its reply is held: ErrUnknownOutcome, and no data race
// with the abandoned call (run under -race).
func TestMultiAbandonedCallNoRace(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	c := newClient(t, p.Addr(), nil)
	for range 4 {
		path := testPath(t)
		held := p.HoldNextReply(zktest.OpMulti, 500*time.Millisecond, zktest.Deliver)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, err := c.Multi(ctx, CreateOp(path, nil, Persistent))
		cancel()
		if d := time.Since(start); d > 1200*time.Millisecond || !errors.Is(err, ErrUnknownOutcome) {
			t.Errorf("held reply: Multi returned after %v: %v", d, err)
		}
		<-held
		time.Sleep(700 * time.Millisecond) // the abandoned call returns and writes r
	}
}

// A Multi whose context ends returns within about a second, partitioned or with its reply held.
func TestMultiReturnsPromptlyDisconnected(t *testing.T) {
	t.Parallel()
	p, c := suspendedClient(t, WithConnectionTimeout(30*time.Second))
	path := testPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	_, err := c.Multi(ctx, SetOp(path, nil, AnyVersion))
	cancel()
	if d := time.Since(start); d > 1300*time.Millisecond || errors.Is(err, ErrUnknownOutcome) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("disconnected: Multi returned after %v: %v", d, err)
	}
	p.Blackhole(false)
}
