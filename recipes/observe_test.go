package recipes

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
)

// recipeLog is an observer that records the recipes' events (not the client's own) and lets a test
// wait for one.
type recipeLog struct {
	mu      sync.Mutex
	events  []framework.Event
	changed chan struct{}
}

func newRecipeLog() *recipeLog { return &recipeLog{changed: make(chan struct{}, 1)} }

func (l *recipeLog) Observe(e framework.Event) {
	if e.Recipe == "" {
		return
	}
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *recipeLog) all() []framework.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// wait waits until the n-th (from 1) event of kind for recipe is observed, and returns it.
func (l *recipeLog) wait(t testing.TB, kind framework.EventKind, recipe string, n int) framework.Event {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		seen := 0
		for _, e := range l.all() {
			if e.Kind == kind && e.Recipe == recipe {
				if seen++; seen == n {
					return e
				}
			}
		}
		select {
		case <-l.changed:
		case <-deadline.C:
			t.Fatalf("%s event %d of %s not observed; saw %v", kind, n, recipe, l.all())
		}
	}
}

// count returns how many events of kind for recipe were observed.
func (l *recipeLog) count(kind framework.EventKind, recipe string) int {
	n := 0
	for _, e := range l.all() {
		if e.Kind == kind && e.Recipe == recipe {
			n++
		}
	}
	return n
}

// TestObserverLockEvents drives each lock event, for every lock recipe: a grant, a timeout, a
// TryAcquire that finds the lock held, a release, and a hold lost with its session's expiry; each
// is reported once, with the recipe's name, the lock's path, the node and the outcome.
func TestObserverLockEvents(t *testing.T) {
	t.Parallel()
	type lock interface {
		Acquire(ctx context.Context) (*Lease, error)
		TryAcquire(ctx context.Context) (*Lease, error)
	}
	recipes := []struct {
		recipe string
		new    func(c *framework.Client, path string) lock
	}{
		{recipeMutex, func(c *framework.Client, path string) lock { return NewInterProcessMutex(c, path) }},
		{recipeSemaphoreMutex, func(c *framework.Client, path string) lock { return NewSemaphoreMutex(c, path) }},
		{recipeWriteLock, func(c *framework.Client, path string) lock { return NewReadWriteLock(c, path).WriteLock() }},
	}
	for _, rc := range recipes {
		t.Run(rc.recipe, func(t *testing.T) {
			t.Parallel()
			log := newRecipeLog()
			a, proxy := newProxiedClient(t, framework.WithObserver(log))
			b := newClient(t, framework.WithObserver(log))
			ctx := testContext(t, 60*time.Second)
			path := testPath(t, "lock")

			la := acquired(t, ctx, rc.new(a, path).Acquire)
			if e := log.wait(t, framework.EventAcquireStarted, rc.recipe, 1); e.Path != path {
				t.Errorf("started: path %q, want %q", e.Path, path)
			}
			g := log.wait(t, framework.EventAcquireGranted, rc.recipe, 1)
			if g.Path != path || g.Node != la.Node() || g.SessionID != a.SessionID() || g.Err != nil {
				t.Errorf("granted: %+v, want path %s node %s session %x", g, path, la.Node(), a.SessionID())
			}

			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			if _, err := rc.new(b, path).Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Acquire while held = %v, want DeadlineExceeded", err)
			}
			f := log.wait(t, framework.EventAcquireFailed, rc.recipe, 1)
			if !errors.Is(f.Err, context.DeadlineExceeded) || f.Duration < 150*time.Millisecond {
				t.Errorf("timed-out acquire: err %v, wait %v; want DeadlineExceeded after about 200ms", f.Err, f.Duration)
			}
			if _, err := rc.new(b, path).TryAcquire(ctx); !errors.Is(err, ErrLocked) {
				t.Fatalf("TryAcquire while held = %v, want ErrLocked", err)
			}
			if f := log.wait(t, framework.EventAcquireFailed, rc.recipe, 2); !errors.Is(f.Err, ErrLocked) {
				t.Errorf("TryAcquire's failure: %v, want ErrLocked", f.Err)
			}

			mustRelease(t, la)
			ended := log.wait(t, framework.EventHoldEnded, rc.recipe, 1)
			if !errors.Is(ended.Err, ErrReleased) || ended.Node != la.Node() || ended.Duration <= 0 {
				t.Errorf("hold ended: %+v, want ErrReleased for %s with a duration", ended, la.Node())
			}

			// A hold lost with its session.
			lost := acquired(t, ctx, rc.new(a, path).Acquire)
			if err := proxy.ExpireSession(ctx, testServer, a.SessionID()); err != nil {
				t.Fatal(err)
			}
			<-lost.Done()
			ended = log.wait(t, framework.EventHoldEnded, rc.recipe, 2)
			if !errors.Is(ended.Err, ErrLockLost) || ended.Node != lost.Node() {
				t.Errorf("hold lost: %+v, want ErrLockLost for %s", ended, lost.Node())
			}

			if n := log.count(framework.EventAcquireStarted, rc.recipe); n != 4 {
				t.Errorf("%d acquires started, want 4", n)
			}
			if g, f := log.count(framework.EventAcquireGranted, rc.recipe), log.count(framework.EventAcquireFailed, rc.recipe); g != 2 || f != 2 {
				t.Errorf("%d granted and %d failed, want 2 and 2", g, f)
			}
			if s, e := log.count(framework.EventHoldStarted, rc.recipe), log.count(framework.EventHoldEnded, rc.recipe); s != 2 || e != 2 {
				t.Errorf("%d holds started and %d ended, want 2 and 2", s, e)
			}
		})
	}
}

