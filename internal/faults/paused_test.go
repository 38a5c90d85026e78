package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/retry"
	"github.com/gocurator/curator/zktest"
)

// This file runs clients in child processes (the test binary itself, running a helper main that
// an environment variable selects), so that a test can pause a whole client with SIGSTOP, as a
// long garbage collection, a frozen virtual machine or an overloaded host would, and resume it.

const (
	helperEnv        = "FAULTS_HELPER"         // the helper main to run
	helperConnectEnv = "FAULTS_HELPER_CONNECT" // its connect string
	helperPathEnv    = "FAULTS_HELPER_PATH"    // its lock path
	helperPolicyEnv  = "FAULTS_HELPER_POLICY"  // "standard" or "session"
	helperTimeoutEnv = "FAULTS_HELPER_TIMEOUT" // its session timeout
	helperLockEnv    = "FAULTS_HELPER_LOCK"    // the lock recipe, as pausedLock names it
	helperLeaderEnv  = "FAULTS_HELPER_LEADER"  // the leader recipe, as pausedLeader names it
)

// pausedLock returns the Acquire of the lock recipe kind ("mutex", "semaphore-mutex", "write" or
// "multilock") on path.
func pausedLock(kind string, c *framework.Client, path string) (func(context.Context) (*recipes.Lease, error), error) {
	switch kind {
	case "mutex":
		return recipes.NewInterProcessMutex(c, path).Acquire, nil
	case "semaphore-mutex":
		return recipes.NewSemaphoreMutex(c, path).Acquire, nil
	case "write":
		return recipes.NewReadWriteLock(c, path).WriteLock().Acquire, nil
	case "multilock":
		return recipes.NewMultiLockPaths(c, path+"/a", path+"/b").Acquire, nil
	}
	return nil, fmt.Errorf("unknown lock recipe %q", kind)
}

// leader is an election recipe, seen the same way whatever it is.
type leader struct {
	start func() error
	await func(ctx context.Context) error // returns nil once leading
	has   func() bool
	close func()
}

