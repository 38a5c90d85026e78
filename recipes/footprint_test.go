package recipes

import (
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
)

// serverWatchCount returns the server's zk_watch_count (mntr).
func serverWatchCount(t testing.TB) int64 {
	t.Helper()
	out, err := testServer.FourLetter("mntr")
	if err != nil {
		t.Fatalf("mntr: %v", err)
	}
	for line := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "zk_watch_count" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("mntr: %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("mntr has no zk_watch_count:\n%s", out)
	return 0
}

// TestWaiterFootprint queues many acquires, each on a lock of its own that another client holds,
// and checks what they keep while all wait: one goroutine each (no helper goroutine outlives
// the requests that queued it), and, once the garbage collector has run, stacks of about 4 KB
// (the smallest a goroutine that made requests keeps): the goroutines that made the requests
// are few at any time, so their stacks do not stay scattered between the waiters', and a waiter
// parks a few small frames deep.
func TestWaiterFootprint(t *testing.T) {
	if raceEnabled {
		t.Skip("stack sizes under the race detector are not those of a normal build")
	}
	const waiters = 2000
	const maxStackPerWaiter = 6 << 10 // 8 KB and more before: a stack of 8 KB each, or holes of 4 KB between stacks of 4 KB
	for _, tc := range []struct {
		name   string
		holder func(c *framework.Client, path string) Locker
		waiter func(c *framework.Client, path string) Locker
	}{
		{"mutex",
			func(c *framework.Client, p string) Locker { return NewInterProcessMutex(c, p) },
			func(c *framework.Client, p string) Locker { return NewInterProcessMutex(c, p) }},
		{"write lock",
			func(c *framework.Client, p string) Locker { return NewReadWriteLock(c, p).WriteLock() },
			func(c *framework.Client, p string) Locker { return NewReadWriteLock(c, p).WriteLock() }},
		{"read lock",
			func(c *framework.Client, p string) Locker { return NewReadWriteLock(c, p).WriteLock() },
			func(c *framework.Client, p string) Locker { return NewReadWriteLock(c, p).ReadLock() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			holderC, waiterC := newClient(t), newClient(t)
			ctx := testContext(t, 2*time.Minute)
			paths := make([]string, waiters)
			leases := make([]*Lease, waiters)
			for i := range paths {
				paths[i] = testPath(t, "p"+strconv.Itoa(i))
				l, err := tc.holder(holderC, paths[i]).Acquire(ctx)
				if err != nil {
					t.Fatalf("holder: %v", err)
				}
				leases[i] = l
			}
			watches := serverWatchCount(t)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			g0 := runtime.NumGoroutine()

			errs := make(chan error, waiters)
			var wg sync.WaitGroup
			for _, p := range paths {
				lk := tc.waiter(waiterC, p)
				wg.Go(func() {
					l, err := lk.Acquire(ctx)
					if err == nil {
						err = l.Release()
					}
					errs <- err
				})
			}
			// Queued once the server holds a watch for each (it tells no one: poll it).
			for serverWatchCount(t) < watches+waiters {
				select {
				case err := <-errs:
					t.Fatalf("acquire returned early: %v", err)
				case <-time.After(20 * time.Millisecond):
				}
			}
			goroutines := float64(runtime.NumGoroutine()-g0) / waiters
			runtime.GC()
			runtime.GC() // a stack shrinks by half at most per cycle
			runtime.ReadMemStats(&after)
			stack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / waiters
			heap := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / waiters
			t.Logf("per waiter: %.2f goroutines, %.0f stack bytes, %.0f heap bytes", goroutines, stack, heap)
			if goroutines > 1.02 {
				t.Errorf("%.2f goroutines per waiting acquire, want 1", goroutines)
			}
			if stack > maxStackPerWaiter {
				t.Errorf("%.0f stack bytes per waiting acquire, want at most %d", stack, maxStackPerWaiter)
			}

			for _, l := range leases {
				if err := l.Release(); err != nil {
					t.Errorf("holder release: %v", err)
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("waiter: %v", err)
				}
			}
		})
	}
}
