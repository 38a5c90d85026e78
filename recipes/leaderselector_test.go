package recipes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/zktest"
)

// leadRecorder is a leadership function that records each term and holds leadership until its
// context is done (or, with quick, returns at once).
type leadRecorder struct {
	quick bool

	mu     sync.Mutex
	ctxs   []context.Context
	tokens []int64
	causes []error
}

func (r *leadRecorder) lead(ctx context.Context) error {
	tok, ok := LeadershipToken(ctx)
	if !ok {
		return errors.New("no leadership token in the context")
	}
	r.mu.Lock()
	r.ctxs = append(r.ctxs, ctx)
	r.tokens = append(r.tokens, tok)
	r.mu.Unlock()
	if r.quick {
		return nil
	}
	<-ctx.Done()
	r.mu.Lock()
	r.causes = append(r.causes, context.Cause(ctx))
	r.mu.Unlock()
	return ctx.Err()
}

// terms returns how many times the function was called.
func (r *leadRecorder) terms() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ctxs)
}

// last returns the context of the last term.
func (r *leadRecorder) last() context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctxs[len(r.ctxs)-1]
}

// token returns the fencing token of term i.
func (r *leadRecorder) token(i int) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tokens[i]
}

func (r *leadRecorder) endCauses() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.causes)
}

func (r *leadRecorder) waitTerms(t testing.TB, d time.Duration, n int) {
	t.Helper()
	eventually(t, d, fmt.Sprintf("%d leadership terms (have %d)", n, r.terms()), func() bool { return r.terms() >= n })
}

