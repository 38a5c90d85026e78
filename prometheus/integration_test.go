package curatorprom

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit/zkenv"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// The unit tests need no server; the integration tests start one on first use.
var testServer zkenv.LazyServer

func TestMain(m *testing.M) {
	zkenv.Main(m, testServer.Step())
}

// server returns the shared server, started on first use (zkenv.LazyServer.Get).
func server(t *testing.T) *zktest.Server {
	t.Helper()
	return testServer.Get(t)
}

// events is an observer that hands every event to an Observer and then, without ever blocking,
// to a channel, so that a test can wait for an event and knows the metrics moved when it sees it.
type events struct {
	obs *Observer
	ch  chan framework.Event
}

func newEvents(obs *Observer) *events { return &events{obs: obs, ch: make(chan framework.Event, 1024)} }

func (ev *events) Observe(e framework.Event) {
	ev.obs.Observe(e)
	if e.Kind != framework.EventRequest {
		select {
		case ev.ch <- e:
		default:
		}
	}
}

// await waits until it has seen an event of each of kinds (of recipe, if not empty), in any
// order, skipping others.
func (ev *events) await(t *testing.T, recipe string, kinds ...framework.EventKind) {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	missing := append([]framework.EventKind(nil), kinds...)
	for len(missing) > 0 {
		select {
		case e := <-ev.ch:
			if i := slices.Index(missing, e.Kind); i >= 0 && (recipe == "" || e.Recipe == recipe) {
				missing = slices.Delete(missing, i, i+1)
			}
		case <-timeout.C:
			t.Fatalf("no %v event within 30s", missing)
		}
	}
}

func connect(t *testing.T, addr string, o framework.Observer, opts ...framework.Option) *framework.Client {
	t.Helper()
	opts = append([]framework.Option{framework.WithSessionTimeout(2 * time.Second), framework.WithConnectionTimeout(2 * time.Second)}, opts...)
	if o != nil {
		opts = append(opts, framework.WithObserver(o))
	}
	c, err := framework.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	zkenv.StartClient(t, c, 30*time.Second)
	return c
}

// lockPath returns a path of the test's own under the server's root (zkenv.Path).
func lockPath(t *testing.T, srv *zktest.Server) string {
	t.Helper()
	return zkenv.Path(t, srv.Root()+"/curatorprom")
}

// testCtx returns a context that ends with the test, or after a minute.
func testCtx(t *testing.T) context.Context {
	return zkenv.Context(t, time.Minute)
}

func value(t *testing.T, o *Observer, name string) float64 {
	t.Helper()
	return series(t, o)[name]
}

// wantSeries checks the named series of o against want (0 for a series at zero or absent).
func wantSeries(t *testing.T, o *Observer, want map[string]float64) {
	t.Helper()
	got := series(t, o)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %v, want %v", name, got[name], w)
		}
	}
}

// A grant and a release on a real server; the client's connection and requests too.
func TestIntegrationGrantAndRelease(t *testing.T) {
	srv := server(t)
	c, obs, ev := observedClient(t, srv.ConnectString())
	ctx := testCtx(t)
	m := recipes.NewInterProcessMutex(c, lockPath(t, srv))

	lease, err := m.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev.await(t, "", framework.EventSessionOpened, framework.EventStateChange, framework.EventAcquireGranted)
	wantSeries(t, obs, map[string]float64{
		`gocurator_client_state{state="connected"}`:                              1,
		`gocurator_client_state{state="latent"}`:                                 0,
		`gocurator_sessions_total{event="opened"}`:                               1,
		`gocurator_acquires_total{outcome="granted",recipe="mutex"}`:             1,
		`gocurator_acquire_wait_seconds_count{outcome="granted",recipe="mutex"}`: 1,
		`gocurator_holds{recipe="mutex"}`:                                        1,
		`gocurator_waiters{recipe="mutex"}`:                                      0,
	})
	if err := lease.Release(); err != nil {
		t.Fatal(err)
	}
	ev.await(t, "mutex", framework.EventHoldEnded)
	wantSeries(t, obs, map[string]float64{
		`gocurator_holds{recipe="mutex"}`:                                      0,
		`gocurator_hold_duration_seconds_count{end="released",recipe="mutex"}`: 1,
		`gocurator_hold_duration_seconds_count{end="lost",recipe="mutex"}`:     0,
	})
	if value(t, obs, `gocurator_requests_total{op="create",outcome="ok"}`) < 1 {
		t.Error("no create request counted")
	}
	if value(t, obs, `gocurator_request_duration_seconds_count{op="create"}`) < 1 {
		t.Error("no create request timed")
	}

	if err := c.Delete(ctx, lockPath(t, srv)+"/missing", -1); err == nil {
		t.Fatal("deleting a missing node succeeded")
	}
	if got := value(t, obs, `gocurator_requests_total{op="delete",outcome="no_node"}`); got != 1 {
		t.Errorf(`requests_total{op="delete",outcome="no_node"} = %v, want 1`, got)
	}
}

