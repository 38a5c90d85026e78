package curatorprom

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// series gathers every series of o into a map from "name{label="value",...}" to its value,
// leaving out those at zero: a histogram gives its _count and _sum. Comparing the map with what
// a test expects checks that each series moved by exactly what happened, and no other moved.
func series(t testing.TB, o *Observer) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(o); err != nil {
		t.Fatalf("register: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := make([]string, 0, len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			ls := "{" + strings.Join(labels, ",") + "}"
			put := func(name string, v float64) {
				if v != 0 {
					got[name+ls] = v
				}
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				put(mf.GetName(), m.GetCounter().GetValue())
			case dto.MetricType_GAUGE:
				put(mf.GetName(), m.GetGauge().GetValue())
			case dto.MetricType_HISTOGRAM:
				put(mf.GetName()+"_count", float64(m.GetHistogram().GetSampleCount()))
				put(mf.GetName()+"_sum", m.GetHistogram().GetSampleSum())
			default:
				t.Fatalf("unexpected metric type %v of %s", mf.GetType(), mf.GetName())
			}
		}
	}
	return got
}

// latent is the one series at a non-zero value on a new Observer.
const latent = `gocurator_client_state{state="latent"}`

func granted(recipe, path string, wait time.Duration) []framework.Event {
	return []framework.Event{
		{Kind: framework.EventAcquireStarted, Recipe: recipe, Path: path},
		{Kind: framework.EventAcquireGranted, Recipe: recipe, Path: path, Node: path + "/n-0000000001", SessionID: 7, Duration: wait},
		{Kind: framework.EventHoldStarted, Recipe: recipe, Path: path, Node: path + "/n-0000000001", SessionID: 7},
	}
}

func failed(recipe string, wait time.Duration, err error) []framework.Event {
	return []framework.Event{
		{Kind: framework.EventAcquireStarted, Recipe: recipe, Path: "/l"},
		{Kind: framework.EventAcquireFailed, Recipe: recipe, Path: "/l", Duration: wait, Err: err},
	}
}

func holdEnded(recipe string, held time.Duration, err error) framework.Event {
	return framework.Event{Kind: framework.EventHoldEnded, Recipe: recipe, Path: "/l", Node: "/l/n-0000000001", SessionID: 7, Duration: held, Err: err}
}

func request(op string, d time.Duration, err error) framework.Event {
	return framework.Event{Kind: framework.EventRequest, Op: op, Path: "/l/n", Duration: d, Err: err}
}

func lostErr(cause error) error { return fmt.Errorf("%w: %w", recipes.ErrLockLost, cause) }

// merged returns one map of every series in parts; where two parts hold the same series, their
// values add up.
func merged(parts ...map[string]float64) map[string]float64 {
	m := map[string]float64{}
	for _, p := range parts {
		for k, v := range p {
			m[k] += v
		}
	}
	return m
}

// acquireSeries is what one acquire of recipe that returned with outcome after waiting wait
// seconds moves: the acquire counter and the wait histogram's count by one, and the histogram's
// sum by wait (left out at zero, as series leaves out series at zero).
func acquireSeries(recipe, outcome string, wait float64) map[string]float64 {
	ls := fmt.Sprintf(`{outcome=%q,recipe=%q}`, outcome, recipe)
	m := map[string]float64{
		"gocurator_acquires_total" + ls:             1,
		"gocurator_acquire_wait_seconds_count" + ls: 1,
	}
	if wait != 0 {
		m["gocurator_acquire_wait_seconds_sum"+ls] = wait
	}
	return m
}

// holdSeries is what one hold of recipe that ended with end after held seconds moves: the hold
// histogram's count by one and its sum by held.
func holdSeries(recipe, end string, held float64) map[string]float64 {
	ls := fmt.Sprintf(`{end=%q,recipe=%q}`, end, recipe)
	return map[string]float64{
		"gocurator_hold_duration_seconds_count" + ls: 1,
		"gocurator_hold_duration_seconds_sum" + ls:   held,
	}
}

