package curatorprom

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// contendedMutex takes a new lock path of srv with one client, released when the test ends, and
// returns a mutex on that path of a second client whose events go to obs (through ev), a new
// Observer: every acquire of m waits behind the holder until the test ends.
func contendedMutex(t *testing.T, srv *zktest.Server) (*recipes.InterProcessMutex, *Observer, *events) {
	t.Helper()
	path := lockPath(t, srv)
	holder := recipes.NewInterProcessMutex(connect(t, srv.ConnectString(), nil), path)
	lease, err := holder.Acquire(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lease.Release() })
	c, obs, ev := observedClient(t, srv.ConnectString())
	return recipes.NewInterProcessMutex(c, path), obs, ev
}

// observedClient returns a new client of addr, made with opts, whose events go to obs (through
// ev, which lets a test await them), a new Observer.
func observedClient(t *testing.T, addr string, opts ...framework.Option) (c *framework.Client, obs *Observer, ev *events) {
	t.Helper()
	obs = New()
	ev = newEvents(obs)
	return connect(t, addr, ev, opts...), obs, ev
}

// TestSemaphoreSeveralLeasesHoldsGauge: an Acquire of 2 leases of a Semaphore counts two holds
// while both are held, and none once both are released.
func TestSemaphoreSeveralLeasesHoldsGauge(t *testing.T) {
	srv := server(t)
	c, obs, ev := observedClient(t, srv.ConnectString())
	ctx := testCtx(t)
	s := recipes.NewSemaphore(c, lockPath(t, srv), 2)

	leases, err := s.Acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	ev.await(t, "semaphore", framework.EventAcquireGranted)
	if got := value(t, obs, `gocurator_holds{recipe="semaphore"}`); got != 2 {
		t.Errorf(`while 2 leases are held: gocurator_holds{recipe="semaphore"} = %v, want 2`, got)
	}
	for _, l := range leases {
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
	}
	ev.await(t, "semaphore", framework.EventHoldEnded, framework.EventHoldEnded)
	if got := value(t, obs, `gocurator_holds{recipe="semaphore"}`); got != 0 {
		t.Errorf(`after both leases are released: gocurator_holds{recipe="semaphore"} = %v, want 0`, got)
	}
}

// TestSemaphorePartialGiveUp: an Acquire of 2 leases that gets one, then times out waiting
// for the second, gives the first back: no hold reached the caller, so none is counted, started
// or ended.
func TestSemaphorePartialGiveUp(t *testing.T) {
	srv := server(t)
	path := lockPath(t, srv)
	other := recipes.NewSemaphore(connect(t, srv.ConnectString(), nil), path, 2)
	held, err := other.Acquire(testCtx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer held[0].Release()

	c, obs, ev := observedClient(t, srv.ConnectString())
	ctx, cancel := context.WithTimeout(testCtx(t), 500*time.Millisecond)
	defer cancel()
	if _, err := recipes.NewSemaphore(c, path, 2).Acquire(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire(2) with one of 2 leases held elsewhere = %v, want DeadlineExceeded", err)
	}
	ev.await(t, "semaphore", framework.EventAcquireFailed)
	time.Sleep(200 * time.Millisecond) // let any HoldEnded land
	wantSeries(t, obs, map[string]float64{
		`gocurator_acquires_total{outcome="timeout",recipe="semaphore"}`:           1,
		`gocurator_acquires_total{outcome="granted",recipe="semaphore"}`:           0,
		`gocurator_holds{recipe="semaphore"}`:                                      0,
		`gocurator_waiters{recipe="semaphore"}`:                                    0,
		`gocurator_hold_duration_seconds_count{end="released",recipe="semaphore"}`: 0,
	})
}

// TestAcquireTimeoutWithCause: an acquire bounded by context.WithTimeoutCause (as zklock's
// --wait is) that runs out is counted as a timeout: its error wraps DeadlineExceeded as well as
// the cause.
func TestAcquireTimeoutWithCause(t *testing.T) {
	m, obs, ev := contendedMutex(t, server(t))
	ctx, cancel := context.WithTimeoutCause(testCtx(t), 300*time.Millisecond, errors.New("not had in time"))
	defer cancel()
	if _, err := m.Acquire(ctx); err == nil {
		t.Fatal("acquired a held lock")
	}
	ev.await(t, "mutex", framework.EventAcquireFailed)
	wantSeries(t, obs, map[string]float64{
		`gocurator_acquires_total{outcome="timeout",recipe="mutex"}`: 1,
		`gocurator_acquires_total{outcome="error",recipe="mutex"}`:   0,
	})
}

// TestClientStateScrape: every scrape, however the state changes meanwhile, sees exactly one
// client_state at 1.
func TestClientStateScrape(t *testing.T) {
	obs := New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(obs)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		states := []framework.State{framework.Connected, framework.Suspended, framework.Reconnected, framework.Lost, framework.Connected}
		for i := 0; !stop.Load(); i++ {
			obs.Observe(framework.Event{Kind: framework.EventStateChange, State: states[i%len(states)]})
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()
	deadline := time.Now().Add(3 * time.Second)
	bad := map[float64]int{}
	for time.Now().Before(deadline) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "gocurator_client_state" {
				continue
			}
			sum := 0.0
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
			if sum != 1 {
				bad[sum]++
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("sum(gocurator_client_state) != 1 in scrapes: %v (value: count)", bad)
	}
	_ = dto.MetricType_GAUGE
}
