package recipes

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/zktest"
)

// latchRecorder is a listener that records its calls, with the latch's node at each IsLeader.
type latchRecorder struct {
	latch *LeaderLatch // if set, IsLeader records latch.OurPath()

	mu       sync.Mutex
	events   []string
	leadWith []string
}

func (r *latchRecorder) IsLeader() {
	var node string
	if r.latch != nil {
		node = r.latch.OurPath()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "IsLeader")
	r.leadWith = append(r.leadWith, node)
}

func (r *latchRecorder) NotLeader() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, "NotLeader")
}

func (r *latchRecorder) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *latchRecorder) nodes() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.leadWith)
}

// waitCalls waits until the recorder has seen exactly want.
func (r *latchRecorder) waitCalls(t testing.TB, d time.Duration, want ...string) {
	t.Helper()
	eventually(t, d, fmt.Sprintf("listener calls %v (have %v)", want, r.calls()), func() bool {
		return slices.Equal(r.calls(), want)
	})
}

// startLatch starts a latch, closed at the end of the test.
func startLatch(t testing.TB, c *framework.Client, path string, opts ...LatchOption) *LeaderLatch {
	t.Helper()
	l := NewLeaderLatch(c, path, opts...)
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// startLatchesInOrder starts one latch per client, each once the one before has its node, so that
// their queue order is their index order. Latch i has id "p<i>" and a recorder, added before Start.
func startLatchesInOrder(t testing.TB, clients []*framework.Client, path string, opts ...LatchOption) ([]*LeaderLatch, []*latchRecorder) {
	t.Helper()
	latches := make([]*LeaderLatch, len(clients))
	recs := make([]*latchRecorder, len(clients))
	for i, c := range clients {
		l := NewLeaderLatch(c, path, append([]LatchOption{WithParticipantID(fmt.Sprintf("p%d", i))}, opts...)...)
		recs[i] = &latchRecorder{latch: l}
		l.AddListener(recs[i])
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		latches[i] = l
		eventually(t, 10*time.Second, fmt.Sprintf("latch %d's node", i), func() bool { return l.OurPath() != "" })
	}
	return latches, recs
}

// waitSoleLeader waits until exactly one of ls (latches or selectors) leads, and returns its
// index.
func waitSoleLeader[L testkit.Leader](t testing.TB, ls []L) int {
	t.Helper()
	var leading []int
	eventually(t, 15*time.Second, "exactly one leader", func() bool {
		leading = testkit.Leading(ls)
		return len(leading) == 1
	})
	return leading[0]
}

// sampleLeaders looks at once and then every interval at which of ls (latches or selectors)
// lead, by index, until its Check (testkit.SampleLeaders).
func sampleLeaders[L testkit.Leader](t testing.TB, interval time.Duration, ls []L) *testkit.LeaderSampler[int] {
	t.Helper()
	return testkit.SampleLeaders(t, interval, func() ([]int, error) { return testkit.Leading(ls), nil })
}

// watchesOf returns the paths that the session sid watches on the test server (wchc).
func watchesOf(t testing.TB, sid int64) []string {
	t.Helper()
	reply, err := testServer.FourLetter("wchc")
	if err != nil {
		t.Fatalf("wchc: %v", err)
	}
	want := fmt.Sprintf("0x%x", sid)
	var out []string
	in := false
	for line := range strings.Lines(reply) {
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
		case strings.HasPrefix(trimmed, "0x"):
			in = trimmed == want
		case in:
			out = append(out, trimmed)
		}
	}
	return out
}

// latchNodeRE is the name of a latch node: Curator's protected prefix, "latch-", a sequence.
var latchNodeRE = regexp.MustCompile(`^_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-latch-\d{10}$`)