// observeCase is one row of TestObserveMovesExactlyWhatHappened: the events given to a new
// Observer made with opts, and every series it must have at a non-zero value after them.
type observeCase struct {
	name   string
	opts   []Option
	events []framework.Event
	want   map[string]float64
}

// failedCases are the rows of an acquire that returned without a grant: one for each outcome
// other than granted.
func failedCases() []observeCase {
	rows := []struct {
		outcome, recipe string
		wait            time.Duration
		err             error
	}{
		{"timeout", "mutex", 100 * time.Millisecond, fmt.Errorf("acquire /l: %w", context.DeadlineExceeded)},
		{"canceled", "read-lock", 3 * time.Second, fmt.Errorf("acquire /l: %w", context.Canceled)},
		{"locked", "semaphore-mutex", 2 * time.Millisecond, fmt.Errorf("try acquire /l: %w", recipes.ErrLocked)},
		{"error", "write-lock", time.Second, fmt.Errorf("acquire: %w", framework.ErrClosed)},
	}
	cases := make([]observeCase, 0, len(rows))
	for _, r := range rows {
		cases = append(cases, observeCase{
			name:   r.outcome,
			events: failed(r.recipe, r.wait, r.err),
			want:   merged(map[string]float64{latent: 1}, acquireSeries(r.recipe, r.outcome, r.wait.Seconds())),
		})
	}
	return cases
}

// lostCases are the rows of a mutex's hold, granted at once, that ended lost: one for each reason.
func lostCases() []observeCase {
	rows := []struct {
		name, reason string
		held         time.Duration
		err          error
	}{
		{"lost at suspended", "suspended", 4 * time.Second, lostErr(framework.ErrSuspended)},
		{"lost with the session", "session_lost", time.Second, lostErr(framework.ErrSessionLost)},
		{"lost to a close", "closed", time.Second, lostErr(framework.ErrClosed)},
		{"lost for another reason", "other", time.Second, recipes.ErrLockLost},
	}
	cases := make([]observeCase, 0, len(rows))
	for _, r := range rows {
		cases = append(cases, observeCase{
			name:   r.name,
			events: append(granted("mutex", "/l", 0), holdEnded("mutex", r.held, r.err)),
			want: merged(
				map[string]float64{latent: 1, fmt.Sprintf(`gocurator_holds_lost_total{reason=%q,recipe="mutex"}`, r.reason): 1},
				acquireSeries("mutex", "granted", 0),
				holdSeries("mutex", "lost", r.held.Seconds()),
			),
		})
	}
	return cases
}

// requestsCase is the row of requests of every op and outcome: each request's op (unknown for
// an empty one) and outcome count once, and its duration goes into its op's histogram.
func requestsCase() observeCase {
	rows := []struct {
		op          string
		d           time.Duration
		err         error
		wantOp, out string
	}{
		{"create", time.Millisecond, nil, "create", "ok"},
		{"create", 3 * time.Millisecond, fmt.Errorf("create: %w", zk.ErrNodeExists), "create", "node_exists"},
		{"delete", time.Millisecond, zk.ErrNoNode, "delete", "no_node"},
		{"setData", time.Millisecond, zk.ErrBadVersion, "setData", "bad_version"},
		{"getData", time.Millisecond, fmt.Errorf("%w: %w", zk.ErrConnectionClosed, errors.New("read: connection reset")), "getData", "connection_loss"},
		{"exists", time.Millisecond, zk.ErrNoServer, "exists", "connection_loss"},
		{"multi", time.Millisecond, zk.ErrSessionExpired, "multi", "session_expired"},
		{"sync", time.Millisecond, context.Canceled, "sync", "other"},
		{"getChildren", time.Millisecond, zk.ErrNoAuth, "getChildren", "other"},
		{"", time.Millisecond, nil, "unknown", "ok"},
	}
	c := observeCase{name: "requests by outcome", want: map[string]float64{latent: 1}}
	for _, r := range rows {
		c.events = append(c.events, request(r.op, r.d, r.err))
		c.want = merged(c.want, map[string]float64{
			fmt.Sprintf(`gocurator_requests_total{op=%q,outcome=%q}`, r.wantOp, r.out): 1,
			fmt.Sprintf(`gocurator_request_duration_seconds_count{op=%q}`, r.wantOp):   1,
			fmt.Sprintf(`gocurator_request_duration_seconds_sum{op=%q}`, r.wantOp):     r.d.Seconds(),
		})
	}
	return c
}

