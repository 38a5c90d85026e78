// Package curatorprom exports the events of a gocurator client and its recipes as Prometheus
// metrics. It lives in the directory prometheus/, a module of its own
// (github.com/gocurator/curator/prometheus), so that the core module does not depend on
// Prometheus; its package name is curatorprom, not prometheus, so that it does not clash with
// client_golang's package in the code that uses both.
//
// An Observer is both a framework.Observer and a prometheus.Collector:
//
//	obs := curatorprom.New()
//	reg.MustRegister(obs)
//	client, err := framework.NewClient(servers, framework.WithObserver(obs))
//
// The metrics, with DefaultNamespace (every name starts gocurator_), durations in seconds:
//
//	acquire_wait_seconds          histogram {recipe, outcome}  how long acquires waited
//	acquires_total                counter   {recipe, outcome}  acquires that returned
//	hold_duration_seconds         histogram {recipe, end}      how long holds lasted
//	holds_lost_total              counter   {recipe, reason}   holds that ended lost
//	holds                         gauge     {recipe}           holds granted and not yet ended
//	waiters                       gauge     {recipe}           acquires started and not yet returned
//	leadership_changes_total      counter   {recipe, change}   leadership gained or lost
//	leader                        gauge     {recipe}           latches and selectors now leading
//	requests_total                counter   {op, outcome}      requests to ZooKeeper
//	request_duration_seconds      histogram {op}               from sending to the answer
//	client_state                  gauge     {state}            1 for the current state, 0 for the others
//	sessions_total                counter   {event}            sessions opened and lost
//	background_deletes_total      counter   {event}            nodes left to the background deleter
//	background_deletes_pending    gauge                        nodes it has not yet deleted
//
// The label values: outcome of an acquire is granted, timeout (its context's deadline),
// canceled (its context was canceled), locked (recipes.ErrLocked, a TryAcquire that found the
// lock held) or error; end is released or lost; reason of a lost hold is suspended
// (framework.ErrSuspended), session_lost (framework.ErrSessionLost), closed (framework.ErrClosed)
// or other; change is gained or lost; outcome of a request is ok, no_node, node_exists,
// bad_version, connection_loss, session_expired or other; state is latent, connected, suspended,
// reconnected, lost or read_only; event of sessions_total is opened or lost, and of
// background_deletes_total queued, done or failed.
//
// The series of a recipe (or an op) appear with its first event, every outcome at zero, so that
// rates over them are defined from then on. WithPathLabel adds the lock path to the recipe
// metrics; it is off by default because paths are unbounded.
//
// The gauges count what one Observer saw: client_state is meaningful for one client per
// Observer. To watch several clients in one registry, give each an Observer of its own with
// WithConstLabels naming it.
package curatorprom

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// Observer turns framework.Events into Prometheus metrics. It implements framework.Observer
// (give it to framework.WithObserver) and prometheus.Collector (register it). Observe does no
// I/O and waits for nothing but a short lock on a state change or on the first event of a recipe
// or an op (or, with WithPathLabel, a read lock on every recipe event); once a recipe's or an
// op's series exist it allocates nothing. Its methods are safe for concurrent use, and a nil
// *Observer ignores every call.
type Observer struct {
	err       error
	pathLabel bool

	acquireWait     *prometheus.HistogramVec
	acquires        *prometheus.CounterVec
	holdDuration    *prometheus.HistogramVec
	holdsLost       *prometheus.CounterVec
	holds           *prometheus.GaugeVec
	waiters         *prometheus.GaugeVec
	leadership      *prometheus.CounterVec
	leader          *prometheus.GaugeVec
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	clientState     *stateCollector
	sessions        *prometheus.CounterVec
	deletes         *prometheus.CounterVec
	deletesPending  prometheus.Gauge
	collectors      []prometheus.Collector

	stateMu sync.Mutex
	state   int // the current state's index in stateNames, under stateMu

	sessionOpened, sessionLost             prometheus.Counter
	deleteQueued, deleteDone, deleteFailed prometheus.Counter

	locks   seriesCache[seriesKey, *lockSeries]
	leaders seriesCache[seriesKey, *leaderSeries]
	ops     seriesCache[string, *opSeries]
}

// The outcomes of an acquire, in label order.
const (
	acquireGranted = iota
	acquireTimeout
	acquireCanceled
	acquireLocked
	acquireError
	numAcquireOutcomes
)

var acquireOutcomes = [numAcquireOutcomes]string{"granted", "timeout", "canceled", "locked", "error"}

// The reasons a hold was lost.
const (
	lostSuspended = iota
	lostSessionLost
	lostClosed
	lostOther
	numLostReasons
)

var lostReasons = [numLostReasons]string{"suspended", "session_lost", "closed", "other"}