func TestLeaderLatchNodesAndParticipants(t *testing.T) {
	path := testPath(t, "one/two/me")
	admin := newClient(t)
	ids := []string{"id-A", "id-B", "", "ünïcode id"}
	var latches []*LeaderLatch
	for _, id := range ids {
		l := startLatch(t, newClient(t), path, WithParticipantID(id))
		eventually(t, 10*time.Second, "the latch's node", func() bool { return l.OurPath() != "" })
		latches = append(latches, l)
	}
	if got := waitSoleLeader(t, latches); got != 0 {
		t.Errorf("latch %d leads, want the first started", got)
	}
	ctx := testContext(t, 10*time.Second)

	names := children(t, admin, path)
	if len(names) != len(ids) {
		t.Fatalf("children = %v, want %d nodes", names, len(ids))
	}
	sortChildren(names, latchName)
	for i, n := range names {
		if !latchNodeRE.MatchString(n) {
			t.Errorf("node name %q does not match %s", n, latchNodeRE)
		}
		full := framework.JoinPath(path, n)
		if full != latches[i].OurPath() {
			t.Errorf("node %d is %s, want latch %d's node %s", i, full, i, latches[i].OurPath())
		}
		data, st, err := admin.Get(ctx, full)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != ids[i] || (ids[i] == "" && len(data) != 0) {
			t.Errorf("node %s data = %q, want the participant id %q", n, data, ids[i])
		}
		if st.EphemeralOwner == 0 {
			t.Errorf("node %s is not ephemeral", n)
		}
	}

	want := []Participant{{"id-A", true}, {"id-B", false}, {"", false}, {"ünïcode id", false}}
	for i, l := range latches {
		if l.ID() != ids[i] {
			t.Errorf("latch %d ID() = %q, want %q", i, l.ID(), ids[i])
		}
		ps, err := l.Participants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ps, want) {
			t.Errorf("latch %d Participants() = %v, want %v", i, ps, want)
		}
		leader, err := l.Leader(ctx)
		if err != nil || leader != want[0] {
			t.Errorf("latch %d Leader() = %v, %v; want %v", i, leader, err, want[0])
		}
	}

	// An observer that never starts sees the same election; a path without nodes has no leader.
	observer := NewLeaderLatch(admin, path)
	if ps, err := observer.Participants(ctx); err != nil || !slices.Equal(ps, want) {
		t.Errorf("unstarted latch Participants() = %v, %v; want %v", ps, err, want)
	}
	empty := NewLeaderLatch(admin, testPath(t, "nobody/here"))
	if ps, err := empty.Participants(ctx); err != nil || len(ps) != 0 {
		t.Errorf("Participants() of a missing path = %v, %v; want none", ps, err)
	}
	if p, err := empty.Leader(ctx); !errors.Is(err, ErrNoLeader) {
		t.Errorf("Leader() of a missing path = %v, %v; want ErrNoLeader", p, err)
	}

	// Closing the leader sends its node's delete at once: it is gone once that is confirmed.
	node := latches[0].OurPath()
	if err := latches[0].Close(); err != nil {
		t.Fatal(err)
	}
	settle(t)
	if ok, _, err := admin.Exists(ctx, node); err != nil || ok {
		t.Errorf("after Close, node %s exists = %v, %v", node, ok, err)
	}
	if got := waitSoleLeader(t, latches[1:]); got != 0 {
		t.Errorf("latch %d leads after the first closed, want the second started", got+1)
	}
	if leader, err := latches[2].Leader(ctx); err != nil || leader != (Participant{"id-B", true}) {
		t.Errorf("Leader() = %v, %v; want id-B", leader, err)
	}
}

