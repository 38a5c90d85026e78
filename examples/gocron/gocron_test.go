package gocron

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/google/uuid"
	"go.uber.org/goleak"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

var testServer *zktest.Server

func TestMain(m *testing.M) {
	srv, err := zktest.StartServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "these tests need a ZooKeeper server:", err)
		os.Exit(1)
	}
	testServer = srv
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping ZooKeeper:", err)
	}
	if code == 0 {
		// Timers of MinHold locks may still be pending; they are not goroutines.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func newClient(t testing.TB) *framework.Client {
	t.Helper()
	return newClientAt(t, testServer.ConnectString())
}

// newClientAt returns a started, connected client of the servers at addr, closed at the test's end.
func newClientAt(t testing.TB, addr string) *framework.Client {
	t.Helper()
	c, err := framework.NewClient(addr, framework.WithSessionTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := c.BlockUntilConnected(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runs records which scheduler ran the job at which tick (the second it fired in).
type runs struct {
	mu     sync.Mutex
	byTick map[int64][]int
}

func (r *runs) record(instance int) {
	tick := time.Now().Truncate(time.Second).Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byTick == nil {
		r.byTick = map[int64][]int{}
	}
	r.byTick[tick] = append(r.byTick[tick], instance)
}

// check fails the test if a tick ran more than once, and returns the ticks in order with the
// scheduler that ran each.
func (r *runs) check(t testing.TB) (ticks []int64, by []int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for tick := range r.byTick {
		ticks = append(ticks, tick)
	}
	slices.Sort(ticks)
	for _, tick := range ticks {
		if n := r.byTick[tick]; len(n) != 1 {
			t.Errorf("tick %s ran %d times, by schedulers %v", time.Unix(tick, 0).Format("15:04:05"), len(n), n)
		}
		by = append(by, r.byTick[tick][0])
	}
	return ticks, by
}

// newScheduler returns a started scheduler with one job, every second on the second, shut down at
// the end of the test.
func newScheduler(t testing.TB, opt gocron.SchedulerOption, job func()) gocron.Scheduler {
	t.Helper()
	s, err := gocron.NewScheduler(opt)
	if err != nil {
		t.Fatal(err)
	}
	// The task's name is gocron's default: the function's full name, with slashes in it.
	if _, err := s.NewJob(gocron.CronJob("* * * * * *", true), gocron.NewTask(job)); err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { _ = s.Shutdown() })
	return s
}

// tickJob returns the job of scheduler i: it records its run.
func tickJob(r *runs, i int) func() {
	return func() { r.record(i) }
}

// TestElectorRunsOncePerTick runs three schedulers whose elector is a LeaderLatch each: the job runs
// once per tick, on the leader; when the leader goes away, another scheduler takes over.
func TestElectorRunsOncePerTick(t *testing.T) {
	path := testServer.Root() + "/gocron/elector"
	const n = 3
	var r runs
	latches := make([]*recipes.LeaderLatch, n)
	scheds := make([]gocron.Scheduler, n)
	for i := range n {
		latches[i] = recipes.NewLeaderLatch(newClient(t), path, recipes.WithParticipantID(fmt.Sprint(i)))
		if err := latches[i].Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = latches[i].Close() })
		scheds[i] = newScheduler(t, gocron.WithDistributedElector(NewElector(latches[i])), tickJob(&r, i))
	}
	leader := func() int {
		for i, l := range latches {
			if l.HasLeadership() {
				return i
			}
		}
		return -1
	}
	eventually(t, 10*time.Second, "a leader", func() bool { return leader() >= 0 })
	first := leader()
	time.Sleep(3 * time.Second) // three ticks
	if err := scheds[first].Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := latches[first].Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a new leader", func() bool { return leader() >= 0 })
	second := leader()
	time.Sleep(3 * time.Second)
	for _, s := range scheds {
		_ = s.Shutdown()
	}

	ticks, by := r.check(t)
	if len(ticks) < 4 {
		t.Fatalf("the job ran at %d ticks in 6s, want at least 4", len(ticks))
	}
	for i, who := range by {
		if who != first && who != second {
			t.Errorf("tick %d ran on scheduler %d, which never led", i, who)
		}
		if i > 0 && by[i-1] == second && who == first {
			t.Errorf("tick %d ran on the old leader after the new one", i)
		}
	}
	if by[0] != first || by[len(by)-1] != second {
		t.Errorf("ticks ran on %v, want first on %d then on %d", by, first, second)
	}
}