// The outcomes of a request.
const (
	requestOK = iota
	requestNoNode
	requestNodeExists
	requestBadVersion
	requestConnectionLoss
	requestSessionExpired
	requestOther
	numRequestOutcomes
)

var requestOutcomes = [numRequestOutcomes]string{"ok", "no_node", "node_exists", "bad_version", "connection_loss", "session_expired", "other"}

// The client states, indexed by framework.State (0 is LATENT, before the first connection).
const numStates = int(framework.ReadOnly) + 1

var stateNames = [numStates]string{
	0:                     "latent",
	framework.Connected:   "connected",
	framework.Suspended:   "suspended",
	framework.Reconnected: "reconnected",
	framework.Lost:        "lost",
	framework.ReadOnly:    "read_only",
}

// unknownLabel stands for an empty recipe or op name in an event.
const unknownLabel = "unknown"

type seriesKey struct{ recipe, path string }

// lockSeries are one recipe's (and path's) acquire and hold series, curried.
type lockSeries struct {
	wait     [numAcquireOutcomes]prometheus.Observer
	acquires [numAcquireOutcomes]prometheus.Counter
	released prometheus.Observer
	lostHold prometheus.Observer
	lost     [numLostReasons]prometheus.Counter
	holds    prometheus.Gauge
	waiters  prometheus.Gauge
}

// leaderSeries are one recipe's (and path's) leadership series.
type leaderSeries struct {
	gained, lost prometheus.Counter
	leader       prometheus.Gauge
}

// opSeries are one op's request series.
type opSeries struct {
	outcomes [numRequestOutcomes]prometheus.Counter
	duration prometheus.Observer
}

// New returns an Observer configured by opts (nil options are skipped). An option given a bad
// value does not panic: the Observer then ignores every event, Err returns the error (wrapping
// ErrInvalidOption and naming the value), and registering the Observer fails with it.
func New(opts ...Option) *Observer {
	cfg := config{namespace: DefaultNamespace, buckets: DefaultBuckets, requestBuckets: DefaultRequestBuckets}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	o := &Observer{err: cfg.err, pathLabel: cfg.pathLabel}
	if o.err != nil {
		return o
	}
	o.locks.shared = !cfg.pathLabel
	o.leaders.shared = !cfg.pathLabel
	o.ops.shared = true

	recipeLabels := []string{"recipe"}
	if cfg.pathLabel {
		recipeLabels = append(recipeLabels, "path")
	}
	with := func(extra ...string) []string { return append(append([]string(nil), recipeLabels...), extra...) }
	ns, cl := cfg.namespace, cfg.constLabels
	histogram := func(name, help string, buckets []float64, labels []string) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, ConstLabels: cl, Buckets: buckets}, labels)
	}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help, ConstLabels: cl}, labels)
	}
	gauge := func(name, help string, labels []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help, ConstLabels: cl}, labels)
	}
	o.acquireWait = histogram("acquire_wait_seconds",
		"How long a recipe's acquire waited before it returned, by outcome: granted, timeout, canceled, locked or error.",
		cfg.buckets, with("outcome"))
	o.acquires = counter("acquires_total",
		"Acquires of a recipe that returned, by outcome: granted, timeout, canceled, locked or error.", with("outcome"))
	o.holdDuration = histogram("hold_duration_seconds", "How long a hold lasted, by how it ended: released or lost.",
		cfg.buckets, with("end"))
	o.holdsLost = counter("holds_lost_total", "Holds that ended lost, by reason: suspended, session_lost, closed or other.",
		with("reason"))
	o.holds = gauge("holds", "Holds granted and not yet ended.", with())
	o.waiters = gauge("waiters", "Acquires started and not yet granted or failed.", with())
	o.leadership = counter("leadership_changes_total", "Leadership of a leader latch or selector gained or lost.",
		with("change"))
	o.leader = gauge("leader", "Leader latches and selectors now leading.", with())
	o.requests = counter("requests_total",
		"Requests to ZooKeeper, by op and outcome: ok, no_node, node_exists, bad_version, connection_loss, session_expired or other.",
		[]string{"op", "outcome"})
	o.requestDuration = histogram("request_duration_seconds", "How long a request to ZooKeeper took, from sending to the answer.",
		cfg.requestBuckets, []string{"op"})
	o.clientState = &stateCollector{o: o, desc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "client_state"),
		"The client's connection state: 1 for the current state, 0 for the others.", []string{"state"}, cl)}
	o.sessions = counter("sessions_total", "Sessions opened and lost.", []string{"event"})
	o.deletes = counter("background_deletes_total",
		"Nodes left to the background deleter (queued), and deleted by it (done) or refused (failed).", []string{"event"})
	o.deletesPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "background_deletes_pending", ConstLabels: cl,
		Help: "Nodes queued for the background deleter and not yet done.",
	})
	o.collectors = []prometheus.Collector{
		o.acquireWait, o.acquires, o.holdDuration, o.holdsLost, o.holds, o.waiters, o.leadership,
		o.leader, o.requests, o.requestDuration, o.clientState, o.sessions, o.deletes, o.deletesPending,
	}

	o.sessionOpened = o.sessions.WithLabelValues("opened")
	o.sessionLost = o.sessions.WithLabelValues("lost")
	o.deleteQueued = o.deletes.WithLabelValues("queued")
	o.deleteDone = o.deletes.WithLabelValues("done")
	o.deleteFailed = o.deletes.WithLabelValues("failed")
	return o
}