// pausedLeader returns the election recipe kind ("latch" or "selector") on path; on and off
// are called as leadership begins and ends (nil: nothing).
func pausedLeader(kind string, c *framework.Client, path string, on, off func()) (*leader, error) {
	if on == nil {
		on = func() {}
	}
	if off == nil {
		off = func() {}
	}
	switch kind {
	case "latch":
		l := recipes.NewLeaderLatch(c, path)
		l.AddListener(recipes.LeaderLatchListenerFuncs{OnIsLeader: on, OnNotLeader: off})
		return &leader{start: l.Start, await: l.Await, has: l.HasLeadership, close: func() { l.Close() }}, nil
	case "selector":
		var mu sync.Mutex
		var term context.Context
		leads := make(chan struct{})
		var leadsOnce sync.Once
		stop := make(chan struct{})
		var stopOnce sync.Once
		s := recipes.NewLeaderSelector(c, path, func(ctx context.Context) error {
			mu.Lock()
			term = ctx
			mu.Unlock()
			on()
			leadsOnce.Do(func() { close(leads) })
			select {
			case <-ctx.Done():
			case <-stop:
			}
			off()
			return nil
		})
		return &leader{
			start: s.Start,
			await: func(ctx context.Context) error {
				select {
				case <-leads:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			},
			has: func() bool {
				mu.Lock()
				defer mu.Unlock()
				return term != nil && term.Err() == nil && s.HasLeadership()
			},
			close: func() {
				stopOnce.Do(func() { close(stop) })
				s.Close()
			},
		}, nil
	}
	return nil, fmt.Errorf("unknown leader recipe %q", kind)
}

// runHelper runs the helper main name and returns the exit code.
func runHelper(name string) int {
	switch name {
	case "holder":
		if err := holderMain(); err != nil {
			fmt.Fprintln(os.Stderr, "holder:", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
	return 2
}

// emit prints one event line: the wall-clock time in Unix nanoseconds, then the event.
var emitMu sync.Mutex

func emit(format string, args ...any) { emitAt(time.Now(), format, args...) }

// emitAt prints an event stamped at. A poll is stamped before its values are read: the process
// may be paused between the two, and a value read before a pause must not carry a time after it.
func emitAt(at time.Time, format string, args ...any) {
	emitMu.Lock()
	defer emitMu.Unlock()
	fmt.Printf("%d %s\n", at.UnixNano(), fmt.Sprintf(format, args...))
}

// holderMain connects, takes a lock on path/lock, joins an election on path/leader (the recipes
// that the environment names), and reports what it holds until it is killed: "held token=N", "done lost=B
// err=...", "leader", "notleader", and every 50ms "poll held=B leader=B".
func holderMain() error {
	timeout, err := time.ParseDuration(os.Getenv(helperTimeoutEnv))
	if err != nil {
		return err
	}
	policy := framework.StandardErrorPolicy
	if os.Getenv(helperPolicyEnv) == "session" {
		policy = framework.SessionErrorPolicy
	}
	path := os.Getenv(helperPathEnv)
	c, err := framework.NewClient(os.Getenv(helperConnectEnv),
		framework.WithSessionTimeout(timeout),
		framework.WithConnectionTimeout(10*time.Second),
		framework.WithRetryPolicy(retry.BoundedExponentialBackoff(100*time.Millisecond, time.Second, 10)),
		framework.WithErrorPolicy(policy))
	if err != nil {
		return err
	}
	defer c.Close()
	c.Listen(func(s framework.State) { emit("state %v", s) })
	if err := c.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.BlockUntilConnected(ctx); err != nil {
		return err
	}
	acquire, err := pausedLock(os.Getenv(helperLockEnv), c, path+"/lock")
	if err != nil {
		return err
	}
	lease, err := acquire(ctx)
	if err != nil {
		return err
	}
	emit("held token=%d", lease.Token())
	go func() {
		<-lease.Done()
		emit("done lost=%v err=%v", errors.Is(lease.Err(), recipes.ErrLockLost), lease.Err())
	}()
	ld, err := pausedLeader(os.Getenv(helperLeaderEnv), c, path+"/leader",
		func() { emit("leader") }, func() { emit("notleader") })
	if err != nil {
		return err
	}
	if err := ld.start(); err != nil {
		return err
	}
	defer ld.close()
	for {
		at := time.Now()
		emitAt(at, "poll held=%v leader=%v", lease.Err() == nil, ld.has())
		time.Sleep(50 * time.Millisecond)
	}
}

// childEvent is one line a helper printed.
type childEvent struct {
	at   time.Time
	what string
}

// events collects a helper's lines as they come.
type events struct {
	mu   sync.Mutex
	list []childEvent
}

func (ev *events) collect(pr *zktest.Process) {
	for line := range pr.Lines() {
		ts, what, ok := strings.Cut(line, " ")
		n, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil {
			continue
		}
		ev.mu.Lock()
		ev.list = append(ev.list, childEvent{time.Unix(0, n), what})
		ev.mu.Unlock()
	}
}

// first returns the first event from after on that starts with prefix.
func (ev *events) first(after time.Time, prefix string) (childEvent, bool) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	for _, e := range ev.list {
		if !e.at.Before(after) && strings.HasPrefix(e.what, prefix) {
			return e, true
		}
	}
	return childEvent{}, false
}

// all returns the events from after on that start with prefix.
func (ev *events) all(after time.Time, prefix string) []childEvent {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []childEvent
	for _, e := range ev.list {
		if !e.at.Before(after) && strings.HasPrefix(e.what, prefix) {
			out = append(out, e)
		}
	}
	return out
}

func (ev *events) String() string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var b strings.Builder
	last := ""
	for _, e := range ev.list {
		if e.what == last && strings.HasPrefix(e.what, "poll") {
			continue
		}
		last = e.what
		fmt.Fprintf(&b, "\n\t%s %s", e.at.Format("15:04:05.000"), e.what)
	}
	return b.String()
}

// startHolder starts the holder helper against connect, on path.
func startHolder(t *testing.T, connect, path, lock, lead string, policy framework.ErrorPolicy, timeout time.Duration) (*zktest.Process, *events) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	pol := "standard"
	if policy == framework.SessionErrorPolicy {
		pol = "session"
	}
	cmd.Env = append(os.Environ(), helperEnv+"=holder", helperConnectEnv+"="+connect, helperPathEnv+"="+path,
		helperPolicyEnv+"="+pol, helperTimeoutEnv+"="+timeout.String(), helperLockEnv+"="+lock, helperLeaderEnv+"="+lead)
	pr := zktest.StartProcess(t, cmd)
	ev := &events{}
	var wg sync.WaitGroup
	wg.Go(func() { ev.collect(pr) })
	t.Cleanup(func() {
		pr.Stop()
		wg.Wait()
	})
	return pr, ev
}

// standaloneClient starts a client of the server at connect and closes it at the test's end.
func standaloneClient(t *testing.T, connect string, policy framework.ErrorPolicy, timeout time.Duration) *framework.Client {
	t.Helper()
	return startedClient(t, connect, policy, timeout, retry.BoundedExponentialBackoff(100*time.Millisecond, time.Second, 10))
}

// startedClient starts a client of connect with the given session timeout, error policy and retry
// policy, closed at the test's end, and waits until it is connected.
func startedClient(t *testing.T, connect string, policy framework.ErrorPolicy, timeout time.Duration, rp retry.Policy) *framework.Client {
	t.Helper()
	c, err := framework.NewClient(connect,
		framework.WithSessionTimeout(timeout),
		framework.WithConnectionTimeout(10*time.Second),
		framework.WithRetryPolicy(rp),
		framework.WithErrorPolicy(policy))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.BlockUntilConnected(testContext(t, waitTimeout)); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPausedHolder pauses a process that holds a lock and leads an election for twice its session
// timeout, so that its session expires and a client in this process takes both, and resumes it.
// Within a second of resuming, the paused process must know that it lost both; and it must never
// report holding or leading while the other does: its own clock tells it that its session is
// over, before the server does. The cells run in parallel, on one server.
func TestPausedHolder(t *testing.T) {
	srv := zktest.Start(t)
	for _, policy := range []framework.ErrorPolicy{framework.SessionErrorPolicy, framework.StandardErrorPolicy} {
		pname := map[framework.ErrorPolicy]string{framework.StandardErrorPolicy: "standard", framework.SessionErrorPolicy: "session"}[policy]
		for _, tc := range []struct{ lock, lead string }{
			{"mutex", "latch"},
			{"semaphore-mutex", "selector"},
			{"write", "latch"},
			{"multilock", "selector"},
		} {
			name := fmt.Sprintf("%s/%s+%s", pname, tc.lock, tc.lead)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				pausedHolder(t, srv, "/paused/"+name, tc.lock, tc.lead, policy)
			})
		}
	}
}