// Acquires that fail while another client holds the lock, each counted with its outcome.
func TestIntegrationAcquireFails(t *testing.T) {
	srv := server(t)
	tests := []struct {
		name    string
		acquire func(t *testing.T, m *recipes.InterProcessMutex, ev *events) error
		outcome string
	}{
		{"timeout", func(t *testing.T, m *recipes.InterProcessMutex, _ *events) error {
			ctx, cancel := context.WithTimeout(testCtx(t), 300*time.Millisecond)
			defer cancel()
			_, err := m.Acquire(ctx)
			return err
		}, "timeout"},
		{"canceled", func(t *testing.T, m *recipes.InterProcessMutex, ev *events) error {
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			errc := make(chan error, 1)
			go func() {
				_, err := m.Acquire(ctx)
				errc <- err
			}()
			ev.await(t, "mutex", framework.EventAcquireStarted)
			cancel()
			return <-errc
		}, "canceled"},
		{"locked", func(t *testing.T, m *recipes.InterProcessMutex, _ *events) error {
			_, err := m.TryAcquire(testCtx(t))
			return err
		}, "locked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, obs, ev := contendedMutex(t, srv)
			if err := tt.acquire(t, m, ev); err == nil {
				t.Fatal("acquired a lock that another client holds")
			}
			ev.await(t, "mutex", framework.EventAcquireFailed)
			want := map[string]float64{
				`gocurator_waiters{recipe="mutex"}`:                          0,
				`gocurator_holds{recipe="mutex"}`:                            0,
				`gocurator_acquires_total{outcome="granted",recipe="mutex"}`: 0,
			}
			for _, out := range acquireOutcomes[1:] {
				n := 0.0
				if out == tt.outcome {
					n = 1
				}
				want[`gocurator_acquires_total{outcome="`+out+`",recipe="mutex"}`] = n
				want[`gocurator_acquire_wait_seconds_count{outcome="`+out+`",recipe="mutex"}`] = n
			}
			wantSeries(t, obs, want)
		})
	}
}

// A hold lost when the session expires behind a fault proxy: under the standard error policy it
// ends at Suspended, under the session policy at Lost.
func TestIntegrationHoldLostByExpiry(t *testing.T) {
	srv := server(t)
	tests := []struct {
		name   string
		policy framework.ErrorPolicy
		reason string
	}{
		{"standard policy", framework.StandardErrorPolicy, "suspended"},
		{"session policy", framework.SessionErrorPolicy, "session_lost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := srv.Proxy(t)
			c, obs, ev := observedClient(t, p.Addr(), framework.WithErrorPolicy(tt.policy))
			lease, err := recipes.NewInterProcessMutex(c, lockPath(t, srv)).Acquire(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := p.ExpireSession(testCtx(t), srv, c.SessionID()); err != nil {
				t.Fatal(err)
			}
			<-lease.Done()
			if !errors.Is(lease.Err(), recipes.ErrLockLost) {
				t.Fatalf("lease.Err() = %v, want ErrLockLost", lease.Err())
			}
			ev.await(t, "", framework.EventHoldEnded, framework.EventSessionLost)
			want := map[string]float64{
				`gocurator_holds{recipe="mutex"}`:                                      0,
				`gocurator_hold_duration_seconds_count{end="lost",recipe="mutex"}`:     1,
				`gocurator_hold_duration_seconds_count{end="released",recipe="mutex"}`: 0,
			}
			for _, r := range lostReasons {
				n := 0.0
				if r == tt.reason {
					n = 1
				}
				want[`gocurator_holds_lost_total{reason="`+r+`",recipe="mutex"}`] = n
			}
			wantSeries(t, obs, want)
			if got := value(t, obs, `gocurator_sessions_total{event="lost"}`); got != 1 {
				t.Errorf(`sessions_total{event="lost"} = %v, want 1`, got)
			}
			lease.Release()
		})
	}
}

// Leadership moves from a latch that closes to the other one, both on clients that share one
// Observer.
func TestIntegrationLeadershipChange(t *testing.T) {
	srv := server(t)
	obs := New()
	ev := newEvents(obs)
	path := lockPath(t, srv)
	first := recipes.NewLeaderLatch(connect(t, srv.ConnectString(), ev), path)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	ev.await(t, "leader-latch", framework.EventLeadershipGained)
	second := recipes.NewLeaderLatch(connect(t, srv.ConnectString(), ev), path)
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	wantSeries(t, obs, map[string]float64{
		`gocurator_leader{recipe="leader-latch"}`:                                   1,
		`gocurator_leadership_changes_total{change="gained",recipe="leader-latch"}`: 1,
	})

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	ev.await(t, "leader-latch", framework.EventLeadershipLost, framework.EventLeadershipGained)
	if !second.HasLeadership() {
		t.Fatal("the second latch does not lead after the first closed")
	}
	wantSeries(t, obs, map[string]float64{
		`gocurator_leader{recipe="leader-latch"}`:                                   1,
		`gocurator_leadership_changes_total{change="gained",recipe="leader-latch"}`: 2,
		`gocurator_leadership_changes_total{change="lost",recipe="leader-latch"}`:   1,
	})
	if n := testutil.CollectAndCount(obs, "gocurator_leader"); n != 1 {
		t.Errorf("gocurator_leader has %d series, want 1", n)
	}
}