// startSelector starts a selector, closed at the end of the test.
func startSelector(t testing.TB, c *framework.Client, path string, lead func(context.Context) error, opts ...SelectorOption) *LeaderSelector {
	t.Helper()
	s := NewLeaderSelector(c, path, lead, opts...)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestLeaderSelectorNodesAndParticipants checks Curator's layout: the selector's nodes are the
// mutex's lock- nodes with the participant id as data (the client's default data for no id), so a
// selector and an InterProcessMutex on one path exclude each other.
func TestLeaderSelectorNodesAndParticipants(t *testing.T) {
	path := testPath(t, "one/two/me")
	admin := newClient(t)
	ctx := testContext(t, 20*time.Second)
	ids := []string{"A is A", "", "ünïcode id"}
	var ss []*LeaderSelector
	for i, id := range ids {
		s := startSelector(t, newClient(t), path, (&leadRecorder{}).lead, WithSelectorID(id))
		eventually(t, 10*time.Second, "the selector's node", func() bool { return len(children(t, admin, path)) == i+1 })
		ss = append(ss, s)
	}
	if got := waitSoleLeader(t, ss); got != 0 {
		t.Errorf("selector %d leads, want the first started", got)
	}

	nodes, err := ss[1].ParticipantNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mnodes, err := NewInterProcessMutex(admin, path).ParticipantNodes(ctx)
	if err != nil || !slices.Equal(nodes, mnodes) {
		t.Errorf("selector ParticipantNodes %v, mutex ParticipantNodes %v, %v: want the same", nodes, mnodes, err)
	}
	if len(nodes) != len(ids) {
		t.Fatalf("nodes %v, want %d", nodes, len(ids))
	}
	for i, n := range nodes {
		_, name := framework.SplitPath(n)
		if !mutexNodeName.MatchString(name) {
			t.Errorf("node name %q is not Curator's lock- node", name)
		}
		data, st, err := admin.Get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		want := ids[i]
		if want == "" {
			want = string(admin.DefaultData())
		}
		if string(data) != want {
			t.Errorf("node %d data %q, want %q", i, data, want)
		}
		if st.EphemeralOwner == 0 {
			t.Errorf("node %s is not ephemeral", n)
		}
	}

	dflt := string(admin.DefaultData())
	want := []Participant{{"A is A", true}, {dflt, false}, {"ünïcode id", false}}
	for i, s := range ss {
		if s.ID() != ids[i] || s.Path() != path {
			t.Errorf("selector %d ID() %q Path() %q", i, s.ID(), s.Path())
		}
		ps, err := s.Participants(ctx)
		if err != nil || !slices.Equal(ps, want) {
			t.Errorf("selector %d Participants() = %v, %v; want %v", i, ps, err, want)
		}
		if leader, err := s.Leader(ctx); err != nil || leader != want[0] {
			t.Errorf("selector %d Leader() = %v, %v; want %v", i, leader, err, want[0])
		}
	}
	observer := NewLeaderSelector(admin, testPath(t, "nobody"), func(context.Context) error { return nil })
	if ps, err := observer.Participants(ctx); err != nil || len(ps) != 0 {
		t.Errorf("Participants() of a missing path = %v, %v; want none", ps, err)
	}
	if p, err := observer.Leader(ctx); !errors.Is(err, ErrNoLeader) {
		t.Errorf("Leader() of a missing path = %v, %v; want ErrNoLeader", p, err)
	}

	// A mutex on the election path queues behind the selectors, like any participant: it gets
	// the lock only when every selector has left, and no selector leads while it holds.
	m := NewInterProcessMutex(admin, path)
	got := acquireAsync(t, ctx, m.Acquire)
	eventually(t, 10*time.Second, "the mutex's node", func() bool { return len(children(t, admin, path)) == len(ids)+1 })
	for _, s := range ss {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	l := <-got
	if l == nil {
		t.FailNow()
	}
	if ls := testkit.Leading(ss); len(ls) != 0 {
		t.Errorf("selectors %v lead while the mutex is held", ls)
	}
	if names := children(t, admin, path); len(names) != 1 {
		t.Errorf("children %v, want only the mutex's node", names)
	}
	mustRelease(t, l)
}

// TestLeaderSelectorRotatingLeadership is Curator's testRotatingLeadership: five selectors, three
// rounds of Start or Requeue; in each round each leads exactly once, one at a time, and the
// fencing token increases from each leader to the next.
func TestLeaderSelectorRotatingLeadership(t *testing.T) {
	const n, rounds = 5, 3
	path := testPath(t, "leader")
	var (
		mu      sync.Mutex
		order   []int
		tokens  []int64
		active  atomic.Int32
		overlap atomic.Bool
	)
	ss := make([]*LeaderSelector, n)
	for i := range ss {
		ss[i] = NewLeaderSelector(newClient(t), path, func(ctx context.Context) error {
			if active.Add(1) > 1 {
				overlap.Store(true)
			}
			defer active.Add(-1)
			tok, _ := LeadershipToken(ctx)
			mu.Lock()
			order = append(order, i)
			tokens = append(tokens, tok)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond) // a moment in which a second leader would show
			return nil
		})
		t.Cleanup(func() { _ = ss[i].Close() })
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(order)
	}
	for r := range rounds {
		for i, s := range ss {
			if r == 0 {
				if err := s.Start(); err != nil {
					t.Fatal(err)
				}
			} else if !s.Requeue() {
				t.Fatalf("round %d: Requeue of selector %d returned false", r, i)
			}
		}
		eventually(t, 20*time.Second, fmt.Sprintf("round %d's %d terms", r, n), func() bool { return count() >= (r+1)*n })
		// Requeue only reports true once the turn is over: wait until every selector is idle.
		eventually(t, 10*time.Second, "the selectors to be idle", func() bool {
			for _, s := range ss {
				s.mu.Lock()
				q := s.queued
				s.mu.Unlock()
				if q {
					return false
				}
			}
			return true
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if overlap.Load() {
		t.Error("two leadership functions ran at once")
	}
	if len(order) != n*rounds {
		t.Fatalf("%d terms, want %d: %v", len(order), n*rounds, order)
	}
	for r := range rounds {
		round := slices.Clone(order[r*n : (r+1)*n])
		slices.Sort(round)
		if !slices.Equal(round, []int{0, 1, 2, 3, 4}) {
			t.Errorf("round %d leaders %v, want each selector once", r, order[r*n:(r+1)*n])
		}
	}
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Errorf("token %d of term %d not above %d", tokens[i], i, tokens[i-1])
		}
	}
	if names := children(t, newClient(t), path); len(names) != 0 {
		t.Errorf("nodes left after every turn: %v", names)
	}
}

// TestLeaderSelectorRequeue checks that without AutoRequeue a selector leads once per Start or
// Requeue, that Requeue reports false while a turn runs, and that with AutoRequeue it leads again
// and again.
func TestLeaderSelectorRequeue(t *testing.T) {
	t.Run("manual", func(t *testing.T) {
		c := newClient(t)
		path := testPath(t, "leader")
		release := make(chan struct{})
		var calls atomic.Int32
		s := startSelector(t, c, path, func(ctx context.Context) error {
			calls.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil
		})
		eventually(t, 10*time.Second, "the first term", func() bool { return s.HasLeadership() })
		if s.Requeue() {
			t.Error("Requeue while leading returned true")
		}
		release <- struct{}{}
		eventually(t, 10*time.Second, "the term to end", func() bool { return !s.HasLeadership() && len(children(t, c, path)) == 0 })
		time.Sleep(200 * time.Millisecond) // it must not lead again by itself
		if n := calls.Load(); n != 1 || s.HasLeadership() {
			t.Fatalf("%d terms without Requeue, leads: %v; want 1 and not leading", n, s.HasLeadership())
		}
		if !s.Requeue() {
			t.Fatal("Requeue after the term returned false")
		}
		eventually(t, 10*time.Second, "the second term", func() bool { return calls.Load() == 2 && s.HasLeadership() })
		close(release)
	})
	t.Run("auto", func(t *testing.T) {
		c := newClient(t)
		path := testPath(t, "leader")
		rec := &leadRecorder{quick: true}
		s := startSelector(t, c, path, rec.lead, AutoRequeue())
		rec.waitTerms(t, 15*time.Second, 3)
		if s.Requeue() {
			// A turn is always queued or running with AutoRequeue.
			t.Error("Requeue of an auto-requeueing selector returned true")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		n := rec.terms()
		time.Sleep(200 * time.Millisecond)
		if rec.terms() != n {
			t.Errorf("terms went on after Close: %d then %d", n, rec.terms())
		}
		// Close may catch a create in flight, whose node is deleted in the background.
		eventually(t, 5*time.Second, "no node", func() bool { return len(children(t, c, path)) == 0 })
	})
	t.Run("auto with a competitor", func(t *testing.T) {
		// Two auto-requeueing selectors whose terms are short alternate: each queues at the back.
		path := testPath(t, "leader")
		a, b := &leadRecorder{quick: true}, &leadRecorder{quick: true}
		startSelector(t, newClient(t), path, a.lead, AutoRequeue())
		startSelector(t, newClient(t), path, b.lead, AutoRequeue())
		a.waitTerms(t, 15*time.Second, 3)
		b.waitTerms(t, 15*time.Second, 3)
	})
}

// TestLeaderSelectorInterrupt checks InterruptLeadership: the function's context is cancelled with
// ErrNotLeader, the node is released, and with AutoRequeue the sole participant leads again.
func TestLeaderSelectorInterrupt(t *testing.T) {
	c := newClient(t)
	path := testPath(t, "leader")
	rec := &leadRecorder{}
	s := startSelector(t, c, path, rec.lead, AutoRequeue())
	rec.waitTerms(t, 10*time.Second, 1)
	first := rec.last()
	for i := 2; i <= 3; i++ {
		if !s.InterruptLeadership() {
			t.Fatal("InterruptLeadership of the leader returned false")
		}
		<-first.Done()
		if cause := context.Cause(first); !errors.Is(cause, ErrNotLeader) {
			t.Errorf("cause %v, want ErrNotLeader", cause)
		}
		rec.waitTerms(t, 10*time.Second, i)
		first = rec.last()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(context.Cause(first), ErrClosed) || !errors.Is(context.Cause(first), ErrNotLeader) {
		t.Errorf("cause after Close %v, want ErrNotLeader and ErrClosed", context.Cause(first))
	}
	if s.InterruptLeadership() || s.HasLeadership() {
		t.Error("a closed selector leads")
	}
	if names := children(t, c, path); len(names) != 0 {
		t.Errorf("nodes after Close: %v", names)
	}
}

// TestLeaderSelectorFailover checks that another selector takes over, and never two lead at once,
// when the leader goes away in three ways.
func TestLeaderSelectorFailover(t *testing.T) {
	cases := []struct {
		name string
		fail func(t *testing.T, s *LeaderSelector, c *framework.Client, p *zktest.Proxy)
		// cause is what the old leader's context ends with.
		cause []error
	}{
		{"selector closed", func(t *testing.T, s *LeaderSelector, _ *framework.Client, _ *zktest.Proxy) {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}, []error{ErrNotLeader, ErrClosed}},
		{"client closed", func(t *testing.T, _ *LeaderSelector, c *framework.Client, _ *zktest.Proxy) {
			c.Close()
		}, []error{ErrNotLeader, ErrLockLost, ErrClosed}},
		{"session expired", func(t *testing.T, _ *LeaderSelector, c *framework.Client, p *zktest.Proxy) {
			if err := p.ExpireSession(testContext(t, 30*time.Second), testServer, c.SessionID()); err != nil {
				t.Fatal(err)
			}
		}, []error{ErrNotLeader, ErrLockLost}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const n = 3
			path := testPath(t, "leader")
			clients := make([]*framework.Client, n)
			proxies := make([]*zktest.Proxy, n)
			recs := make([]*leadRecorder, n)
			ss := make([]*LeaderSelector, n)
			for i := range ss {
				clients[i], proxies[i] = newProxiedClient(t)
				recs[i] = &leadRecorder{}
				ss[i] = startSelector(t, clients[i], path, recs[i].lead, WithSelectorID(fmt.Sprint(i)))
				eventually(t, 10*time.Second, "the selector's node", func() bool { return len(children(t, clients[0], path)) == i+1 })
			}
			sampler := sampleLeaders(t, 5*time.Millisecond, ss)
			if got := waitSoleLeader(t, ss); got != 0 {
				t.Fatalf("selector %d leads, want 0", got)
			}
			tc.fail(t, ss[0], clients[0], proxies[0])
			if got := waitSoleLeader(t, ss); got != 1 {
				t.Errorf("selector %d took over, want 1", got)
			}
			eventually(t, 10*time.Second, "the old leader's function to return", func() bool { return len(recs[0].endCauses()) == 1 })
			for _, want := range tc.cause {
				if cause := recs[0].endCauses()[0]; !errors.Is(cause, want) {
					t.Errorf("old leader's cause %v, want %v", cause, want)
				}
			}
			time.Sleep(200 * time.Millisecond)
			sampler.Check(t)
			if ls := testkit.Leading(ss); !slices.Equal(ls, []int{1}) {
				t.Errorf("leaders at the end %v, want [1]", ls)
			}
			if l, err := ss[2].Leader(testContext(t, 10*time.Second)); err != nil || l.ID != "1" {
				t.Errorf("Leader() = %v, %v; want participant 1", l, err)
			}
			if old, got := recs[0].token(0), recs[1].token(0); got <= old {
				t.Errorf("new leader's token %d not above the old one's %d", got, old)
			}
		})
	}
}

// TestLeaderSelectorConnectionStates checks what a leader is told, per error policy, when its
// connection drops (the session survives) and when its session expires; with AutoRequeue it leads
// again afterwards, with a node of its live session.
func TestLeaderSelectorConnectionStates(t *testing.T) {
	cases := []struct {
		name   string
		policy framework.ErrorPolicy
		expire bool
		lost   bool  // the first term ends
		reason error // and its cause says so
	}{
		{"standard policy, connection dropped", framework.StandardErrorPolicy, false, true, framework.ErrSuspended},
		{"session policy, connection dropped", framework.SessionErrorPolicy, false, false, nil},
		{"standard policy, session expired", framework.StandardErrorPolicy, true, true, framework.ErrSuspended},
		{"session policy, session expired", framework.SessionErrorPolicy, true, true, framework.ErrSessionLost},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := testPath(t, "leader")
			c, p := newProxiedClient(t, framework.WithErrorPolicy(tc.policy))
			rec := &leadRecorder{}
			s := startSelector(t, c, path, rec.lead, AutoRequeue())
			states := make(chan framework.State, 16)
			leadsWhenSuspended := make(chan bool, 1)
			defer c.Listen(func(st framework.State) {
				if st == framework.Suspended {
					select {
					case leadsWhenSuspended <- s.HasLeadership():
					default:
					}
				}
				states <- st
			})()
			rec.waitTerms(t, 10*time.Second, 1)
			first := rec.last()
			if tc.expire {
				if err := p.ExpireSession(testContext(t, 30*time.Second), testServer, c.SessionID()); err != nil {
					t.Fatal(err)
				}
			} else {
				p.CloseConnections()
			}
			waitState(t, states, framework.Suspended)
			// Under the standard policy, leadership ended by the time Suspended was reported
			// (before the session could expire on the server); under the session policy it lasts
			// through a suspension.
			if leads := <-leadsWhenSuspended; leads != (tc.policy == framework.SessionErrorPolicy) {
				t.Errorf("HasLeadership when Suspended was reported = %v", leads)
			}
			waitState(t, states, framework.Reconnected)
			if !tc.lost {
				time.Sleep(300 * time.Millisecond)
				if first.Err() != nil || !s.HasLeadership() || rec.terms() != 1 {
					t.Fatalf("the term ended (%v) under the session policy after a drop", context.Cause(first))
				}
				if names := children(t, c, path); len(names) != 1 {
					t.Errorf("children %v, want only the leader's node", names)
				}
				return
			}
			<-first.Done()
			if cause := context.Cause(first); !errors.Is(cause, ErrNotLeader) || !errors.Is(cause, ErrLockLost) || !errors.Is(cause, tc.reason) {
				t.Errorf("cause %v, want ErrNotLeader, ErrLockLost and %v", cause, tc.reason)
			}
			rec.waitTerms(t, 15*time.Second, 2)
			if !s.HasLeadership() {
				t.Error("not leading in the second term")
			}
			// The old node is cleaned up; the new one is of the live session.
			eventually(t, 10*time.Second, "only the new node", func() bool { return len(children(t, c, path)) == 1 })
			nodes, err := s.ParticipantNodes(testContext(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if _, st, err := c.Get(testContext(t, 10*time.Second), nodes[0]); err != nil || st.EphemeralOwner != c.SessionID() {
				t.Errorf("the leader's node %s: %v, want owned by the live session", nodes[0], err)
			}
			if rec.token(1) <= rec.token(0) {
				t.Errorf("token %d of the second term not above %d", rec.token(1), rec.token(0))
			}
		})
	}
}

// TestLeaderSelectorCloseWhileQueued checks that closing a selector that waits for leadership
// removes its node at once, and that it never leads.
func TestLeaderSelectorCloseWhileQueued(t *testing.T) {
	path := testPath(t, "leader")
	c := newClient(t)
	leader := &leadRecorder{}
	startSelector(t, newClient(t), path, leader.lead)
	leader.waitTerms(t, 10*time.Second, 1)
	waiter := &leadRecorder{}
	s := startSelector(t, c, path, waiter.lead, AutoRequeue())
	eventually(t, 10*time.Second, "the waiter's node", func() bool { return len(children(t, c, path)) == 2 })
	if s.HasLeadership() || s.InterruptLeadership() {
		t.Error("a queued selector leads")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The node is deleted by Close, or at once in the background if Close caught its create in
	// flight.
	eventually(t, 5*time.Second, "only the leader's node", func() bool { return len(children(t, c, path)) == 1 })
	if waiter.terms() != 0 {
		t.Error("the closed waiter led")
	}
}

// TestLeaderSelectorPanic checks that a panicking function ends its term like a return.
func TestLeaderSelectorPanic(t *testing.T) {
	path := testPath(t, "leader")
	c := newClient(t)
	var calls atomic.Int32
	startSelector(t, c, path, func(context.Context) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return errors.New("failed")
	}, AutoRequeue())
	eventually(t, 10*time.Second, "terms after a panic and an error", func() bool { return calls.Load() >= 3 })
}

func TestLeaderSelectorClientClosed(t *testing.T) {
	path := testPath(t, "leader")
	c := startOwnClient(t)
	defer c.Close()
	leak := goleak.IgnoreCurrent()
	rec := &leadRecorder{}
	s := NewLeaderSelector(c, path, rec.lead, AutoRequeue())
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	rec.waitTerms(t, 10*time.Second, 1)
	c.Close()
	<-rec.last().Done()
	if cause := context.Cause(rec.last()); !errors.Is(cause, ErrClosed) {
		t.Errorf("cause %v, want ErrClosed", cause)
	}
	eventually(t, 10*time.Second, "the selector to stop", func() bool { return !s.HasLeadership() && !s.Requeue() })
	// The selector's goroutine ended with the client.
	goleak.VerifyNone(t, leak)
	if err := s.Close(); err != nil {
		t.Errorf("Close after the client closed = %v", err)
	}
	if names := children(t, newClient(t), path); len(names) != 0 {
		t.Errorf("nodes after the client closed: %v", names)
	}
}

func TestLeaderSelectorMisuse(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	nop := func(context.Context) error { return nil }
	for _, tc := range []struct {
		name   string
		c      *framework.Client
		path   string
		fn     func(context.Context) error
		opts   []SelectorOption
		naming string
	}{
		{"nil client", nil, "/leader", nop, nil, "client is nil"},
		{"relative path", c, "leader", nop, nil, `"leader"`},
		{"root", c, "/", nop, nil, `"/"`},
		{"nil function", c, "/leader", nil, nil, "function is nil"},
		{"nil option", c, "/leader", nop, []SelectorOption{nil}, "option 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewLeaderSelector(tc.c, tc.path, tc.fn, tc.opts...)
			for op, err := range map[string]error{"Start": s.Start(), "Close": s.Close()} {
				if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tc.naming) {
					t.Errorf("%s = %v, want ErrInvalidArgument naming %s", op, err, tc.naming)
				}
			}
			if s.Requeue() || s.HasLeadership() || s.InterruptLeadership() {
				t.Error("a bad selector queued or leads")
			}
		})
	}

	t.Run("life cycle", func(t *testing.T) {
		path := testPath(t, "leader")
		rec := &leadRecorder{}
		s := NewLeaderSelector(c, path, rec.lead)
		if s.Requeue() {
			t.Error("Requeue before Start returned true")
		}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(); !errors.Is(err, ErrAlreadyStarted) {
			t.Errorf("second Start = %v", err)
		}
		rec.waitTerms(t, 10*time.Second, 1)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close = %v, want ErrClosed", err)
		}
		if err := s.Start(); !errors.Is(err, ErrClosed) || strings.Contains(err.Error(), "client is closed") {
			t.Errorf("Start after Close = %v, want ErrClosed saying the selector (not the client) is closed", err)
		}
		if _, err := s.Participants(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("Participants after Close = %v, want ErrClosed", err)
		}
		if s.Requeue() {
			t.Error("Requeue after Close returned true")
		}
		unstarted := NewLeaderSelector(c, path, rec.lead)
		if err := unstarted.Close(); err != nil {
			t.Errorf("Close before Start = %v, want nil", err)
		}
		if err := unstarted.Start(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "leader selector is closed") {
			t.Errorf("Start after Close = %v, want ErrClosed saying the selector is closed", err)
		}
		if tok, ok := LeadershipToken(ctx); ok || tok != 0 {
			t.Errorf("LeadershipToken of a plain context = %d, %v", tok, ok)
		}
	})

	t.Run("client not started or closed", func(t *testing.T) {
		fresh, err := framework.NewClient(testServer.ConnectString())
		if err != nil {
			t.Fatal(err)
		}
		if err := NewLeaderSelector(fresh, "/leader", nop).Start(); !errors.Is(err, framework.ErrNotStarted) {
			t.Errorf("Start with an unstarted client = %v, want framework.ErrNotStarted", err)
		}
		fresh.Close()
		if err := NewLeaderSelector(fresh, "/leader", nop).Start(); !errors.Is(err, ErrClosed) {
			t.Errorf("Start with a closed client = %v, want ErrClosed", err)
		}
	})
}