func TestObserveMovesExactlyWhatHappened(t *testing.T) {
	released := fmt.Errorf("release: %w", recipes.ErrReleased)
	tests := []observeCase{
		{
			name:   "nothing",
			events: nil,
			want:   map[string]float64{latent: 1},
		},
		{
			name:   "an event of no kind, or an unknown kind, is ignored",
			events: []framework.Event{{}, {Kind: 200, Recipe: "mutex", Duration: time.Second}},
			want:   map[string]float64{latent: 1},
		},
		{
			name:   "a grant: a hold, no waiter",
			events: granted("mutex", "/l", 250*time.Millisecond),
			want: merged(
				map[string]float64{latent: 1, `gocurator_holds{recipe="mutex"}`: 1},
				acquireSeries("mutex", "granted", 0.25),
			),
		},
		{
			name:   "a waiter still waiting",
			events: granted("semaphore", "/l", 0)[:1],
			want:   map[string]float64{latent: 1, `gocurator_waiters{recipe="semaphore"}`: 1},
		},
		{
			name:   "a grant then a release",
			events: append(granted("write-lock", "/l", time.Second), holdEnded("write-lock", 2*time.Second, released)),
			want: merged(
				map[string]float64{latent: 1},
				acquireSeries("write-lock", "granted", 1),
				holdSeries("write-lock", "released", 2),
			),
		},
		{
			name:   "a hold ended with no error counts as released",
			events: append(granted("mutex", "/l", 0), holdEnded("mutex", time.Second, nil)),
			want: merged(
				map[string]float64{latent: 1},
				acquireSeries("mutex", "granted", 0),
				holdSeries("mutex", "released", 1),
			),
		},
		{
			name: "leadership gained",
			events: []framework.Event{
				{Kind: framework.EventLeadershipGained, Recipe: "leader-latch", Path: "/e", Node: "/e/n", SessionID: 7},
			},
			want: map[string]float64{
				latent: 1,
				`gocurator_leader{recipe="leader-latch"}`:                                   1,
				`gocurator_leadership_changes_total{change="gained",recipe="leader-latch"}`: 1,
			},
		},
		{
			name: "leadership gained then lost",
			events: []framework.Event{
				{Kind: framework.EventLeadershipGained, Recipe: "leader-selector", Path: "/e"},
				{Kind: framework.EventLeadershipLost, Recipe: "leader-selector", Path: "/e", Duration: time.Second, Err: framework.ErrClosed},
			},
			want: map[string]float64{
				latent: 1,
				`gocurator_leadership_changes_total{change="gained",recipe="leader-selector"}`: 1,
				`gocurator_leadership_changes_total{change="lost",recipe="leader-selector"}`:   1,
			},
		},
		requestsCase(),
		{
			name: "state changes: the last one is 1",
			events: []framework.Event{
				{Kind: framework.EventStateChange, State: framework.Connected},
				{Kind: framework.EventStateChange, State: framework.Suspended},
				{Kind: framework.EventStateChange, State: framework.Lost},
				{Kind: framework.EventStateChange, State: framework.Reconnected},
				{Kind: framework.EventStateChange, State: 99},
				{Kind: framework.EventStateChange, State: -1},
			},
			want: map[string]float64{`gocurator_client_state{state="reconnected"}`: 1},
		},
		{
			name:   "read-only",
			events: []framework.Event{{Kind: framework.EventStateChange, State: framework.ReadOnly}},
			want:   map[string]float64{`gocurator_client_state{state="read_only"}`: 1},
		},
		{
			name: "sessions",
			events: []framework.Event{
				{Kind: framework.EventSessionOpened, SessionID: 1},
				{Kind: framework.EventSessionLost, SessionID: 1, Err: zk.ErrSessionExpired},
				{Kind: framework.EventSessionOpened, SessionID: 2},
			},
			want: map[string]float64{
				latent: 1,
				`gocurator_sessions_total{event="opened"}`: 2,
				`gocurator_sessions_total{event="lost"}`:   1,
			},
		},
		{
			name: "background deletes",
			events: []framework.Event{
				{Kind: framework.EventDeleteQueued, Path: "/l/a"},
				{Kind: framework.EventDeleteQueued, Path: "/l/b"},
				{Kind: framework.EventDeleteQueued, Path: "/l/c"},
				{Kind: framework.EventDeleteDone, Path: "/l/a"},
				{Kind: framework.EventDeleteDone, Path: "/l/b", Err: zk.ErrNoAuth},
			},
			want: map[string]float64{
				latent: 1,
				`gocurator_background_deletes_total{event="queued"}`: 3,
				`gocurator_background_deletes_total{event="done"}`:   1,
				`gocurator_background_deletes_total{event="failed"}`: 1,
				`gocurator_background_deletes_pending{}`:             1,
			},
		},
		{
			name:   "with the path label",
			opts:   []Option{WithPathLabel()},
			events: append(append(granted("mutex", "/a", time.Second), granted("mutex", "/b", 2*time.Second)...), holdEnded("mutex", time.Second, released)),
			want: map[string]float64{
				latent: 1,
				`gocurator_holds{path="/a",recipe="mutex"}`:                                        1,
				`gocurator_acquires_total{outcome="granted",path="/a",recipe="mutex"}`:             1,
				`gocurator_acquire_wait_seconds_count{outcome="granted",path="/a",recipe="mutex"}`: 1,
				`gocurator_acquire_wait_seconds_sum{outcome="granted",path="/a",recipe="mutex"}`:   1,
				`gocurator_acquires_total{outcome="granted",path="/b",recipe="mutex"}`:             1,
				`gocurator_acquire_wait_seconds_count{outcome="granted",path="/b",recipe="mutex"}`: 1,
				`gocurator_acquire_wait_seconds_sum{outcome="granted",path="/b",recipe="mutex"}`:   2,
				// holdEnded is for "/l": the gauge of a path that never had a grant goes below zero.
				`gocurator_holds{path="/l",recipe="mutex"}`:                                      -1,
				`gocurator_hold_duration_seconds_count{end="released",path="/l",recipe="mutex"}`: 1,
				`gocurator_hold_duration_seconds_sum{end="released",path="/l",recipe="mutex"}`:   1,
				`gocurator_holds{path="/b",recipe="mutex"}`:                                      1,
			},
		},
		{
			name:   "namespace and const labels",
			opts:   []Option{WithNamespace("app"), WithConstLabels(map[string]string{"client": "a"})},
			events: []framework.Event{{Kind: framework.EventSessionOpened}},
			want: map[string]float64{
				`app_client_state{client="a",state="latent"}`:   1,
				`app_sessions_total{client="a",event="opened"}`: 1,
			},
		},
		{
			name:   "no namespace",
			opts:   []Option{WithNamespace("")},
			events: []framework.Event{{Kind: framework.EventSessionOpened}},
			want:   map[string]float64{`client_state{state="latent"}`: 1, `sessions_total{event="opened"}`: 1},
		},
		{
			name: "an empty recipe is unknown; a negative duration is zero",
			events: []framework.Event{
				{Kind: framework.EventAcquireStarted},
				{Kind: framework.EventAcquireGranted, Duration: -time.Second},
				{Kind: framework.EventHoldStarted},
			},
			want: merged(
				map[string]float64{latent: 1, `gocurator_holds{recipe="unknown"}`: 1},
				acquireSeries("unknown", "granted", 0),
			),
		},
		{
			name:   "nil options are skipped",
			opts:   []Option{nil, WithNamespace("x"), nil},
			events: []framework.Event{{Kind: framework.EventSessionLost}},
			want:   map[string]float64{`x_client_state{state="latent"}`: 1, `x_sessions_total{event="lost"}`: 1},
		},
	}
	tests = append(append(tests, failedCases()...), lostCases()...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := New(tt.opts...)
			if err := o.Err(); err != nil {
				t.Fatal(err)
			}
			for _, e := range tt.events {
				o.Observe(e)
			}
			got := series(t, o)
			if !maps.EqualFunc(got, tt.want, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }) {
				t.Errorf("series:\n%s\nwant:\n%s", dump(got), dump(tt.want))
			}
		})
	}
}