// TestLockerRunsOncePerTick runs three schedulers with a Locker each (one ZooKeeper session each):
// the job runs once per tick, and its mutex is named after the job's escaped name.
func TestLockerRunsOncePerTick(t *testing.T) {
	base := testServer.Root() + "/gocron/locks"
	const n = 3
	var r runs
	var lockErrors sync.Map
	for i := range n {
		locker := NewLocker(newClient(t), base, MinHold(500*time.Millisecond))
		s, err := gocron.NewScheduler(gocron.WithDistributedLocker(locker))
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.NewJob(gocron.CronJob("* * * * * *", true), gocron.NewTask(tickJob(&r, i)),
			gocron.WithEventListeners(gocron.AfterLockError(func(_ uuid.UUID, _ string, err error) {
				if !errors.Is(err, recipes.ErrLocked) {
					lockErrors.Store(err.Error(), true)
				}
			})))
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	admin := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var names []string
	eventually(t, 10*time.Second, "the job's lock node", func() bool {
		names, _, _ = admin.Children(ctx, base)
		return len(names) > 0
	})
	time.Sleep(4 * time.Second)

	ticks, by := r.check(t)
	if len(ticks) < 3 {
		t.Errorf("the job ran at %d ticks in 4s, want at least 3", len(ticks))
	}
	t.Logf("ticks ran on schedulers %v", by)
	lockErrors.Range(func(k, _ any) bool {
		t.Errorf("Lock failed other than with ErrLocked: %v", k)
		return true
	})
	if len(names) != 1 || !strings.Contains(names[0], "%2F") {
		t.Fatalf("lock nodes %v, want one, named after the escaped job name", names)
	}
	key, err := url.PathUnescape(names[0])
	if err != nil || !strings.HasPrefix(key, "github.com/gocurator/curator/examples/gocron.") {
		t.Errorf("lock node %q unescapes to %q (%v), want the job's function name", names[0], key, err)
	}
}

// TestLockerTryLock checks that Lock does not wait for a held mutex, and that MinHold keeps the
// mutex after Unlock.
func TestLockerTryLock(t *testing.T) {
	base := testServer.Root() + "/gocron/try"
	ctx := context.Background()
	a := NewLocker(newClient(t), base, MinHold(300*time.Millisecond))
	b := NewLocker(newClient(t), base)
	l, err := a.Lock(ctx, "pkg/job")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, "pkg/job"); !errors.Is(err, recipes.ErrLocked) {
		t.Fatalf("second Lock: %v, want ErrLocked", err)
	}
	if _, err := b.Lock(ctx, "pkg/other"); err != nil {
		t.Errorf("Lock of another key: %v", err)
	}
	unlocked := time.Now()
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lock(ctx, "pkg/job"); !errors.Is(err, recipes.ErrLocked) {
		t.Errorf("Lock right after Unlock under MinHold: %v, want ErrLocked", err)
	}
	var l2 gocron.Lock
	eventually(t, 5*time.Second, "the lock after MinHold", func() bool {
		l2, err = b.Lock(ctx, "pkg/job")
		return err == nil
	})
	if d := time.Since(unlocked); d < 250*time.Millisecond {
		t.Errorf("the lock was free again %v after Unlock", d)
	}
	if err := l2.Unlock(ctx); err != nil {
		t.Error(err)
	}
	if _, err := NewLocker(a.c, "relative").Lock(ctx, "k"); !errors.Is(err, recipes.ErrInvalidArgument) {
		t.Errorf("Lock with a bad base path: %v", err)
	}
	if _, err := NewLocker(a.c, base, MinHold(-time.Second)).Lock(ctx, "k"); !errors.Is(err, recipes.ErrInvalidArgument) {
		t.Errorf("Lock with a negative MinHold: %v", err)
	}
}

