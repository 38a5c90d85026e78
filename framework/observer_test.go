package framework

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// eventLog is an Observer that records every event and lets a test wait for one.
type eventLog struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{}
}

func newEventLog() *eventLog { return &eventLog{changed: make(chan struct{}, 1)} }

func (l *eventLog) Observe(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events)
}

// wait waits until an event matching match has been observed, and returns it.
func (l *eventLog) wait(t testing.TB, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		for _, e := range l.all() {
			if match(e) {
				return e
			}
		}
		select {
		case <-l.changed:
		case <-deadline.C:
			t.Fatalf("no %s observed; saw %v", what, l.all())
		}
	}
}

func kindIs(k EventKind) func(Event) bool { return func(e Event) bool { return e.Kind == k } }

// TestObserverClientEvents drives each of the client's own events and checks what the observer is
// told: requests (op, path, outcome, a duration), the state changes in order, the session opened
// and lost, and a background delete queued and done.
func TestObserverClientEvents(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	log := newEventLog()
	c := newClient(t, p.Addr(), nil, WithObserver(log), WithNamespace("observed"))
	ctx := testContext(t, 60*time.Second)
	opened := log.wait(t, "session opened", kindIs(EventSessionOpened))
	if opened.SessionID != c.SessionID() {
		t.Errorf("session opened %x, want %x", opened.SessionID, c.SessionID())
	}
	log.wait(t, "Connected", func(e Event) bool { return e.Kind == EventStateChange && e.State == Connected })

	path := testPath(t)
	mustCreate(t, c, path, nil)
	if _, err := c.Create(ctx, path, nil, Persistent); !errors.Is(err, zk.ErrNodeExists) {
		t.Fatalf("second Create = %v, want ErrNodeExists", err)
	}
	if _, _, err := c.Get(ctx, path+"/missing"); !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("Get of a missing node = %v, want ErrNoNode", err)
	}
	requests := []struct {
		op   string
		path string
		err  error
	}{
		{"create", path, nil},
		{"create", path, zk.ErrNodeExists},
		{"getData", path + "/missing", zk.ErrNoNode},
	}
	for _, r := range requests {
		e := log.wait(t, r.op+" "+r.path, func(e Event) bool {
			if e.Kind != EventRequest || e.Op != r.op || e.Path != r.path {
				return false
			}
			if r.err == nil {
				return e.Err == nil
			}
			return errors.Is(e.Err, r.err)
		})
		if e.Duration <= 0 {
			t.Errorf("%s %s: duration %v, want > 0", r.op, r.path, e.Duration)
		}
	}

	// A delete while the connection is down goes to the background deleter, and is done after the
	// reconnect.
	p.Blackhole(true)
	log.wait(t, "Suspended", func(e Event) bool { return e.Kind == EventStateChange && e.State == Suspended })
	c.DeleteInBackground(path)
	log.wait(t, "delete queued", func(e Event) bool { return e.Kind == EventDeleteQueued && e.Path == path })
	p.Blackhole(false)
	log.wait(t, "Reconnected", func(e Event) bool { return e.Kind == EventStateChange && e.State == Reconnected })
	done := log.wait(t, "delete done", func(e Event) bool { return e.Kind == EventDeleteDone && e.Path == path })
	if done.Err != nil {
		t.Errorf("delete done with %v, want nil", done.Err)
	}
	// A request lost with its connection is reported as a connection loss.
	lostConn := false
	for _, e := range log.all() {
		if e.Kind == EventRequest && errors.Is(e.Err, zk.ErrConnectionClosed) {
			lostConn = true
		}
	}
	t.Logf("a request reported lost with its connection: %v", lostConn)

	// The session's expiry.
	sid := c.SessionID()
	if err := p.ExpireSession(ctx, testServer, sid); err != nil {
		t.Fatal(err)
	}
	lost := log.wait(t, "session lost", func(e Event) bool { return e.Kind == EventSessionLost && e.SessionID == sid })
	if !errors.Is(lost.Err, ErrSessionLost) {
		t.Errorf("session lost with %v, want ErrSessionLost", lost.Err)
	}
	log.wait(t, "a new session", func(e Event) bool { return e.Kind == EventSessionOpened && e.SessionID != sid })

	// The states came in the order the listeners saw them.
	var states []State
	for _, e := range log.all() {
		if e.Kind == EventStateChange {
			states = append(states, e.State)
		}
	}
	if len(states) < 4 || states[0] != Connected || states[1] != Suspended || states[2] != Reconnected {
		t.Errorf("states observed %v, want Connected, Suspended, Reconnected, ...", states)
	}
}

// TestObserverNone: a client without an observer reports none and builds no event.
func TestObserverNone(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	if c.Observed() {
		t.Fatal("Observed() = true without an observer")
	}
	c.Observe(Event{Kind: EventRequest}) // no observer: nothing happens
	var nilObserver Observer
	d := newClient(t, "", nil, WithObserver(nilObserver))
	if d.Observed() {
		t.Fatal("Observed() = true with a nil observer")
	}
}

// TestEventKindString names every kind, and an unknown one by number.
func TestEventKindString(t *testing.T) {
	t.Parallel()
	for k := EventRequest; k <= EventHoldStarted; k++ {
		if s := k.String(); s == "" || s[0] == 'E' {
			t.Errorf("EventKind(%d).String() = %q", k, s)
		}
	}
	if s := EventKind(200).String(); s != "EventKind(200)" {
		t.Errorf("unknown kind = %q", s)
	}
}
