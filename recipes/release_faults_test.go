package recipes

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
)

// TestTryAcquireAfterReleaseThroughCut: two Releases' deletes are swallowed by a silent connection
// (black hole), so the Releases return; the connection is then cut. The deletes left over go first
// on the new connection, so the same client's TryAcquires once it has reconnected are granted.
func TestTryAcquireAfterReleaseThroughCut(t *testing.T) {
	t.Parallel()
	a, proxy := newProxiedClient(t, framework.WithSessionTimeout(10*time.Second),
		framework.WithErrorPolicy(framework.SessionErrorPolicy))
	states := make(chan framework.State, 64)
	defer a.Listen(func(s framework.State) { states <- s })()
	ctx := testContext(t, 120*time.Second)
	m1 := NewInterProcessMutex(a, testPath(t, "lock1"))
	m2 := NewInterProcessMutex(a, testPath(t, "lock2"))
	fails := 0
	const rounds = 6
	for i := range rounds {
		l1, err := m1.Acquire(ctx)
		if err != nil {
			t.Fatalf("round %d: Acquire: %v", i, err)
		}
		l2, err := m2.Acquire(ctx)
		if err != nil {
			t.Fatalf("round %d: Acquire: %v", i, err)
		}
		// Two locks released during one network blip.
		proxy.Blackhole(true)
		if err := l1.Release(); err != nil {
			t.Fatalf("round %d: Release: %v", i, err)
		}
		if err := l2.Release(); err != nil {
			t.Fatalf("round %d: Release: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond)
		proxy.Blackhole(false) // cuts the connection; the client reconnects in ms, same session
		// A request made while the connection is dead but not yet noticed would be queued and go
		// first on the next connection: the order holds for requests made after the reconnect.
		waitState(t, states, framework.Reconnected)
		for j, m := range []*InterProcessMutex{m1, m2} {
			l, err := m.TryAcquire(ctx)
			if err != nil {
				fails++
				t.Logf("round %d: TryAcquire of lock%d right after its Release (through a cut): %v", i, j+1, err)
				continue
			}
			if err := l.ReleaseWait(ctx); err != nil {
				t.Fatal(err)
			}
		}
		settle(t)
	}
	if fails > 0 {
		t.Errorf("%d of %d TryAcquires right after Release failed with the lock free: the client's next requests were applied before the release's delete", fails, 2*rounds)
	}
}

// TestReleaseWaitWithCloseUnconfirmed: ReleaseWait is running (the delete was swallowed by a silent
// connection) when the client is closed; the close-session request is swallowed too, so the node
// stays until the server expires the session. ReleaseWait must not return nil then.
func TestReleaseWaitWithCloseUnconfirmed(t *testing.T) {
	t.Parallel()
	a, proxy := newProxiedClient(t, framework.WithSessionTimeout(4*time.Second))
	b := newClient(t)
	ctx := testContext(t, 60*time.Second)
	path := testPath(t, "lock")
	l := acquired(t, ctx, NewInterProcessMutex(a, path).Acquire)
	node := l.Node()
	proxy.Blackhole(true)
	waited := make(chan error, 1)
	go func() { waited <- l.ReleaseWait(ctx) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	a.Close()
	t.Logf("Close took %v", time.Since(start))
	var werr error
	select {
	case werr = <-waited:
	case <-time.After(5 * time.Second):
		t.Fatal("ReleaseWait still running 5s after Close")
	}
	ok, _, err := b.Exists(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	if werr == nil && ok {
		t.Errorf("ReleaseWait returned nil (node gone) but another client sees %s still there", node)
	}
	if try, err := NewInterProcessMutex(b, path).TryAcquire(ctx); err == nil {
		try.Release()
	} else if werr == nil {
		t.Errorf("another client's TryAcquire right after ReleaseWait returned nil: %v (ErrLocked: %v)", err, errors.Is(err, ErrLocked))
	}
	returned := time.Now()
	if ok, _, gone, err := b.ExistsW(ctx, node); err == nil && ok {
		<-gone
		t.Logf("the node went %v after ReleaseWait returned nil (with the session's expiry)", time.Since(returned))
	}
}

// TestReleaseWaitInListenerThenClose: a state listener releases with ReleaseWait on
// Suspended while the server is unreachable; Close from another goroutine must end it promptly.
func TestReleaseWaitInListenerThenClose(t *testing.T) {
	t.Parallel()
	a, proxy := newProxiedClient(t, framework.WithErrorPolicy(framework.SessionErrorPolicy),
		framework.WithSessionTimeout(10*time.Second))
	ctx := testContext(t, 60*time.Second)
	l := acquired(t, ctx, NewInterProcessMutex(a, testPath(t, "lock")).Acquire)
	got := make(chan error, 1)
	entered := make(chan struct{})
	var once sync.Once
	a.Listen(func(s framework.State) {
		if s == framework.Suspended {
			once.Do(func() {
				close(entered)
				got <- l.ReleaseWait(context.Background())
			})
		}
	})
	proxy.Blackhole(true)
	proxy.CloseConnections()
	within(t, entered, 10*time.Second, "no Suspended")
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	done := make(chan struct{})
	go func() { a.Close(); close(done) }()
	select {
	case <-done:
		t.Logf("Close took %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("Close stuck for 5s with a listener in ReleaseWait")
	}
	err := within(t, got, time.Second, "ReleaseWait in the listener still running after Close")
	t.Logf("ReleaseWait in the listener returned %v", err)
	proxy.Blackhole(false)
}

// TestConcurrentReleaseAndClose: Release, ReleaseWait, and Close at once, many times.
func TestConcurrentReleaseAndClose(t *testing.T) {
	t.Parallel()
	for i := range 15 {
		a := newClient(t)
		ctx := testContext(t, 30*time.Second)
		l := acquired(t, ctx, NewInterProcessMutex(a, testPath(t, "lock")).Acquire)
		var wg sync.WaitGroup
		wg.Add(3)
		go func() { defer wg.Done(); l.Release() }()
		go func() { defer wg.Done(); l.ReleaseWait(ctx) }()
		go func() { defer wg.Done(); a.Close() }()
		ch := make(chan struct{})
		go func() { wg.Wait(); close(ch) }()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: stuck", i)
		}
	}
}