func TestEscapeKey(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{"github.com/org/pkg.job", "github.com%2Forg%2Fpkg.job"},
		{"main.main.func1", "main.main.func1"},
		{"a b%c", "a%20b%25c"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...", "..."},
		{"ünï", "%C3%BCn%C3%AF"},
		{"zookeeper", "zookeeper"},
	} {
		got, err := EscapeKey(tc.key)
		if err != nil || got != tc.want {
			t.Errorf("EscapeKey(%q) = %q, %v; want %q", tc.key, got, err, tc.want)
		}
		if err := framework.ValidatePath("/base/" + got); err != nil {
			t.Errorf("EscapeKey(%q) = %q is not a znode name: %v", tc.key, got, err)
		}
		if back, err := url.PathUnescape(got); err != nil || back != tc.key {
			t.Errorf("%q unescapes to %q, %v", got, back, err)
		}
	}
	if _, err := EscapeKey(""); !errors.Is(err, recipes.ErrInvalidArgument) {
		t.Errorf("EscapeKey(\"\") = %v", err)
	}
}

// TestElectorJobContextEndsWithLeadership runs a job under Elector.Job on the leader's scheduler and
// ends leadership under the running job: the job's context ends, with a cause wrapping
// recipes.ErrNotLeader, whether the connection drops or the latch is closed.
func TestElectorJobContextEndsWithLeadership(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(*zktest.Proxy, *recipes.LeaderLatch)
	}{
		{"connection dropped", func(p *zktest.Proxy, _ *recipes.LeaderLatch) { p.CloseConnections() }},
		{"latch closed", func(_ *zktest.Proxy, l *recipes.LeaderLatch) { _ = l.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := testServer.Proxy(t)
			c := newClientAt(t, proxy.Addr())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			latch := recipes.NewLeaderLatch(c, testServer.Root()+"/gocron/job-context-"+strings.ReplaceAll(tc.name, " ", "-"))
			if err := latch.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = latch.Close() })
			if err := latch.Await(ctx); err != nil {
				t.Fatal(err)
			}
			elector := NewElector(latch)
			running := make(chan struct{})
			ended := make(chan error, 1)
			s, err := gocron.NewScheduler(gocron.WithDistributedElector(elector))
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.NewJob(gocron.OneTimeJob(gocron.OneTimeJobStartImmediately()), gocron.NewTask(elector.Job(func(ctx context.Context) {
				close(running)
				<-ctx.Done()
				ended <- context.Cause(ctx)
			})))
			if err != nil {
				t.Fatal(err)
			}
			s.Start()
			t.Cleanup(func() { _ = s.Shutdown() })
			select {
			case <-running:
			case <-ctx.Done():
				t.Fatal("the job did not start on the leader")
			}
			tc.end(proxy, latch)
			select {
			case cause := <-ended:
				if !errors.Is(cause, recipes.ErrNotLeader) {
					t.Errorf("the job's context ended with %v, want a cause wrapping ErrNotLeader", cause)
				}
			case <-ctx.Done():
				t.Fatal("the job's context did not end when leadership was lost")
			}
		})
	}
}

// TestElectorJobNil checks that Job(nil) is a task that does nothing, not a panic.
func TestElectorJobNil(t *testing.T) {
	latch := recipes.NewLeaderLatch(newClient(t), testServer.Root()+"/gocron/job-nil")
	NewElector(latch).Job(nil)(context.Background())
}
