package recipes

import (
	"context"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
)

// cpuTime returns the process's user and system CPU time.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMutexPair measures one Acquire and Release of an uncontended mutex, with a deadline
// context as a service would give, on one client: the W1 workload of cmd/zkbench. Besides time
// and allocations per pair it reports the process's CPU time per pair (user and system, client
// and the test's bookkeeping; the server runs in another process) and heap allocations per pair
// counted by runtime.MemStats (all goroutines, go-zookeeper's included).
//
// The sub-benchmarks run it on a client without an observer and on one whose observer counts the
// events (framework.WithObserver): run both in one go to compare them.
func BenchmarkMutexPair(b *testing.B) {
	b.Run("no-observer", func(b *testing.B) { benchmarkMutexPair(b, newClient(b)) })
	b.Run("observer", func(b *testing.B) {
		var events atomic.Int64
		benchmarkMutexPair(b, newClient(b, framework.WithObserver(framework.ObserverFunc(func(framework.Event) { events.Add(1) }))))
		b.ReportMetric(float64(events.Load())/float64(b.N), "events/pair")
	})
}

func benchmarkMutexPair(b *testing.B, c *framework.Client) {
	m := NewInterProcessMutex(c, testPath(b, "lock"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pair := func() {
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		l, err := m.Acquire(actx)
		acancel()
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(); err != nil {
			b.Fatal(err)
		}
	}
	for range 50 { // warm up: the lock's parent, the connection's buffers
		pair()
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0, req0 := cpuTime(b), c.RequestCount()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		pair()
	}
	b.StopTimer()
	cpu := cpuTime(b) - cpu0
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/pair")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "mallocs/pair")
	b.ReportMetric(float64(c.RequestCount()-req0)/float64(b.N), "requests/pair")
}