// Err returns the error of a bad option given to New (wrapping ErrInvalidOption), or nil.
func (o *Observer) Err() error {
	if o == nil {
		return errors.New("curatorprom: nil *Observer")
	}
	return o.err
}

// Describe sends the descriptions of all the Observer's metrics (prometheus.Collector). For an
// Observer made with a bad option, it sends one invalid description carrying Err, so that
// registering it fails.
func (o *Observer) Describe(ch chan<- *prometheus.Desc) {
	if err := o.Err(); err != nil {
		ch <- prometheus.NewInvalidDesc(err)
		return
	}
	for _, c := range o.collectors {
		c.Describe(ch)
	}
}

// Collect sends the current value of every series (prometheus.Collector).
func (o *Observer) Collect(ch chan<- prometheus.Metric) {
	if o == nil || o.err != nil {
		return
	}
	for _, c := range o.collectors {
		c.Collect(ch)
	}
}

// Observe records e (framework.Observer). Events of an unknown kind, and every event when the
// Observer is nil or was made with a bad option, are ignored. An empty Recipe or Op is counted as
// "unknown"; a negative Duration as zero.
func (o *Observer) Observe(e framework.Event) {
	if o == nil || o.err != nil {
		return
	}
	switch e.Kind {
	case framework.EventRequest:
		s := o.opSeries(e.Op)
		s.outcomes[requestOutcome(e.Err)].Inc()
		s.duration.Observe(seconds(e.Duration))
	case framework.EventStateChange:
		o.setState(e.State)
	case framework.EventSessionOpened:
		o.sessionOpened.Inc()
	case framework.EventSessionLost:
		o.sessionLost.Inc()
	case framework.EventDeleteQueued:
		o.deleteQueued.Inc()
		o.deletesPending.Inc()
	case framework.EventDeleteDone:
		if e.Err == nil {
			o.deleteDone.Inc()
		} else {
			o.deleteFailed.Inc()
		}
		o.deletesPending.Dec()
	case framework.EventAcquireStarted:
		o.lockSeries(e.Recipe, e.Path).waiters.Inc()
	case framework.EventAcquireGranted:
		s := o.lockSeries(e.Recipe, e.Path)
		s.waiters.Dec()
		s.acquires[acquireGranted].Inc()
		s.wait[acquireGranted].Observe(seconds(e.Duration))
	case framework.EventAcquireFailed:
		s := o.lockSeries(e.Recipe, e.Path)
		s.waiters.Dec()
		out := acquireOutcome(e.Err)
		s.acquires[out].Inc()
		s.wait[out].Observe(seconds(e.Duration))
	case framework.EventHoldStarted:
		o.lockSeries(e.Recipe, e.Path).holds.Inc()
	case framework.EventHoldEnded:
		s := o.lockSeries(e.Recipe, e.Path)
		s.holds.Dec()
		if e.Err == nil || errors.Is(e.Err, recipes.ErrReleased) {
			s.released.Observe(seconds(e.Duration))
		} else {
			s.lostHold.Observe(seconds(e.Duration))
			s.lost[lostReason(e.Err)].Inc()
		}
	case framework.EventLeadershipGained:
		s := o.leaderSeries(e.Recipe, e.Path)
		s.gained.Inc()
		s.leader.Inc()
	case framework.EventLeadershipLost:
		s := o.leaderSeries(e.Recipe, e.Path)
		s.lost.Inc()
		s.leader.Dec()
	}
}

// setState records s as the current state. A state the Observer does not know is ignored.
func (o *Observer) setState(s framework.State) {
	if s < 0 || int(s) >= numStates {
		return
	}
	o.stateMu.Lock()
	o.state = int(s)
	o.stateMu.Unlock()
}

// stateCollector collects gocurator_client_state from the Observer's current state, read once
// per scrape, so that a scrape sees exactly one state at 1 however the state changes meanwhile.
type stateCollector struct {
	o    *Observer
	desc *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.o.stateMu.Lock()
	cur := c.o.state
	c.o.stateMu.Unlock()
	for i, name := range stateNames {
		v := 0.0
		if i == cur {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, name)
	}
}

