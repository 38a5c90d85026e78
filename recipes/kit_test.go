package recipes

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/zktest"
)

// contender returns the contender "session i" of a contention run (testkit.Contention): it takes
// the lock with acquire and, while it holds it, increments the counter k through client c with a
// 2ms pause between the read and the version-checked write.
func contender(i int, k counter, c *framework.Client, acquire func(context.Context, int) (testkit.Hold, error)) testkit.Contender {
	return testkit.Contender{
		Name:    fmt.Sprintf("session %d", i),
		Acquire: acquire,
		Inside: func(ctx context.Context) (int64, error) {
			return 0, k.increment(ctx, c, 2*time.Millisecond)
		},
	}
}

// counterOf returns the reader of k's value for testkit.Contention.Counter.
func counterOf(k counter) func(testing.TB) int64 {
	return func(t testing.TB) int64 {
		t.Helper()
		return int64(k.value(t))
	}
}

// acquireAsync runs acquire(ctx) on a goroutine of its own and sends what it returns on the
// returned channel, which holds one value: the lease (or leases), or, after failing the test with
// the error of acquire, what acquire returned with it (nil for the recipes' locks).
func acquireAsync[L any](t testing.TB, ctx context.Context, acquire func(context.Context) (L, error)) <-chan L {
	ch := make(chan L, 1)
	go func() {
		l, err := acquire(ctx)
		if err != nil {
			t.Error(err)
		}
		ch <- l
	}()
	return ch
}

// acquireLeasesAsync is acquireAsync for n leases of sem.
func acquireLeasesAsync(t testing.TB, ctx context.Context, sem *Semaphore, n int) <-chan []*Lease {
	return acquireAsync(t, ctx, func(ctx context.Context) ([]*Lease, error) { return sem.Acquire(ctx, n) })
}

// startOwnClient returns a started client of the test server (with testSessionTimeout) that the
// test closes itself: unlike newClient's, it is neither recorded nor closed at the test's end.
// It may not be connected yet.
func startOwnClient(t testing.TB) *framework.Client {
	t.Helper()
	c, err := framework.NewClient(testServer.ConnectString(), framework.WithSessionTimeout(testSessionTimeout))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// within receives one value from ch and returns it, failing the test with what if none comes
// within d (or ch is closed: then the zero value is returned at once, as a receive does).
func within[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatal(what)
	}
	var zero T
	return zero
}

// acquired returns the lease (or whatever acquire returns) that acquire(ctx) gives, failing the
// test at once (Fatal) with acquire's error if it fails. It must be called on the test's own
// goroutine.
func acquired[L any](t testing.TB, ctx context.Context, acquire func(context.Context) (L, error)) L {
	t.Helper()
	l, err := acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// releaser is what mustRelease lets go of: a *Lease, or any other hold with a Release.
type releaser interface {
	Release() error
}

// mustRelease releases l, failing the test at once (Fatal) with the error of Release if it fails.
// It must be called on the test's own goroutine.
func mustRelease(t testing.TB, l releaser) {
	t.Helper()
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
}

// exclusionRun runs a contention (testkit.Contention.Run) of sessions contenders, each with a
// client of its own, that take one lock rounds times each within two minutes, and checks the run's
// counter against its holds. It makes the counter (newCounter) with an admin client first, then
// one client a session, in order; newContender makes the contender of session i from that
// session's client and the counter (typically with contender). It returns the admin client, for
// the test's checks after the run, and the holds that Run returns.
func exclusionRun(t testing.TB, sessions, rounds int, newContender func(i int, c *framework.Client, k counter) testkit.Contender) (*framework.Client, []testkit.Held) {
	t.Helper()
	if newContender == nil {
		t.Fatal("exclusionRun: nil newContender")
	}
	admin := newClient(t)
	k := newCounter(t, admin, testPath(t, "counter"))
	ctx := testContext(t, 2*time.Minute)
	run := testkit.Contention{Rounds: rounds, Counter: counterOf(k)}
	for i := range sessions {
		run.Contenders = append(run.Contenders, newContender(i, newClient(t), k))
	}
	return admin, run.Run(t, ctx)
}

// expireHolder expires the session sid through proxy (zktest.Proxy.ExpireSession on the test
// server) and waits for the hold l to end, failing the test at once (Fatal) with the error of the
// expiry, or with the message failure if ctx ends first. It must be called on the test's own
// goroutine.
func expireHolder(t testing.TB, ctx context.Context, proxy *zktest.Proxy, sid int64, l *Lease, failure string) {
	t.Helper()
	if err := proxy.ExpireSession(ctx, testServer, sid); err != nil {
		t.Fatal(err)
	}
	select {
	case <-l.Done():
	case <-ctx.Done():
		t.Fatal(failure)
	}
}