// TestLeaderLatchFailover checks that at most one latch leads at every moment while the leader
// goes away in three ways, and that another takes over each time.
func TestLeaderLatchFailover(t *testing.T) {
	cases := []struct {
		name   string
		expire bool
		// told is what the old leader's listener hears.
		told []string
		fail func(t *testing.T, l *LeaderLatch, c *framework.Client, p *zktest.Proxy)
	}{
		{"latch closed", false, []string{"IsLeader"}, func(t *testing.T, l *LeaderLatch, _ *framework.Client, _ *zktest.Proxy) {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"client closed", false, []string{"IsLeader", "NotLeader"}, func(t *testing.T, _ *LeaderLatch, c *framework.Client, _ *zktest.Proxy) {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}},
		{"session expired", true, []string{"IsLeader", "NotLeader"}, func(t *testing.T, _ *LeaderLatch, c *framework.Client, p *zktest.Proxy) {
			if err := p.ExpireSession(testContext(t, 30*time.Second), testServer, c.SessionID()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const n = 3
			path := testPath(t, "latch")
			clients := make([]*framework.Client, n)
			proxies := make([]*zktest.Proxy, n)
			for i := range clients {
				clients[i], proxies[i] = newProxiedClient(t)
			}
			latches, recs := startLatchesInOrder(t, clients, path)
			s := sampleLeaders(t, 10*time.Millisecond, latches)
			old := waitSoleLeader(t, latches)
			if old != 0 {
				t.Fatalf("latch %d leads, want latch 0", old)
			}
			oldNode := latches[0].OurPath()
			oldSession := clients[0].SessionID()
			start := time.Now()
			tc.fail(t, latches[0], clients[0], proxies[0])
			next := waitSoleLeader(t, latches)
			t.Logf("latch %d took over %v after the failure was done", next, time.Since(start).Round(time.Millisecond))
			if next != 1 {
				t.Errorf("latch %d took over, want latch 1 (next in the queue)", next)
			}
			recs[0].waitCalls(t, 10*time.Second, tc.told...)

			if tc.expire {
				// The expired latch joins again with a node of its new session, at the back of
				// the queue, and does not lead (CURATOR-696).
				eventually(t, 15*time.Second, "the expired latch's new node", func() bool {
					p := latches[0].OurPath()
					return p != "" && p != oldNode
				})
				newNode := latches[0].OurPath()
				ctx := testContext(t, 10*time.Second)
				_, st, err := clients[1].Get(ctx, newNode)
				if err != nil {
					t.Fatal(err)
				}
				if sid := clients[0].SessionID(); st.EphemeralOwner != sid || sid == oldSession {
					t.Errorf("new node's owner 0x%x, client session 0x%x, old session 0x%x", st.EphemeralOwner, sid, oldSession)
				}
				if ok, _, _ := clients[1].Exists(ctx, oldNode); ok {
					t.Errorf("the expired session's node %s still exists", oldNode)
				}
				names := children(t, clients[1], path)
				sortChildren(names, latchName)
				if len(names) != n || framework.JoinPath(path, names[n-1]) != newNode {
					t.Errorf("queue %v: the re-joined node %s is not last", names, newNode)
				}
			}
			// Keep sampling a moment after the takeover; leadership must stay put.
			time.Sleep(300 * time.Millisecond)
			s.Check(t)
			if ls := testkit.Leading(latches); !slices.Equal(ls, []int{1}) {
				t.Errorf("leaders at the end = %v, want [1]", ls)
			}
			for i, want := range [][]string{tc.told, {"IsLeader"}, nil} {
				if got := recs[i].calls(); !slices.Equal(got, want) {
					t.Errorf("latch %d listener calls %v, want %v", i, got, want)
				}
			}
		})
	}
}

// TestLeaderLatchConnectionStates checks what a sole leader does, per error policy, when its
// connection drops (the session survives) and when its session expires.
func TestLeaderLatchConnectionStates(t *testing.T) {
	cases := []struct {
		name     string
		policy   framework.ErrorPolicy
		expire   bool
		want     []string
		sameNode bool
	}{
		{"standard policy, connection dropped", framework.StandardErrorPolicy, false, []string{"IsLeader", "NotLeader", "IsLeader"}, true},
		{"session policy, connection dropped", framework.SessionErrorPolicy, false, []string{"IsLeader"}, true},
		{"standard policy, session expired", framework.StandardErrorPolicy, true, []string{"IsLeader", "NotLeader", "IsLeader"}, false},
		{"session policy, session expired", framework.SessionErrorPolicy, true, []string{"IsLeader", "NotLeader", "IsLeader"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := testPath(t, "latch")
			c, p := newProxiedClient(t, framework.WithErrorPolicy(tc.policy))
			l := NewLeaderLatch(c, path)
			rec := &latchRecorder{latch: l}
			l.AddListener(rec)
			// Under the standard policy, leadership must have ended when SUSPENDED is reported (so
			// before the session can expire on the server); under the session policy it lasts
			// through a suspension.
			var mu sync.Mutex
			var states []framework.State
			leadsWhenSuspended := make(chan bool, 1)
			defer c.Listen(func(s framework.State) {
				if s == framework.Suspended {
					select {
					case leadsWhenSuspended <- l.HasLeadership():
					default:
					}
				}
				mu.Lock()
				states = append(states, s)
				mu.Unlock()
			})()
			if err := l.Start(); err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			rec.waitCalls(t, 10*time.Second, "IsLeader")
			before := l.OurPath()

			if tc.expire {
				if err := p.ExpireSession(testContext(t, 30*time.Second), testServer, c.SessionID()); err != nil {
					t.Fatal(err)
				}
			} else {
				p.CloseConnections()
			}
			leads := within(t, leadsWhenSuspended, 10*time.Second, "no SUSPENDED")
			if want := tc.policy == framework.SessionErrorPolicy; leads != want {
				t.Errorf("HasLeadership when SUSPENDED was reported = %v, want %v", leads, want)
			}
			eventually(t, 15*time.Second, "RECONNECTED", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return slices.Contains(states, framework.Reconnected)
			})
			if err := l.Await(testContext(t, 15*time.Second)); err != nil {
				t.Fatal(err)
			}
			rec.waitCalls(t, 10*time.Second, tc.want...)
			time.Sleep(300 * time.Millisecond) // nothing more may come
			if got := rec.calls(); !slices.Equal(got, tc.want) {
				t.Errorf("listener calls %v, want %v", got, tc.want)
			}
			after := l.OurPath()
			if (after == before) != tc.sameNode {
				t.Errorf("node before %s, after %s; want same node: %v", before, after, tc.sameNode)
			}
			if names := children(t, c, path); len(names) != 1 || framework.JoinPath(path, names[0]) != after {
				t.Errorf("children %v, want only the latch's node %s", names, after)
			}
			if nodes := rec.nodes(); nodes[len(nodes)-1] != after {
				t.Errorf("the latch last led with node %s, but its node is %s", nodes[len(nodes)-1], after)
			}
			if _, st, err := c.Get(testContext(t, 10*time.Second), after); err != nil || st.EphemeralOwner != c.SessionID() {
				t.Errorf("the leader's node %s: %v, want owned by the current session 0x%x", after, err, c.SessionID())
			}
			mu.Lock()
			t.Logf("states: %v", states)
			mu.Unlock()
		})
	}
}

// TestLeaderLatchNeverLeadsWithAnotherSessionsNode checks Curator 5.7's rule (CURATOR-696): a node
// that is first in the queue but not owned by the client's current session never makes the latch
// leader; the latch queues a node of its own instead.
func TestLeaderLatchNeverLeadsWithAnotherSessionsNode(t *testing.T) {
	cases := []struct {
		name string
		// claimed is the session the faulty create reports for the foreign node.
		claimed func(own, foreign int64) int64
	}{
		{"node reported as made in an ended session", func(_, foreign int64) int64 { return foreign }},
		{"node reported as ours but owned by another session", func(own, _ int64) int64 { return own }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := testPath(t, "latch")
			ctx := testContext(t, 20*time.Second)
			own, other := newClient(t), newClient(t)
			foreign, err := other.Create(ctx, framework.JoinPath(path, latchName), []byte("other"),
				framework.EphemeralSequential, framework.WithProtection(), framework.WithParents())
			if err != nil {
				t.Fatal(err)
			}
			l := NewLeaderLatch(own, path)
			rec := &latchRecorder{latch: l}
			l.AddListener(rec)
			var mu sync.Mutex
			var created []framework.Created
			first := true
			l.li.create = func(ctx context.Context, path string, data []byte, mode framework.CreateMode, opts ...framework.CreateOption) (framework.Created, framework.Listing, error) {
				mu.Lock()
				defer mu.Unlock()
				if first {
					// As a faulty create would: hand the latch a node that is not its own.
					first = false
					cr := framework.Created{Path: foreign.Path, SessionID: tc.claimed(own.SessionID(), other.SessionID())}
					created = append(created, cr)
					return cr, framework.Listing{}, nil
				}
				cr, ls, err := own.CreateAndList(ctx, path, data, mode, opts...)
				if err == nil {
					created = append(created, cr)
				}
				return cr, ls, err
			}
			if err := l.Start(); err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			eventually(t, 10*time.Second, "a node of the latch's own", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(created) == 2
			})
			mu.Lock()
			ownNode := created[1]
			mu.Unlock()
			if ownNode.SessionID != own.SessionID() {
				t.Errorf("own node's session 0x%x, want 0x%x", ownNode.SessionID, own.SessionID())
			}
			rec.waitCalls(t, 10*time.Second, "IsLeader")
			if nodes := rec.nodes(); !slices.Equal(nodes, []string{ownNode.Path}) {
				t.Errorf("the latch led with nodes %v, want only its own %s (never %s)", nodes, ownNode.Path, foreign.Path)
			}
			if l.OurPath() != ownNode.Path {
				t.Errorf("OurPath() = %s, want %s", l.OurPath(), ownNode.Path)
			}
		})
	}
}