func pausedHolder(t *testing.T, srv *zktest.Server, path, lock, lead string, policy framework.ErrorPolicy) {
	const timeout = 2 * time.Second
	pr, ev := startHolder(t, srv.ConnectString(), path, lock, lead, policy, timeout)
	eventually(t, waitTimeout, "the child to hold the lock and lead", func() bool {
		_, held := ev.first(time.Time{}, "held")
		_, leads := ev.first(time.Time{}, "poll held=true leader=true")
		return held && leads
	})

	other := standaloneClient(t, srv.ConnectString(), policy, timeout)
	acquire, err := pausedLock(lock, other, path+"/lock")
	if err != nil {
		t.Fatal(err)
	}
	otherLeader, err := pausedLeader(lead, other, path+"/leader", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu                  sync.Mutex
		heldAt, leadAt      time.Time
		otherLease          *recipes.Lease
		wg                  sync.WaitGroup
		acquireErr, waitErr error
	)
	if err := otherLeader.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(otherLeader.close)
	ctx := testContext(t, waitTimeout)
	wg.Go(func() {
		l, err := acquire(ctx)
		mu.Lock()
		defer mu.Unlock()
		heldAt, otherLease, acquireErr = time.Now(), l, err
	})
	wg.Go(func() {
		err := otherLeader.await(ctx)
		mu.Lock()
		defer mu.Unlock()
		leadAt, waitErr = time.Now(), err
	})

	pausedAt := time.Now()
	if err := pr.Pause(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if acquireErr != nil || waitErr != nil {
		pr.Resume()
		t.Fatalf("the other client: Acquire = %v, Await = %v while the child was paused", acquireErr, waitErr)
	}
	defer otherLease.Release()
	t.Logf("paused at %s; the other client held the mutex after %v and led after %v",
		pausedAt.Format("15:04:05.000"), heldAt.Sub(pausedAt), leadAt.Sub(pausedAt))
	// Pause for twice the session timeout in all.
	time.Sleep(time.Until(pausedAt.Add(2 * timeout)))
	resumedAt := time.Now()
	if err := pr.Resume(); err != nil {
		t.Fatal(err)
	}
	// Watch the child after resuming until it reports holding and leading nothing (or 3s pass),
	// and a little longer, for a relapse.
	poll(3*time.Second, func() bool {
		_, ok := ev.first(resumedAt, "poll held=false leader=false")
		return ok
	})
	time.Sleep(300 * time.Millisecond)
	if otherLease.Err() != nil || !otherLeader.has() {
		t.Errorf("the other client lost its hold (%v) or leadership (%v) meanwhile", otherLease.Err(), otherLeader.has())
	}
	t.Logf("resumed at %s; child's events:%s", resumedAt.Format("15:04:05.000"), ev)

	if e, ok := ev.first(resumedAt, "done"); !ok {
		t.Errorf("the child never reported its lease ended")
	} else {
		if d := e.at.Sub(resumedAt); d > time.Second {
			t.Errorf("the child reported its lease ended %v after resuming; want within 1s", d)
		}
		if !strings.HasPrefix(e.what, "done lost=true") {
			t.Errorf("the child's lease ended with %q; want ErrLockLost", e.what)
		}
	}
	if e, ok := ev.first(resumedAt, "poll held=false leader=false"); !ok {
		t.Errorf("the child never reported holding and leading nothing")
	} else if d := e.at.Sub(resumedAt); d > time.Second {
		t.Errorf("the child reported holding and leading nothing only %v after resuming; want within 1s", d)
	}
	// Never two holders: the other held from heldAt, led from leadAt, and still does.
	var clash []string
	for _, e := range ev.all(minTime(heldAt, leadAt), "poll") {
		if (strings.Contains(e.what, "held=true") && !e.at.Before(heldAt)) ||
			(strings.Contains(e.what, "leader=true") && !e.at.Before(leadAt)) {
			clash = append(clash, fmt.Sprintf("%s (%v after resuming)", e.what, e.at.Sub(resumedAt)))
		}
	}
	if len(clash) > 0 {
		t.Errorf("the child held or led while the other client did, %d times: first %s, last %s",
			len(clash), clash[0], clash[len(clash)-1])
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
