package framework

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCallsInFlightBounded starts more cancellable calls at once than maxCallsInFlight, each of
// which blocks until released: at most maxCallsInFlight run at a time, the others wait without
// running; when their context ends, all of them, running or waiting, return within a second with
// the context's error; a call with a stop channel (a guaranteed delete's) never waits.
func TestCallsInFlightBounded(t *testing.T) {
	for _, tc := range []struct {
		name    string
		extra   int  // calls beyond maxCallsInFlight
		withDel bool // also make a call with a stop channel while all places are taken
	}{
		{name: "beyond the bound", extra: 50},
		{name: "stop-channel call not counted", extra: 1, withDel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, "", nil)
			n := maxCallsInFlight + tc.extra
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			release := make(chan struct{})
			var running, peak, ran atomic.Int32
			entered := make(chan struct{}, n+1)
			block := func() error {
				r := running.Add(1)
				for p := peak.Load(); r > p && !peak.CompareAndSwap(p, r); p = peak.Load() {
				}
				ran.Add(1)
				entered <- struct{}{}
				<-release
				running.Add(-1)
				return nil
			}
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() { errs <- c.call(ctx, block, nil) })
			}
			for range maxCallsInFlight {
				<-entered
			}
			if tc.withDel {
				stop := make(chan struct{})
				done := make(chan error, 1)
				go func() { done <- c.callUntil(ctx, stop, func() error { return nil }, nil) }()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("stop-channel call: %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Errorf("a stop-channel call waited behind %d running calls", maxCallsInFlight)
				}
			}
			start := time.Now()
			cancel()
			wg.Wait()
			if d := time.Since(start); d > time.Second {
				t.Errorf("calls returned %v after their context ended, want within 1s", d)
			}
			close(errs)
			for err := range errs {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("call: %v, want context.Canceled", err)
				}
			}
			close(release)
			c.Close() // waits for the calls' goroutines
			if p := peak.Load(); p > maxCallsInFlight {
				t.Errorf("%d calls ran at once, want at most %d", p, maxCallsInFlight)
			}
			if r := ran.Load(); r != maxCallsInFlight {
				t.Errorf("%d calls ran, want %d: a call that gave up waiting must not run", r, maxCallsInFlight)
			}
		})
	}
}