// TestLeaderLatchWatchesOnlyItsPredecessor checks the queue discipline: each non-leader watches the
// node just ahead of its own (and the leader its own node), closing a middle participant does not
// make anyone but the leader lead, and leadership passes in queue order.
func TestLeaderLatchWatchesOnlyItsPredecessor(t *testing.T) {
	const n = 4
	path := testPath(t, "latch")
	clients := make([]*framework.Client, n)
	for i := range clients {
		clients[i] = newClient(t)
	}
	latches, _ := startLatchesInOrder(t, clients, path)
	s := sampleLeaders(t, 10*time.Millisecond, latches)
	if got := waitSoleLeader(t, latches); got != 0 {
		t.Fatalf("latch %d leads, want 0", got)
	}
	for i := range latches {
		want := latches[i].OurPath()
		if i > 0 {
			want = latches[i-1].OurPath()
		}
		eventually(t, 10*time.Second, fmt.Sprintf("latch %d watching %s", i, want), func() bool {
			return slices.Equal(watchesOf(t, clients[i].SessionID()), []string{want})
		})
	}

	// Close a middle participant: its follower now watches latch 1; latch 0 still leads.
	if err := latches[2].Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "latch 3 watching latch 1", func() bool {
		return slices.Contains(watchesOf(t, clients[3].SessionID()), latches[1].OurPath())
	})
	if ls := testkit.Leading(latches); !slices.Equal(ls, []int{0}) {
		t.Errorf("leaders after closing a follower = %v, want [0]", ls)
	}
	// Leadership passes down the queue.
	for _, next := range []int{1, 3} {
		prev := testkit.Leading(latches)[0]
		if err := latches[prev].Close(); err != nil {
			t.Fatal(err)
		}
		if got := waitSoleLeader(t, latches); got != next {
			t.Errorf("latch %d leads after %d closed, want %d", got, prev, next)
		}
	}
	s.Check(t)
}

