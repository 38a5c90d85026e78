package recipes

import (
	"context"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
)

// TestLostAsGrantedHoldEvent replays InterProcessMutex.queue's "lost as soon as granted" path:
// newHold for a grant whose session the client no longer backs, then newLease fails and queue goes
// round again. No hold reached the caller, so the observer hears of none: no hold started, no hold
// ended.
func TestLostAsGrantedHoldEvent(t *testing.T) {
	t.Parallel()
	log := newRecipeLog()
	c := newClient(t, framework.WithObserver(log))
	m := NewInterProcessMutex(c, testPath(t, "lock"))
	// A grant made in a session that is not the client's now: ErrorState is closed at once, as
	// when the connection dropped at the grant.
	g := grant{node: m.Path() + "/_c_x-lock-0000000000", sessionID: c.SessionID() + 1}
	h := newHold(c, m, g, &m.holds)
	within(t, h.stop, 5*time.Second, "the hold did not end")
	if _, err := h.newLease(context.Background()); err == nil {
		t.Fatal("newLease of a lost hold succeeded")
	}
	// queue would now loop; the acquire is not granted from this hold.
	time.Sleep(100 * time.Millisecond)
	if g, e := log.count(framework.EventAcquireGranted, recipeMutex), log.count(framework.EventHoldEnded, recipeMutex); e != g {
		t.Errorf("%d EventHoldEnded for %d EventAcquireGranted: an observer counting holds (granted - ended) goes to %d", e, g, g-e)
	}
}

// TestSelectorLeadershipLostLate: a LeaderSelector whose leadership function does not return at
// once when its context ends (it finishes a step first) reports EventLeadershipLost the moment
// leadership ends (its session expired), not when the function returns.
func TestSelectorLeadershipLostLate(t *testing.T) {
	t.Parallel()
	log := newRecipeLog()
	c, proxy := newProxiedClient(t, framework.WithObserver(log))
	path := testPath(t, "selector")
	led, finish := make(chan struct{}), make(chan struct{})
	s := NewLeaderSelector(c, path, func(ctx context.Context) error {
		close(led)
		<-finish // a step that does not watch ctx
		return nil
	})
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer close(finish)
	<-led
	log.wait(t, framework.EventLeadershipGained, recipeLeaderSelector, 1)
	if err := proxy.ExpireSession(testContext(t, 30*time.Second), testServer, c.SessionID()); err != nil {
		t.Fatal(err)
	}
	log.wait(t, framework.EventHoldEnded, recipeLeaderSelector, 1)
	if s.HasLeadership() {
		t.Fatal("the selector still leads after its session expired")
	}
	time.Sleep(500 * time.Millisecond)
	if n := log.count(framework.EventLeadershipLost, recipeLeaderSelector); n != 1 {
		t.Errorf("HasLeadership is false and the hold ended lost, but %d EventLeadershipLost: the leader gauge still counts this selector", n)
	}
}