// TestLeaderSelectorCloseFromEverywhere checks Close from inside the leadership function, from a
// connection state listener and from another goroutine: each returns, and stops everything (the
// function is not called again, the selector's goroutine ends, its node is deleted); a Close from
// outside the function returns only once the function has returned.
func TestLeaderSelectorCloseFromEverywhere(t *testing.T) {
	cases := []struct {
		name string
		// close makes s be closed from somewhere while the function leads; the function's ctx is
		// given, and p to cause a state change. It returns Close's result.
		close func(t *testing.T, s *LeaderSelector, c *framework.Client, p *zktest.Proxy, fromFn chan<- func()) error
	}{
		{"from the leadership function", func(t *testing.T, s *LeaderSelector, _ *framework.Client, _ *zktest.Proxy, fromFn chan<- func()) error {
			res := make(chan error, 1)
			fromFn <- func() { res <- s.Close() }
			return <-res
		}},
		{"from a connection state listener", func(t *testing.T, s *LeaderSelector, c *framework.Client, p *zktest.Proxy, _ chan<- func()) error {
			res := make(chan error, 1)
			defer c.Listen(func(st framework.State) {
				if st == framework.Suspended {
					res <- s.Close()
				}
			})()
			p.CloseConnections()
			return <-res
		}},
		{"from another goroutine", func(t *testing.T, s *LeaderSelector, _ *framework.Client, _ *zktest.Proxy, _ chan<- func()) error {
			return s.Close()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := testPath(t, "leader")
			// Under the session policy a suspension does not end the term: only Close does.
			c, p := newProxiedClient(t, framework.WithErrorPolicy(framework.SessionErrorPolicy))
			var calls, running atomic.Int32
			fromFn := make(chan func(), 1)
			ended := make(chan error, 1)
			s := NewLeaderSelector(c, path, func(ctx context.Context) error {
				calls.Add(1)
				running.Add(1)
				defer running.Add(-1)
				select {
				case f := <-fromFn:
					f()
				case <-ctx.Done():
				}
				<-ctx.Done()
				// Take a while to stop, so that a Close that does not wait is seen.
				time.Sleep(100 * time.Millisecond)
				ended <- context.Cause(ctx)
				return nil
			}, AutoRequeue())
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			eventually(t, 10*time.Second, "leadership", s.HasLeadership)

			closed := make(chan error, 1)
			go func() { closed <- tc.close(t, s, c, p, fromFn) }()
			err := within(t, closed, 10*time.Second, "Close did not return")
			if err != nil {
				t.Errorf("Close = %v", err)
			}
			inFn := tc.name == "from the leadership function"
			if !inFn && running.Load() != 0 {
				t.Error("Close returned while the leadership function still ran")
			}
			cause := within(t, ended, 10*time.Second, "the leadership function did not return")
			if !errors.Is(cause, ErrNotLeader) || !errors.Is(cause, ErrClosed) {
				t.Errorf("the function's cause %v, want ErrNotLeader and ErrClosed", cause)
			}
			within(t, s.done, 10*time.Second, "the selector's goroutine did not end")
			if n := calls.Load(); n != 1 {
				t.Errorf("the leadership function ran %d times, want 1", n)
			}
			if s.HasLeadership() || s.Requeue() {
				t.Error("a closed selector leads or queues")
			}
			eventually(t, 10*time.Second, "no node left", func() bool { return len(children(t, c, path)) == 0 })
		})
	}
}