func TestLeaderLatchAwait(t *testing.T) {
	path := testPath(t, "latch")
	latches, _ := startLatchesInOrder(t, []*framework.Client{newClient(t), newClient(t), newClient(t)}, path)
	if got := waitSoleLeader(t, latches); got != 0 {
		t.Fatalf("latch %d leads, want 0", got)
	}

	// On the leader, Await returns at once, even with a context that is about to end.
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := latches[0].Await(short); err != nil {
		t.Errorf("leader Await = %v, want nil", err)
	}
	// On a follower, it waits until the context ends.
	start := time.Now()
	short2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if err := latches[1].Await(short2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("follower Await = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("follower Await returned after %v, before its deadline", d)
	}
	cctx, ccancel := context.WithCancelCause(context.Background())
	errCause := errors.New("the caller gave up")
	ccancel(errCause)
	if err := latches[1].Await(cctx); !errors.Is(err, errCause) {
		t.Errorf("follower Await with a cancelled context = %v, want its cause", err)
	}

	// A follower's Await returns once it leads; another follower's returns ErrClosed when its
	// latch is closed.
	got := make(chan error, 2)
	ctx := testContext(t, 30*time.Second)
	go func() { got <- latches[1].Await(ctx) }()
	go func() {
		err := latches[2].Await(ctx)
		got <- fmt.Errorf("latch 2: %w", err)
	}()
	term := latches[0].LeadershipContext()
	if term.Err() != nil {
		t.Fatalf("the leader's LeadershipContext is done: %v", context.Cause(term))
	}
	if c := latches[1].LeadershipContext(); !errors.Is(context.Cause(c), ErrNotLeader) {
		t.Errorf("a follower's LeadershipContext cause = %v, want ErrNotLeader", context.Cause(c))
	}
	if err := latches[0].Close(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(context.Cause(term), ErrNotLeader) || !errors.Is(context.Cause(term), ErrClosed) {
		t.Errorf("the closed leader's term cause = %v, want ErrNotLeader and ErrClosed", context.Cause(term))
	}
	if err := <-got; err != nil {
		t.Fatalf("Await of the next leader = %v", err)
	}
	if !latches[1].HasLeadership() {
		t.Error("Await returned but the latch does not lead")
	}
	if latches[1].LeadershipContext().Err() != nil {
		t.Error("the new leader's LeadershipContext is done")
	}
	if err := latches[2].Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, ErrClosed) {
		t.Errorf("Await of a latch closed meanwhile = %v, want ErrClosed", err)
	}
	if err := latches[2].Await(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Await after Close = %v, want ErrClosed", err)
	}
}

func TestLeaderLatchCloseModes(t *testing.T) {
	cases := []struct {
		name   string
		mode   CloseMode
		leader bool
		want   []string
	}{
		{"silent leader", SilentClose, true, []string{"IsLeader"}},
		{"notifying leader", NotifyLeaderOnClose, true, []string{"IsLeader", "NotLeader"}},
		{"silent follower", SilentClose, false, nil},
		{"notifying follower", NotifyLeaderOnClose, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := testPath(t, "latch")
			c := newClient(t)
			var latches []*LeaderLatch
			var recs []*latchRecorder
			for i := 0; i < 2; i++ {
				l := NewLeaderLatch(c, path, WithCloseMode(tc.mode))
				rec := &latchRecorder{}
				l.AddListener(rec)
				if err := l.Start(); err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				eventually(t, 10*time.Second, "the latch's node", func() bool { return l.OurPath() != "" })
				latches, recs = append(latches, l), append(recs, rec)
			}
			waitSoleLeader(t, latches)
			recs[0].waitCalls(t, 10*time.Second, "IsLeader")
			i := 1
			if tc.leader {
				i = 0
			}
			if err := latches[i].Close(); err != nil {
				t.Fatal(err)
			}
			// Close has delivered what it owes when it returns.
			if got := recs[i].calls(); !slices.Equal(got, tc.want) {
				t.Errorf("listener calls %v, want %v", got, tc.want)
			}
			if latches[i].HasLeadership() {
				t.Error("a closed latch leads")
			}
			if names := children(t, c, path); len(names) != 1 {
				t.Errorf("children after Close = %v, want 1", names)
			}
			time.Sleep(100 * time.Millisecond) // nothing more may come
			if got := recs[i].calls(); !slices.Equal(got, tc.want) {
				t.Errorf("listener calls after a while %v, want %v", got, tc.want)
			}
		})
	}
}

