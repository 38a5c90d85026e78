package recipes

import (
	"context"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/zktest"
)

// TestRecipesOverTLS runs each recipe's basic acquire and release, or leadership, with a client
// that reaches ZooKeeper over mutual TLS only.
func TestRecipesOverTLS(t *testing.T) {
	s := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{}))
	c := connect(t, s.SecureConnectString(), framework.WithTLS(s.ClientTLSConfig()))
	path := func(name string) string { return s.Root() + "/tls/" + name }

	// lockers take a lease and let it go; each lease must hold until released.
	lockers := []struct {
		name    string
		acquire func(ctx context.Context) ([]*Lease, error)
	}{
		{"InterProcessMutex", one(NewInterProcessMutex(c, path("mutex")).Acquire)},
		{"SemaphoreMutex", one(NewSemaphoreMutex(c, path("semaphore-mutex")).Acquire)},
		{"Semaphore", func(ctx context.Context) ([]*Lease, error) {
			return NewSemaphore(c, path("semaphore"), 3).Acquire(ctx, 2)
		}},
		{"ReadLock", one(NewReadWriteLock(c, path("rw")).ReadLock().Acquire)},
		{"WriteLock", one(NewReadWriteLock(c, path("rw")).WriteLock().Acquire)},
		{"MultiLock", one(NewMultiLockPaths(c, path("multi-a"), path("multi-b")).Acquire)},
	}
	for _, tt := range lockers {
		t.Run(tt.name, func(t *testing.T) {
			leases, err := tt.acquire(testContext(t, 20*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range leases {
				if err := l.Err(); err != nil {
					t.Errorf("lease %s ended before its release: %v", l.Node(), err)
				}
				if err := l.Release(); err != nil {
					t.Errorf("release %s: %v", l.Node(), err)
				}
			}
		})
	}

	t.Run("LeaderLatch", func(t *testing.T) {
		l := NewLeaderLatch(c, path("latch"))
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		if err := l.Await(testContext(t, 20*time.Second)); err != nil {
			t.Fatal(err)
		}
		if !l.HasLeadership() {
			t.Error("HasLeadership() = false after Await")
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("LeaderSelector", func(t *testing.T) {
		led := make(chan int64, 1)
		sel := NewLeaderSelector(c, path("selector"), func(ctx context.Context) error {
			token, _ := LeadershipToken(ctx)
			led <- token
			<-ctx.Done()
			return nil
		})
		if err := sel.Start(); err != nil {
			t.Fatal(err)
		}
		token := within(t, led, 20*time.Second, "the selector did not lead")
		if token <= 0 {
			t.Errorf("leadership token %d, want > 0", token)
		}
		if err := sel.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// one adapts an Acquire that returns one lease.
func one(acquire func(context.Context) (*Lease, error)) func(context.Context) ([]*Lease, error) {
	return func(ctx context.Context) ([]*Lease, error) {
		l, err := acquire(ctx)
		if err != nil {
			return nil, err
		}
		return []*Lease{l}, nil
	}
}