// TestObserverLeadershipEvents: a latch's and a selector's leadership, gained and lost.
func TestObserverLeadershipEvents(t *testing.T) {
	t.Parallel()
	t.Run("latch", func(t *testing.T) {
		t.Parallel()
		log := newRecipeLog()
		c := newClient(t, framework.WithObserver(log))
		path := testPath(t, "latch")
		first := startLatch(t, c, path)
		if err := first.Await(testContext(t, 20*time.Second)); err != nil {
			t.Fatal(err)
		}
		second := startLatch(t, c, path)
		g := log.wait(t, framework.EventLeadershipGained, recipeLeaderLatch, 1)
		if g.Path != path || g.Node != first.OurPath() {
			t.Errorf("gained: %+v, want path %s node %s", g, path, first.OurPath())
		}
		node := first.OurPath()
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		l := log.wait(t, framework.EventLeadershipLost, recipeLeaderLatch, 1)
		if l.Node != node || !errors.Is(l.Err, ErrNotLeader) || l.Duration <= 0 {
			t.Errorf("lost: %+v, want ErrNotLeader for %s with a duration", l, node)
		}
		if g := log.wait(t, framework.EventLeadershipGained, recipeLeaderLatch, 2); g.Node != second.OurPath() {
			t.Errorf("gained by the second latch: node %s, want %s", g.Node, second.OurPath())
		}
	})
	t.Run("selector", func(t *testing.T) {
		t.Parallel()
		log := newRecipeLog()
		c := newClient(t, framework.WithObserver(log))
		path := testPath(t, "selector")
		led := make(chan struct{})
		s := NewLeaderSelector(c, path, func(ctx context.Context) error {
			close(led)
			return nil
		})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		<-led
		g := log.wait(t, framework.EventLeadershipGained, recipeLeaderSelector, 1)
		l := log.wait(t, framework.EventLeadershipLost, recipeLeaderSelector, 1)
		if g.Path != path || l.Node != g.Node || !errors.Is(l.Err, ErrNotLeader) {
			t.Errorf("gained %+v, lost %+v", g, l)
		}
	})
}