// TestLeaderSelectorUncreatableNode checks that a selector whose node could never be written (its
// id is over ZooKeeper's request limit) says so at Start, instead of retrying for ever.
func TestLeaderSelectorUncreatableNode(t *testing.T) {
	c := newClient(t)
	path := testPath(t, "leader")
	s := NewLeaderSelector(c, path, func(ctx context.Context) error { return nil }, WithSelectorID(strings.Repeat("x", 1<<20)))
	err := s.Start()
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), path) {
		t.Errorf("Start with a 1 MiB id = %v, want ErrInvalidArgument naming %s", err, path)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of a selector that did not start = %v", err)
	}
	if names := children(t, c, path); len(names) != 0 {
		t.Errorf("nodes of a selector that did not start: %v", names)
	}
}

// TestLeaderSelectorClientClosedWhilePausing checks that a selector that cannot queue (its path is
// under an ephemeral node, which can have no children), and so pauses between tries, stops at once
// when its client is closed, not at the end of its pause.
func TestLeaderSelectorClientClosedWhilePausing(t *testing.T) {
	admin := newClient(t)
	parent := testPath(t, "ephemeral")
	if _, err := admin.Create(testContext(t, 10*time.Second), parent, nil, framework.Ephemeral, framework.WithParents()); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	c := newClient(t, framework.WithLogger(zap.New(core)))
	s := NewLeaderSelector(c, parent+"/leader", func(ctx context.Context) error { return nil })
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	// The pauses grow 50ms, 100ms, ... : after the 7th failed try the selector pauses 3.2s.
	eventually(t, 15*time.Second, "7 failed tries", func() bool {
		return logs.FilterMessage("leader selector could not queue for leadership; trying again").Len() >= 7
	})
	start := time.Now()
	c.Close()
	select {
	case <-s.done:
		if took := time.Since(start); took > time.Second {
			t.Errorf("the selector's goroutine ended %v after its client closed", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the selector's goroutine did not end after its client closed")
	}
	if s.Requeue() {
		t.Error("Requeue on a selector whose client is closed returned true")
	}
}
