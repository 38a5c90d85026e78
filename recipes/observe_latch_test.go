package recipes

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
)

// TestObserverClosesLatchOnLeadership: an observer that closes the latch as soon as it is told of
// its leadership (a step-down) returns: the latch does not wait for the goroutine that tells it.
func TestObserverClosesLatchOnLeadership(t *testing.T) {
	t.Parallel()
	var latch atomic.Pointer[LeaderLatch]
	closed := make(chan error, 1)
	var once atomic.Bool
	obs := framework.ObserverFunc(func(e framework.Event) {
		if e.Kind == framework.EventLeadershipGained && e.Recipe == recipeLeaderLatch && once.CompareAndSwap(false, true) {
			closed <- latch.Load().Close()
		}
	})
	c := newClient(t, framework.WithObserver(obs))
	path := testPath(t, "latch")
	l := NewLeaderLatch(c, path)
	latch.Store(l)
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	err := within(t, closed, 10*time.Second, "LeaderLatch.Close called from Observe(EventLeadershipGained) has not returned after 10s: it waits (l.wg) for the term goroutine it runs on")
	t.Logf("latch Close from the observer = %v", err)
}