func dump(m map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "\t%s %g\n", k, m[k])
	}
	return b.String()
}

// A recipe's and an op's series appear with its first event, every outcome at zero; nothing of a
// recipe exists before.
func TestSeriesAppearWithEveryOutcome(t *testing.T) {
	tests := []struct {
		name   string
		events []framework.Event
		metric string
		want   int
	}{
		{"no recipe yet", nil, "gocurator_acquires_total", 0},
		{"acquires of one recipe", granted("mutex", "/l", 0)[:1], "gocurator_acquires_total", numAcquireOutcomes},
		{"acquires of two recipes", append(granted("mutex", "/l", 0)[:1], granted("semaphore", "/l", 0)[:1]...), "gocurator_acquires_total", 2 * numAcquireOutcomes},
		{"wait histograms", granted("mutex", "/l", 0)[:1], "gocurator_acquire_wait_seconds", numAcquireOutcomes},
		{"hold histograms", granted("mutex", "/l", 0)[:1], "gocurator_hold_duration_seconds", 2},
		{"lost reasons", granted("mutex", "/l", 0)[:1], "gocurator_holds_lost_total", numLostReasons},
		{"no leadership series for a lock", granted("mutex", "/l", 0)[:1], "gocurator_leadership_changes_total", 0},
		{"leadership", []framework.Event{{Kind: framework.EventLeadershipGained, Recipe: "leader-latch"}}, "gocurator_leadership_changes_total", 2},
		{"request outcomes", []framework.Event{request("create", 0, nil)}, "gocurator_requests_total", numRequestOutcomes},
		{"client states", nil, "gocurator_client_state", numStates},
		{"sessions", nil, "gocurator_sessions_total", 2},
		{"deletes", nil, "gocurator_background_deletes_total", 3},
		{"deletes pending", nil, "gocurator_background_deletes_pending", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := New()
			for _, e := range tt.events {
				o.Observe(e)
			}
			if got := testutil.CollectAndCount(o, tt.metric); got != tt.want {
				t.Errorf("%s has %d series, want %d", tt.metric, got, tt.want)
			}
		})
	}
}