// TestLeaderLatchCloseWhileDisconnected checks that Close does not wait for a lost connection: the
// node is deleted in the background once the client is back (or goes with the session).
func TestLeaderLatchCloseWhileDisconnected(t *testing.T) {
	path := testPath(t, "latch")
	c, p := newProxiedClient(t)
	latches, _ := startLatchesInOrder(t, []*framework.Client{c, newClient(t)}, path)
	if got := waitSoleLeader(t, latches); got != 0 {
		t.Fatalf("latch %d leads, want 0", got)
	}
	p.Blackhole(true)
	eventually(t, 10*time.Second, "SUSPENDED", func() bool { return c.State() == framework.Suspended })
	if latches[0].HasLeadership() {
		t.Error("the latch leads while SUSPENDED")
	}
	start := time.Now()
	if err := latches[0].Close(); err != nil {
		t.Fatal(err)
	}
	// removeNode gives a delete at most about half a second before handing it to the background.
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v while disconnected", d)
	}
	p.Blackhole(false)
	if err := latches[1].Await(testContext(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	if names := children(t, c, path); len(names) != 1 || framework.JoinPath(path, names[0]) != latches[1].OurPath() {
		t.Errorf("children %v, want only the new leader's node", names)
	}
}

func TestLeaderLatchListeners(t *testing.T) {
	path := testPath(t, "latch")
	c := newClient(t)
	l := NewLeaderLatch(c, path)
	panicky := LeaderLatchListenerFuncs{
		OnIsLeader:  func() { panic("listener bug") },
		OnNotLeader: func() { panic("listener bug") },
	}
	l.AddListener(panicky)
	l.AddListener(nil)
	first := &latchRecorder{}
	removeFirst := l.AddListener(first)
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	first.waitCalls(t, 10*time.Second, "IsLeader")

	// A listener added while the latch leads is told so at once.
	late := &latchRecorder{}
	l.AddListener(late)
	late.waitCalls(t, 10*time.Second, "IsLeader")

	// Leadership ends when the node is deleted under the latch; the latch queues again.
	removeFirst()
	removeFirst()
	node := l.OurPath()
	if err := c.Delete(testContext(t, 10*time.Second), node, -1); err != nil {
		t.Fatal(err)
	}
	late.waitCalls(t, 10*time.Second, "IsLeader", "NotLeader", "IsLeader")
	if l.OurPath() == node {
		t.Error("the latch leads again with its deleted node")
	}
	if got := first.calls(); !slices.Equal(got, []string{"IsLeader"}) {
		t.Errorf("a removed listener got %v", got)
	}

	// A listener may close the latch from its call.
	path2 := testPath(t, "latch2")
	l2 := NewLeaderLatch(c, path2, WithCloseMode(NotifyLeaderOnClose))
	closed := make(chan error, 1)
	rec := &latchRecorder{}
	l2.AddListener(rec)
	l2.AddListener(LeaderLatchListenerFuncs{OnIsLeader: func() { closed <- l2.Close() }})
	if err := l2.Start(); err != nil {
		t.Fatal(err)
	}
	err := within(t, closed, 10*time.Second, "Close from a listener did not return")
	if err != nil {
		t.Errorf("Close from a listener = %v", err)
	}
	rec.waitCalls(t, 10*time.Second, "IsLeader", "NotLeader")
	if names := children(t, c, path2); len(names) != 0 {
		t.Errorf("children after Close = %v", names)
	}
}

func TestLeaderLatchClientClosed(t *testing.T) {
	path := testPath(t, "latch")
	c := startOwnClient(t)
	defer c.Close()
	if err := c.BlockUntilConnected(testContext(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	// After a round trip the client's connection goroutines are all running.
	if _, _, err := c.Exists(testContext(t, 10*time.Second), "/"); err != nil {
		t.Fatal(err)
	}
	leak := goleak.IgnoreCurrent()
	l := NewLeaderLatch(c, path)
	rec := &latchRecorder{}
	l.AddListener(rec)
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	if err := l.Await(testContext(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	rec.waitCalls(t, 10*time.Second, "IsLeader", "NotLeader")
	if l.HasLeadership() {
		t.Error("the latch leads after its client was closed")
	}
	if err := l.Await(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Await after the client closed = %v, want ErrClosed", err)
	}
	if _, err := l.Participants(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Participants after the client closed = %v, want ErrClosed", err)
	}
	// The latch's goroutines ended with the client.
	goleak.VerifyNone(t, leak)
	if err := l.Close(); err != nil {
		t.Errorf("Close after the client closed = %v", err)
	}
}

func TestLeaderLatchGoroutinesEndAtClose(t *testing.T) {
	path := testPath(t, "latch")
	c := newClient(t)
	// After a round trip the client's connection goroutines are all running.
	if _, _, err := c.Exists(testContext(t, 10*time.Second), "/"); err != nil {
		t.Fatal(err)
	}
	leak := goleak.IgnoreCurrent()
	var latches []*LeaderLatch
	for i := 0; i < 3; i++ {
		l := NewLeaderLatch(c, path)
		l.AddListener(&latchRecorder{})
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		latches = append(latches, l)
	}
	waitSoleLeader(t, latches)
	for _, l := range latches {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	goleak.VerifyNone(t, leak)
	if names := children(t, c, path); len(names) != 0 {
		t.Errorf("children after Close = %v", names)
	}
}

func TestLeaderLatchMisuse(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	bad := []struct {
		name   string
		c      *framework.Client
		path   string
		opts   []LatchOption
		naming string
	}{
		{"nil client", nil, "/latch", nil, "client is nil"},
		{"empty path", c, "", nil, `""`},
		{"relative path", c, "parent", nil, `"parent"`},
		{"trailing slash", c, "/a/", nil, `"/a/"`},
		{"root", c, "/", nil, `"/"`},
		{"nil option", c, "/latch", []LatchOption{nil}, "option 0"},
		{"bad close mode", c, "/latch", []LatchOption{WithCloseMode(7)}, "close mode 7"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLeaderLatch(tc.c, tc.path, tc.opts...)
			check := func(op string, err error) {
				t.Helper()
				if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tc.naming) {
					t.Errorf("%s = %v, want ErrInvalidArgument naming %s", op, err, tc.naming)
				}
			}
			check("Start", l.Start())
			check("Await", l.Await(ctx))
			_, err := l.Participants(ctx)
			check("Participants", err)
			_, err = l.Leader(ctx)
			check("Leader", err)
			check("Close", l.Close())
			if l.HasLeadership() {
				t.Error("HasLeadership of a bad latch")
			}
			l.AddListener(&latchRecorder{})()
		})
	}

	t.Run("life cycle", func(t *testing.T) {
		path := testPath(t, "latch")
		l := NewLeaderLatch(c, path)
		if err := l.Await(ctx); !errors.Is(err, ErrNotStarted) || errors.Is(err, ErrClosed) {
			t.Errorf("Await before Start = %v, want ErrNotStarted", err)
		}
		if l.HasLeadership() || l.OurPath() != "" {
			t.Error("a latch that was never started leads or has a node")
		}
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		if err := l.Start(); !errors.Is(err, ErrAlreadyStarted) {
			t.Errorf("second Start = %v, want ErrAlreadyStarted", err)
		}
		if err := l.Await(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); !errors.Is(err, ErrClosed) {
			t.Errorf("second Close = %v, want ErrClosed", err)
		}
		// The latch is closed, not the client: the error says so, and matches ErrClosed.
		if err := l.Start(); !errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "leader latch is closed") {
			t.Errorf("Start after Close = %v, want ErrClosed saying the latch is closed", err)
		}
		if err := l.Await(ctx); !errors.Is(err, ErrClosed) || strings.Contains(err.Error(), "client is closed") {
			t.Errorf("Await after Close = %v, want ErrClosed", err)
		}
		if _, err := l.Participants(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("Participants after Close = %v, want ErrClosed", err)
		}
		if _, err := l.Leader(ctx); !errors.Is(err, ErrClosed) {
			t.Errorf("Leader after Close = %v, want ErrClosed", err)
		}
		l.AddListener(&latchRecorder{})()
		if l.HasLeadership() || l.OurPath() != "" {
			t.Error("a closed latch leads or has a node")
		}

		unstarted := NewLeaderLatch(c, path)
		if err := unstarted.Close(); err != nil {
			t.Errorf("Close before Start = %v, want nil", err)
		}
		if err := unstarted.Start(); !errors.Is(err, ErrClosed) {
			t.Errorf("Start after Close = %v, want ErrClosed", err)
		}
	})

	t.Run("client not started or closed", func(t *testing.T) {
		fresh, err := framework.NewClient(testServer.ConnectString())
		if err != nil {
			t.Fatal(err)
		}
		if err := NewLeaderLatch(fresh, "/latch").Start(); !errors.Is(err, framework.ErrNotStarted) {
			t.Errorf("Start with an unstarted client = %v, want framework.ErrNotStarted", err)
		}
		fresh.Close()
		if err := NewLeaderLatch(fresh, "/latch").Start(); !errors.Is(err, ErrClosed) {
			t.Errorf("Start with a closed client = %v, want ErrClosed", err)
		}
	})
}

// BenchmarkLeaderLatchFailover measures the time from the leader's client Close to the next
// latch's IsLeader, and the requests the survivors send per failover.
func BenchmarkLeaderLatchFailover(b *testing.B) {
	path := testPath(b, "latch")
	next := newClient(b)
	var total time.Duration
	var requests uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		leaderClient := newClient(b)
		leader := NewLeaderLatch(leaderClient, path)
		if err := leader.Start(); err != nil {
			b.Fatal(err)
		}
		if err := leader.Await(testContext(b, 10*time.Second)); err != nil {
			b.Fatal(err)
		}
		follower := NewLeaderLatch(next, path)
		isLeader := make(chan time.Time, 1)
		follower.AddListener(LeaderLatchListenerFuncs{OnIsLeader: func() { isLeader <- time.Now() }})
		if err := follower.Start(); err != nil {
			b.Fatal(err)
		}
		eventually(b, 10*time.Second, "the follower watching the leader", func() bool {
			return follower.OurPath() != "" &&
				slices.Contains(watchesOf(b, next.SessionID()), leader.OurPath())
		})
		before := next.RequestCount() + leaderClient.RequestCount()
		b.StartTimer()
		start := time.Now()
		leaderClient.Close()
		var at time.Time
		select {
		case at = <-isLeader:
		case <-time.After(10 * time.Second):
			b.Fatal("no failover within 10s")
		}
		b.StopTimer()
		total += at.Sub(start)
		requests += next.RequestCount() + leaderClient.RequestCount() - before
		if err := follower.Close(); err != nil {
			b.Fatal(err)
		}
		_ = leader.Close()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/failover")
	b.ReportMetric(float64(requests)/float64(b.N), "requests/failover")
}

// TestLeaderLatchCloseWaitsForListeners checks that, once Close returns, no listener call starts:
// Close from another goroutine while a listener call is in progress waits for it, and for the
// NotLeader calls of NotifyLeaderOnClose.
func TestLeaderLatchCloseWaitsForListeners(t *testing.T) {
	c := newClient(t)
	path := testPath(t, "latch")
	l := NewLeaderLatch(c, path, WithCloseMode(NotifyLeaderOnClose))
	inCall := make(chan struct{})
	release := make(chan struct{})
	l.AddListener(LeaderLatchListenerFuncs{OnIsLeader: func() {
		close(inCall)
		<-release
	}})
	var closeReturned atomic.Bool
	var late atomic.Value // the first listener call that started after Close returned
	rec := &latchRecorder{}
	l.AddListener(LeaderLatchListenerFuncs{
		OnIsLeader: func() {
			if closeReturned.Load() {
				late.CompareAndSwap(nil, "IsLeader")
			}
			rec.IsLeader()
		},
		OnNotLeader: func() {
			if closeReturned.Load() {
				late.CompareAndSwap(nil, "NotLeader")
			}
			rec.NotLeader()
		},
	})
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	within(t, inCall, 10*time.Second, "the first listener was not told IsLeader")
	closed := make(chan error, 1)
	go func() {
		err := l.Close()
		closeReturned.Store(true)
		closed <- err
	}()
	// Release the listener call once Close is under way.
	eventually(t, 10*time.Second, "Close to begin", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.state == lifeClosed
	})
	close(release)
	err := within(t, closed, 10*time.Second, "Close did not return")
	if err != nil {
		t.Errorf("Close = %v", err)
	}
	within(t, l.dispatchDone, 10*time.Second, "the listener goroutine did not end")
	if call := late.Load(); call != nil {
		t.Errorf("listener call %s started after Close returned", call)
	}
	if got := rec.calls(); !slices.Equal(got, []string{"IsLeader", "NotLeader"}) {
		t.Errorf("the second listener got %v, want [IsLeader NotLeader] before Close returned", got)
	}
}

// TestLeaderLatchCloseFromStateListener checks that Close called from a connection state listener
// returns (the client's listener goroutine is not one the latch waits for), at Suspended too.
func TestLeaderLatchCloseFromStateListener(t *testing.T) {
	c, p := newProxiedClient(t)
	path := testPath(t, "latch")
	l := startLatch(t, c, path, WithCloseMode(NotifyLeaderOnClose))
	rec := &latchRecorder{}
	l.AddListener(rec)
	if err := l.Await(testContext(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	defer c.Listen(func(st framework.State) {
		if st == framework.Suspended {
			closed <- l.Close()
		}
	})()
	p.CloseConnections()
	err := within(t, closed, 10*time.Second, "Close from a state listener did not return")
	if err != nil {
		t.Errorf("Close from a state listener = %v", err)
	}
	if got := rec.calls(); !slices.Equal(got, []string{"IsLeader", "NotLeader"}) {
		t.Errorf("listener got %v, want [IsLeader NotLeader]", got)
	}
	eventually(t, 10*time.Second, "the node deleted", func() bool { return len(children(t, c, path)) == 0 })
}

// TestLeaderLatchCloseWhileBlackholed checks that Close returns within about a second while the
// server does not answer (the node is deleted in the background once it does), without waiting
// for the session timeout.
func TestLeaderLatchCloseWhileBlackholed(t *testing.T) {
	c, p := newProxiedClient(t, framework.WithSessionTimeout(10*time.Second))
	path := testPath(t, "latch")
	l := startLatch(t, c, path)
	if err := l.Await(testContext(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	p.Blackhole(true)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	err := within(t, done, 15*time.Second, "Close while blackholed did not return within 15s")
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("Close took %v while blackholed, want about a second at most", took)
	}
	if err != nil {
		t.Errorf("Close while blackholed = %v", err)
	}
	p.Blackhole(false)
	eventually(t, 20*time.Second, "the node deleted after the connection came back", func() bool {
		return len(children(t, newClient(t), path)) == 0
	})
}

// TestLeaderLatchUncreatableNode checks that a latch whose node could never be written (its
// participant id is over ZooKeeper's request limit, so the server would drop the connection at
// every try) says so at Start, instead of retrying for ever.
func TestLeaderLatchUncreatableNode(t *testing.T) {
	c := newClient(t)
	path := testPath(t, "latch")
	l := NewLeaderLatch(c, path, WithParticipantID(strings.Repeat("x", 1<<20)))
	err := l.Start()
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), path) {
		t.Errorf("Start with a 1 MiB id = %v, want ErrInvalidArgument naming %s", err, path)
	}
	if err := l.Await(testContext(t, time.Second)); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Await after the failed Start = %v, want ErrNotStarted", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close of a latch that did not start = %v", err)
	}
	if st := c.State(); st != framework.Connected {
		t.Errorf("client state %v, want Connected", st)
	}
}

// TestLeaderLatchTermEndReason checks that a term that the connection or Close ends says why: its
// LeadershipContext's cause wraps ErrNotLeader and the reason.
func TestLeaderLatchTermEndReason(t *testing.T) {
	cases := []struct {
		name   string
		policy framework.ErrorPolicy
		end    func(t *testing.T, l *LeaderLatch, c *framework.Client, p *zktest.Proxy)
		reason error
		text   string
	}{
		{"connection suspended", framework.StandardErrorPolicy, func(t *testing.T, _ *LeaderLatch, _ *framework.Client, p *zktest.Proxy) {
			p.CloseConnections()
		}, framework.ErrSuspended, "connection suspended"},
		{"session lost", framework.SessionErrorPolicy, func(t *testing.T, _ *LeaderLatch, c *framework.Client, p *zktest.Proxy) {
			if err := p.ExpireSession(testContext(t, 30*time.Second), testServer, c.SessionID()); err != nil {
				t.Fatal(err)
			}
		}, framework.ErrSessionLost, "session lost"},
		{"client closed", framework.StandardErrorPolicy, func(t *testing.T, _ *LeaderLatch, c *framework.Client, _ *zktest.Proxy) {
			c.Close()
		}, ErrClosed, "client is closed"},
		{"latch closed", framework.StandardErrorPolicy, func(t *testing.T, l *LeaderLatch, _ *framework.Client, _ *zktest.Proxy) {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}, ErrClosed, "leader latch is closed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, p := newProxiedClient(t, framework.WithErrorPolicy(tc.policy))
			l := startLatch(t, c, testPath(t, "latch"))
			if err := l.Await(testContext(t, 10*time.Second)); err != nil {
				t.Fatal(err)
			}
			term := l.LeadershipContext()
			tc.end(t, l, c, p)
			within(t, term.Done(), 15*time.Second, "the term did not end")
			cause := context.Cause(term)
			if !errors.Is(cause, ErrNotLeader) || !errors.Is(cause, tc.reason) || !strings.Contains(cause.Error(), tc.text) {
				t.Errorf("cause %v, want ErrNotLeader and %v (%q)", cause, tc.reason, tc.text)
			}
		})
	}
}