func (o *Observer) key(recipe, path string) seriesKey {
	if recipe == "" {
		recipe = unknownLabel
	}
	if !o.pathLabel {
		return seriesKey{recipe: recipe}
	}
	return seriesKey{recipe: recipe, path: path}
}

// labels returns the label values of k, followed by extra.
func (o *Observer) labels(k seriesKey, extra ...string) []string {
	if o.pathLabel {
		return append([]string{k.recipe, k.path}, extra...)
	}
	return append([]string{k.recipe}, extra...)
}

func (o *Observer) lockSeries(recipe, path string) *lockSeries {
	return o.locks.get(o.key(recipe, path), func(k seriesKey) *lockSeries {
		s := &lockSeries{
			released: o.holdDuration.WithLabelValues(o.labels(k, "released")...),
			lostHold: o.holdDuration.WithLabelValues(o.labels(k, "lost")...),
			holds:    o.holds.WithLabelValues(o.labels(k)...),
			waiters:  o.waiters.WithLabelValues(o.labels(k)...),
		}
		for i, out := range acquireOutcomes {
			s.wait[i] = o.acquireWait.WithLabelValues(o.labels(k, out)...)
			s.acquires[i] = o.acquires.WithLabelValues(o.labels(k, out)...)
		}
		for i, r := range lostReasons {
			s.lost[i] = o.holdsLost.WithLabelValues(o.labels(k, r)...)
		}
		return s
	})
}

func (o *Observer) leaderSeries(recipe, path string) *leaderSeries {
	return o.leaders.get(o.key(recipe, path), func(k seriesKey) *leaderSeries {
		return &leaderSeries{
			gained: o.leadership.WithLabelValues(o.labels(k, "gained")...),
			lost:   o.leadership.WithLabelValues(o.labels(k, "lost")...),
			leader: o.leader.WithLabelValues(o.labels(k)...),
		}
	})
}

func (o *Observer) opSeries(op string) *opSeries {
	if op == "" {
		op = unknownLabel
	}
	return o.ops.get(op, func(op string) *opSeries {
		s := &opSeries{duration: o.requestDuration.WithLabelValues(op)}
		for i, out := range requestOutcomes {
			s.outcomes[i] = o.requests.WithLabelValues(op, out)
		}
		return s
	})
}

// acquireOutcome is the label index of the outcome of a failed acquire (recipes.AcquireOutcome).
func acquireOutcome(err error) int {
	return labelIndex(acquireOutcomes[:], recipes.AcquireOutcome(err), acquireError)
}

// lostReason is the label index of why a hold was lost (recipes.LostReason).
func lostReason(err error) int { return labelIndex(lostReasons[:], recipes.LostReason(err), lostOther) }

// requestOutcome is the label index of the outcome of a request (framework.RequestOutcome).
func requestOutcome(err error) int {
	return labelIndex(requestOutcomes[:], framework.RequestOutcome(err), requestOther)
}

// labelIndex is the index of value among values, or fallback if it is not one of them.
func labelIndex(values []string, value string, fallback int) int {
	if i := slices.Index(values, value); i >= 0 {
		return i
	}
	return fallback
}

func seconds(d time.Duration) float64 {
	if d < 0 {
		return 0
	}
	return d.Seconds()
}

// seriesCache maps label values to their curried series, building each on its first use. With
// shared set (few keys, fixed by the library: recipes and ops), reads take no lock: the map is
// replaced whole, under mu, when a key is added. Otherwise (a key per lock path, unbounded) it is
// one map under a read-write lock, so that adding a key costs no copy.
type seriesCache[K comparable, V any] struct {
	shared bool
	mu     sync.RWMutex
	cow    atomicMap[K, V]
	m      map[K]V
}

func (c *seriesCache[K, V]) get(k K, build func(K) V) V {
	if c.shared {
		if v, ok := c.cow.load()[k]; ok {
			return v
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		old := c.cow.load()
		if v, ok := old[k]; ok {
			return v
		}
		m := make(map[K]V, len(old)+1)
		for k, v := range old {
			m[k] = v
		}
		v := build(k)
		m[k] = v
		c.cow.store(m)
		return v
	}
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		return v
	}
	if c.m == nil {
		c.m = make(map[K]V)
	}
	v = build(k)
	c.m[k] = v
	return v
}

// atomicMap holds a map that is never modified once stored, read without a lock.
type atomicMap[K comparable, V any] struct{ p atomic.Pointer[map[K]V] }

func (a *atomicMap[K, V]) load() map[K]V {
	if m := a.p.Load(); m != nil {
		return *m
	}
	return nil
}

func (a *atomicMap[K, V]) store(m map[K]V) { a.p.Store(&m) }