// The exposition itself: names, help, types, label order and where the buckets fall.
func TestExposition(t *testing.T) {
	o := New(WithBuckets(0.5, 1, 2))
	o.Observe(framework.Event{Kind: framework.EventAcquireStarted, Recipe: "mutex"})
	o.Observe(framework.Event{Kind: framework.EventAcquireFailed, Recipe: "mutex", Duration: 1500 * time.Millisecond, Err: context.DeadlineExceeded})
	o.Observe(framework.Event{Kind: framework.EventStateChange, State: framework.Connected})
	// Every outcome's series exists, at zero but for the timeout.
	var full strings.Builder
	full.WriteString(`
# HELP gocurator_acquire_wait_seconds How long a recipe's acquire waited before it returned, by outcome: granted, timeout, canceled, locked or error.
# TYPE gocurator_acquire_wait_seconds histogram
`)
	for _, out := range acquireOutcomes {
		n := map[bool]string{true: "1", false: "0"}[out == "timeout"]
		sum := map[bool]string{true: "1.5", false: "0"}[out == "timeout"]
		for _, le := range []string{"0.5", "1", "2", "+Inf"} {
			v := "0"
			if out == "timeout" && (le == "2" || le == "+Inf") {
				v = "1"
			}
			fmt.Fprintf(&full, "gocurator_acquire_wait_seconds_bucket{outcome=%q,recipe=\"mutex\",le=%q} %s\n", out, le, v)
		}
		fmt.Fprintf(&full, "gocurator_acquire_wait_seconds_sum{outcome=%q,recipe=\"mutex\"} %s\n", out, sum)
		fmt.Fprintf(&full, "gocurator_acquire_wait_seconds_count{outcome=%q,recipe=\"mutex\"} %s\n", out, n)
	}
	full.WriteString(`
# HELP gocurator_client_state The client's connection state: 1 for the current state, 0 for the others.
# TYPE gocurator_client_state gauge
gocurator_client_state{state="connected"} 1
gocurator_client_state{state="latent"} 0
gocurator_client_state{state="lost"} 0
gocurator_client_state{state="read_only"} 0
gocurator_client_state{state="reconnected"} 0
gocurator_client_state{state="suspended"} 0
`)
	if err := testutil.CollectAndCompare(o, strings.NewReader(full.String()), "gocurator_acquire_wait_seconds", "gocurator_client_state"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(o.waiters.WithLabelValues("mutex")); got != 0 {
		t.Errorf("waiters = %v, want 0", got)
	}
}

// The metrics follow Prometheus's naming conventions (promlint: base units, _total counters).
func TestLint(t *testing.T) {
	o := New()
	o.Observe(granted("mutex", "/l", 0)[0])
	o.Observe(framework.Event{Kind: framework.EventLeadershipGained, Recipe: "leader-latch"})
	o.Observe(request("create", 0, nil))
	problems, err := testutil.CollectAndLint(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestBadOptions(t *testing.T) {
	tests := []struct {
		name    string
		opt     Option
		mention string
	}{
		{"no buckets", WithBuckets(), "no buckets"},
		{"unsorted buckets", WithBuckets(1, 0.5), "0.5"},
		{"equal buckets", WithBuckets(1, 1), "1"},
		{"NaN bucket", WithBuckets(math.NaN()), "NaN"},
		{"infinite bucket", WithRequestBuckets(1, math.Inf(1)), "+Inf"},
		{"bad namespace", WithNamespace("my-app"), `"my-app"`},
		{"bad const label name", WithConstLabels(map[string]string{"a-b": "x"}), `"a-b"`},
		{"reserved const label name", WithConstLabels(map[string]string{"__name": "x"}), `"__name"`},
		{"const label clashing with the observer's", WithConstLabels(map[string]string{"recipe": "x"}), `"recipe"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := New(tt.opt)
			err := o.Err()
			if !errors.Is(err, ErrInvalidOption) || !errors.Is(err, framework.ErrInvalidArgument) {
				t.Fatalf("Err() = %v, want one wrapping ErrInvalidOption", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("Err() = %q does not name %s", err, tt.mention)
			}
			reg := prometheus.NewRegistry()
			if err := reg.Register(o); !errors.Is(err, ErrInvalidOption) {
				t.Errorf("Register = %v, want an error wrapping ErrInvalidOption", err)
			}
			o.Observe(granted("mutex", "/l", 0)[1]) // ignored, no panic
			ch := make(chan prometheus.Metric, 1)
			o.Collect(ch)
			if len(ch) != 0 {
				t.Errorf("collected a series from an observer with a bad option")
			}
		})
	}
}

func TestNilObserver(t *testing.T) {
	var o *Observer
	o.Observe(framework.Event{Kind: framework.EventSessionOpened})
	if err := o.Err(); err == nil {
		t.Error("Err of a nil *Observer is nil")
	}
	if err := prometheus.NewRegistry().Register(o); err == nil {
		t.Error("registering a nil *Observer succeeded")
	}
}

// Events from many goroutines at once, the first of each recipe and op among them, all count.
func TestObserveConcurrently(t *testing.T) {
	o := New()
	const goroutines, each = 8, 200
	recipeNames := []string{"mutex", "semaphore", "read-lock", "write-lock"}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := recipeNames[g%len(recipeNames)]
			for range each {
				for _, e := range granted(r, "/l", time.Millisecond) {
					o.Observe(e)
				}
				o.Observe(holdEnded(r, time.Millisecond, nil))
				o.Observe(request("create", time.Millisecond, nil))
				o.Observe(framework.Event{Kind: framework.EventDeleteQueued})
				o.Observe(framework.Event{Kind: framework.EventDeleteDone})
				o.Observe(framework.Event{Kind: framework.EventStateChange, State: framework.State(1 + g%4)})
			}
		})
	}
	wg.Wait()
	var acquired, holds float64
	for _, r := range recipeNames {
		acquired += testutil.ToFloat64(o.acquires.WithLabelValues(r, "granted"))
		holds += testutil.ToFloat64(o.holds.WithLabelValues(r))
	}
	if acquired != goroutines*each || holds != 0 {
		t.Errorf("acquires %v, holds %v; want %d, 0", acquired, holds, goroutines*each)
	}
	if got := testutil.ToFloat64(o.requests.WithLabelValues("create", "ok")); got != goroutines*each {
		t.Errorf("requests %v, want %d", got, goroutines*each)
	}
	if got := testutil.ToFloat64(o.deletesPending); got != 0 {
		t.Errorf("deletes pending %v, want 0", got)
	}
	var ones float64
	for name, v := range series(t, o) {
		if strings.HasPrefix(name, "gocurator_client_state{") {
			ones += v
		}
	}
	if ones != 1 {
		t.Errorf("%v states at 1, want exactly 1", ones)
	}
}

// BenchmarkObserve measures Observe on the common path, once a recipe's and an op's series
// exist: it should allocate nothing.
func BenchmarkObserve(b *testing.B) {
	lost := lostErr(framework.ErrSuspended)
	events := []struct {
		name string
		e    framework.Event
	}{
		{"request", request("getData", time.Millisecond, nil)},
		{"request-no-node", request("exists", time.Millisecond, zk.ErrNoNode)},
		{"acquire-started", framework.Event{Kind: framework.EventAcquireStarted, Recipe: "mutex", Path: "/l"}},
		{"acquire-granted", framework.Event{Kind: framework.EventAcquireGranted, Recipe: "mutex", Path: "/l", Duration: time.Millisecond}},
		{"acquire-timeout", framework.Event{Kind: framework.EventAcquireFailed, Recipe: "mutex", Path: "/l", Err: context.DeadlineExceeded}},
		{"hold-released", holdEnded("mutex", time.Second, recipes.ErrReleased)},
		{"hold-lost", holdEnded("mutex", time.Second, lost)},
		{"leadership", framework.Event{Kind: framework.EventLeadershipGained, Recipe: "leader-latch"}},
		{"state", framework.Event{Kind: framework.EventStateChange, State: framework.Connected}},
	}
	for _, mode := range []struct {
		name string
		opts []Option
	}{{"default", nil}, {"path-label", []Option{WithPathLabel()}}} {
		for _, ev := range events {
			b.Run(mode.name+"/"+ev.name, func(b *testing.B) {
				o := New(mode.opts...)
				o.Observe(ev.e)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						o.Observe(ev.e)
					}
				})
			})
		}
	}
}
