package faults

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/retry"
)

// This file is the soak's work: a worker takes every recipe in turn with one client, and in each
// hold checks in with the in-process ledger (the monitor), the fence and the porcupine counter.
// The same worker runs in this process and in child processes of the test binary, which report
// what they did on standard output, one JSON line per event.

// soakSink receives what a worker did.
type soakSink interface {
	begin(key, id string, call int64) // a counter operation begins
	op(rec opRecord)                  // and ends
	acquired(recipe string)
	failed(recipe string) // an Acquire (or a wait for leadership) returned an error
	lost(recipe string)   // a hold ended before its holder let it go
	violation(format string, args ...any)
}

// soakPaths are the znodes of the soak under its root.
type soakPaths struct{ root string }

func (p soakPaths) lock(name string) string   { return p.root + "/locks/" + name }
func (p soakPaths) fence(name string) fence   { return fence{p.root + "/fence/" + name} }
func (p soakPaths) counter(key string) string { return p.root + "/counter/" + key }
func (p soakPaths) lockRoot() string          { return p.root + "/locks" }
func (p soakPaths) containers() []string {
	return []string{"leases", "locks", "mutex", "smutex", "sem", "rw", "multi", "a", "b", "latch", "selector"}
}

// counterKeys are the keys of the porcupine counters: the exclusive locks and the leaders.
var counterKeys = []string{"mutex", "smutex", "write", "multi", "latch", "selector"}

// setup creates the fences and the counters.
func (p soakPaths) setup(ctx context.Context, c *framework.Client) error {
	for _, n := range []string{"mutex", "smutex", "sem", "rw", "multi"} {
		if err := p.fence(n).create(ctx, c); err != nil {
			return err
		}
	}
	for _, k := range counterKeys {
		_, err := c.Create(ctx, p.counter(k), counterValue{id: "-"}.bytes(), framework.Persistent, framework.WithParents())
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}

// liveHold is a hold a session has now, for the check that a session's holds end in time when
// it expires.
type liveHold struct {
	what   string
	leader bool // a term of a latch or a selector, not a lock's hold
	alive  func() bool
}

// holdSet is the live holds of one session.
type holdSet struct {
	mu sync.Mutex
	m  map[*liveHold]struct{}
}

func newHoldSet() *holdSet { return &holdSet{m: map[*liveHold]struct{}{}} }

func (hs *holdSet) add(what string, leader bool, alive func() bool) func() {
	h := &liveHold{what: what, leader: leader, alive: alive}
	hs.mu.Lock()
	hs.m[h] = struct{}{}
	hs.mu.Unlock()
	return func() {
		hs.mu.Lock()
		delete(hs.m, h)
		hs.mu.Unlock()
	}
}

func (hs *holdSet) snapshot() []*liveHold {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	out := make([]*liveHold, 0, len(hs.m))
	for h := range hs.m {
		out = append(out, h)
	}
	return out
}

// leaderLedger records the leaders of each election in this process and reports a leader that
// begins while another still leads.
type leaderLedger struct {
	mu   sync.Mutex
	live map[string]map[*liveHold]struct{}
}

func newLeaderLedger() *leaderLedger { return &leaderLedger{live: map[string]map[*liveHold]struct{}{}} }

func (l *leaderLedger) enter(path, who string, alive func() bool, sink soakSink) func() {
	h := &liveHold{what: who, alive: alive}
	l.mu.Lock()
	defer l.mu.Unlock()
	set := l.live[path]
	if set == nil {
		set = map[*liveHold]struct{}{}
		l.live[path] = set
	}
	if alive() {
		for o := range set {
			if o.alive() {
				sink.violation("%s: %s leads while %s leads (two connected leaders)", path, who, o.what)
			}
		}
	}
	set[h] = struct{}{}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(set, h)
	}
}

// soakWorker runs rounds of every recipe with one client.
type soakWorker struct {
	name    string
	c       *framework.Client
	p       soakPaths
	sink    soakSink
	mon     *monitor
	leaders *leaderLedger
	holds   *holdSet

	mu sync.Mutex
	n  int
}

func (w *soakWorker) id(what string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	return fmt.Sprintf("%s/%s#%d", w.name, what, w.n)
}

// run runs lockers lock goroutines and one leader goroutine until ctx ends or the client is
// closed, seeded from seed.
func (w *soakWorker) run(ctx context.Context, seed uint64, lockers int) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-w.c.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	var wg sync.WaitGroup
	for j := range lockers {
		r := rand.New(rand.NewPCG(seed, uint64(j)))
		wg.Go(func() {
			for ctx.Err() == nil {
				w.lockRound(ctx, r)
			}
		})
	}
	r := rand.New(rand.NewPCG(seed, 0x1ead))
	wg.Go(func() {
		for ctx.Err() == nil {
			if r.IntN(2) == 0 {
				w.latchRound(ctx, r)
			} else {
				w.selectorRound(ctx, r)
			}
		}
	})
	wg.Wait()
}

// soakLock is one lock of a round: its name for the counts, its lock path (for the monitor), the
// fence, the access, and the counter key of an exclusive lock.
type soakLock struct {
	recipe string
	path   string
	fence  fence
	acc    access
	limit  int
	key    string
}

// lockRound takes one of the lock recipes, at random, and lets it go.
func (w *soakWorker) lockRound(ctx context.Context, r *rand.Rand) {
	c, p := w.c, w.p
	switch r.IntN(7) {
	case 0: // InterProcessMutex, re-entered half the time
		m := recipes.NewInterProcessMutex(c, p.lock("mutex"))
		spec := soakLock{recipe: "mutex", path: p.lock("mutex"), fence: p.fence("mutex"), acc: exclusive, limit: 1, key: "mutex"}
		w.withLease(ctx, r, spec, m.Acquire, func(l *recipes.Lease) {
			if r.IntN(2) == 0 {
				return
			}
			inner, err := m.Acquire(l.Context())
			if err != nil {
				if l.Err() == nil && ctx.Err() == nil {
					w.sink.violation("%s: re-entering a live hold of the mutex: %v", w.name, err)
				}
				return
			}
			w.sink.acquired("mutex-reentry")
			if inner.Token() != l.Token() {
				w.sink.violation("%s: re-entered hold's token %d; want the outer hold's %d", w.name, inner.Token(), l.Token())
			}
			w.counterOp("mutex", w.id("mutex-reentry"), inner.Token(), inner.Guard(), func() bool { return inner.Err() == nil }, inner.Context())
			w.release(inner, "mutex-reentry")
			if l.Err() == nil && inner.Err() == nil {
				w.sink.violation("%s: the re-entered hold's Err is nil after its Release", w.name)
			}
		})
		// The mutex value is this round's alone: once its lease is let go (or was never had),
		// it holds nothing, whether the hold ended released or lost. (A hold lost by the
		// connection state leaves the record a moment after its lease's Done closes.)
		if !poll(time.Second, func() bool { return !m.IsAcquiredInThisProcess() }) {
			w.sink.violation("%s: mutex IsAcquiredInThisProcess is still true 1s after its only lease was released", w.name)
		}
	case 1:
		m := recipes.NewSemaphoreMutex(c, p.lock("smutex"))
		w.withLease(ctx, r, soakLock{recipe: "semaphore-mutex", path: p.lock("smutex"), fence: p.fence("smutex"), acc: exclusive, limit: 1, key: "smutex"}, m.Acquire, nil)
	case 2:
		qty := 1 + r.IntN(3)
		s := recipes.NewSemaphore(c, p.lock("sem"), 3)
		spec := soakLock{recipe: fmt.Sprintf("semaphore-q%d", qty), path: p.lock("sem"), fence: p.fence("sem"), acc: counted, limit: 3}
		w.semaphoreRound(ctx, r, spec, s, qty)
	case 3, 4:
		rw := recipes.NewReadWriteLock(c, p.lock("rw"))
		switch k := r.IntN(10); {
		case k < 5:
			w.withLease(ctx, r, soakLock{recipe: "read", path: p.lock("rw"), fence: p.fence("rw"), acc: shared}, rw.ReadLock().Acquire, nil)
		case k < 8:
			w.withLease(ctx, r, soakLock{recipe: "write", path: p.lock("rw"), fence: p.fence("rw"), acc: exclusive, limit: 1, key: "write"}, rw.WriteLock().Acquire, nil)
		default:
			w.downgradeRound(ctx, r, rw)
		}
	default:
		m := recipes.NewMultiLockPaths(c, p.lock("multi")+"/a", p.lock("multi")+"/b")
		w.withLease(ctx, r, soakLock{recipe: "multilock", path: p.lock("multi"), fence: p.fence("multi"), acc: exclusive, limit: 1, key: "multi"}, m.Acquire, nil)
	}
}

// soakLate is how long past its context's end an Acquire in this process may return before it
// counts as hanging: the contract is about a second, connected or not (an Acquire that gives up
// removes its nodes under a 300ms bound, then leaves them to the background), and the rest is slack
// for a loaded machine. A child process may be paused (SIGSTOP) in the middle of an Acquire, so
// there hangSlack.
const soakLate = 2 * time.Second

// late returns how long past its context's end an Acquire of w may return.
func (w *soakWorker) late() time.Duration {
	if os.Getenv(soakChildEnv) != "" {
		return hangSlack
	}
	return soakLate
}

// acquireWindow returns how long one Acquire may wait: acquireTimeout, or, one time in four, a
// short while (50ms to 3s), so that many waits end in the middle, some of them while a fault has
// the client suspended.
func acquireWindow(r *rand.Rand) time.Duration {
	if r.IntN(4) == 0 {
		return time.Duration(50+r.IntN(2950)) * time.Millisecond
	}
	return acquireTimeout
}

// timedAcquire calls acquire with a context that ends after window, and reports an Acquire that
// returns later than w.late() past that.
func (w *soakWorker) timedAcquire(ctx context.Context, recipe string, window time.Duration, acquire func(context.Context) error) error {
	actx, cancel := context.WithTimeout(ctx, window)
	begin := time.Now()
	err := acquire(actx)
	cancel()
	if took := time.Since(begin); took > window+w.late() {
		w.sink.violation("%s: %s Acquire returned %v after its context ended (took %v): %v", w.name, recipe,
			took-window, took, err)
	}
	return err
}

// acquire calls acquire under acquireWindow and checks that it returns in time.
func (w *soakWorker) acquire(ctx context.Context, r *rand.Rand, recipe string, acquire func(context.Context) (*recipes.Lease, error)) *recipes.Lease {
	var l *recipes.Lease
	err := w.timedAcquire(ctx, recipe, acquireWindow(r), func(actx context.Context) (err error) {
		l, err = acquire(actx)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			w.sink.failed(recipe)
			pause(ctx, 50*time.Millisecond+time.Duration(r.IntN(200))*time.Millisecond)
		}
		return nil
	}
	w.sink.acquired(recipe)
	return l
}

// withLease acquires, holds (checking in with the monitor, the fence and the counter), calls
// more (if not nil) while holding, and releases.
func (w *soakWorker) withLease(ctx context.Context, r *rand.Rand, spec soakLock, acquire func(context.Context) (*recipes.Lease, error), more func(*recipes.Lease)) {
	floor := w.floor(ctx, spec.fence)
	l := w.acquire(ctx, r, spec.recipe, acquire)
	if l == nil {
		return
	}
	w.hold(r, spec, l, floor)
	if more != nil && l.Err() == nil {
		more(l)
	}
	w.release(l, spec.recipe)
}

func (w *soakWorker) floor(ctx context.Context, f fence) int64 {
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	floor, err := f.floor(fctx, w.c)
	if err != nil {
		return -1
	}
	return floor
}

// hold is the critical section of one lease.
func (w *soakWorker) hold(r *rand.Rand, spec soakLock, l *recipes.Lease, floor int64) {
	id := w.id(spec.recipe)
	alive := func() bool { return l.Err() == nil }
	done := w.holds.add(id, false, alive)
	defer done()
	h := w.mon.enter(spec.path, id, spec.acc, spec.limit, l)
	defer w.mon.leave(spec.path, h)
	tk, res := spec.fence.begin(w.c, id, l, spec.acc, floor, w.mon)
	if spec.key != "" {
		w.counterOp(spec.key, id, l.Token(), l.Guard(), alive, l.Context())
	}
	// One hold in a hundred lasts 2-8s, longer than a black hole or an expiry takes, so that
	// faults strike holders too: a hold must end within a second of its session's expiry.
	d := time.Duration(1+r.IntN(15)) * time.Millisecond
	if r.IntN(100) == 0 {
		d = time.Duration(2000+r.IntN(6000)) * time.Millisecond
	}
	select {
	case <-time.After(d):
	case <-l.Done():
	}
	if res == recorded {
		spec.fence.commit(w.c, id, l, spec.acc, tk, w.mon)
	}
}

// soakReleaseLimit is how long a Release may take in the soak before it counts as hanging: it
// never waits for a connection (its delete is bounded at 300ms, then left to the background), so
// 2s is slack for a loaded machine, and a Release that waits out a session timeout is caught. (In
// a child process, which the soak pauses, releaseLimit.)
const soakReleaseLimit = 2 * time.Second

func (w *soakWorker) release(l *recipes.Lease, recipe string) {
	if l.Err() != nil && !errors.Is(l.Err(), recipes.ErrReleased) {
		w.sink.lost(recipe)
	}
	begin := time.Now()
	if err := l.Release(); err != nil && !errors.Is(err, recipes.ErrLockLost) && !errors.Is(err, recipes.ErrClosed) {
		w.sink.violation("%s: %s Release: %v", w.name, recipe, err)
	}
	limit := soakReleaseLimit
	if os.Getenv(soakChildEnv) != "" {
		limit = releaseLimit // a child process may be paused (SIGSTOP) in the middle of a Release
	}
	if took := time.Since(begin); took > limit {
		w.sink.violation("%s: %s Release took %v", w.name, recipe, took)
	}
}

// semaphoreRound takes qty leases of the semaphore, each a counted hold.
func (w *soakWorker) semaphoreRound(ctx context.Context, r *rand.Rand, spec soakLock, s *recipes.Semaphore, qty int) {
	floor := w.floor(ctx, spec.fence)
	var ls []*recipes.Lease
	err := w.timedAcquire(ctx, spec.recipe, acquireWindow(r), func(actx context.Context) (err error) {
		ls, err = s.Acquire(actx, qty)
		return err
	})
	if err != nil {
		if ctx.Err() == nil {
			w.sink.failed(spec.recipe)
			pause(ctx, 50*time.Millisecond+time.Duration(r.IntN(200))*time.Millisecond)
		}
		return
	}
	if len(ls) != qty {
		w.sink.violation("%s: semaphore Acquire(%d) returned %d leases", w.name, qty, len(ls))
	}
	w.sink.acquired(spec.recipe)
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() { w.hold(r2(r), spec, l, floor) })
	}
	wg.Wait()
	for _, l := range ls {
		w.release(l, spec.recipe)
	}
}

var r2mu sync.Mutex

// r2 derives a generator for a goroutine of its own from r.
func r2(r *rand.Rand) *rand.Rand {
	r2mu.Lock()
	defer r2mu.Unlock()
	return rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
}

// downgradeRound takes the write lock, then the read lock of the same ReadWriteLock with the
// write lease's context (a downgrade), releases the write lock and reads on.
func (w *soakWorker) downgradeRound(ctx context.Context, r *rand.Rand, rw *recipes.ReadWriteLock) {
	wspec := soakLock{recipe: "downgrade", path: w.p.lock("rw"), fence: w.p.fence("rw"), acc: exclusive, limit: 1, key: "write"}
	floor := w.floor(ctx, wspec.fence)
	wl := w.acquire(ctx, r, "downgrade", rw.WriteLock().Acquire)
	if wl == nil {
		return
	}
	w.hold(r, wspec, wl, floor)
	// Half the downgrades carry the write hold without its cancellation: they go on after the
	// write hold ends, and must then be refused, not granted.
	dctx := wl.Context()
	if r.IntN(2) == 0 {
		dctx = context.WithoutCancel(dctx)
	}
	dctx, cancel := context.WithTimeout(dctx, acquireTimeout)
	rl, err := rw.ReadLock().Acquire(dctx)
	cancel()
	if err != nil {
		if wl.Err() == nil && ctx.Err() == nil {
			w.sink.failed("downgrade-read")
		}
		w.release(wl, "downgrade")
		return
	}
	if wl.Err() == nil && rl.Token() <= wl.Token() {
		w.sink.violation("%s: downgraded read hold's token %d not above the write hold's %d", w.name, rl.Token(), wl.Token())
	}
	w.release(wl, "downgrade")
	w.hold(r, soakLock{recipe: "downgrade-read", path: w.p.lock("rw"), fence: w.p.fence("rw"), acc: shared}, rl, -1)
	w.release(rl, "downgrade-read")
}

// latchRound joins the election with a new latch, leads for a few counter operations, and
// closes the latch.
func (w *soakWorker) latchRound(ctx context.Context, r *rand.Rand) {
	path := w.p.lock("latch")
	l := recipes.NewLeaderLatch(w.c, path)
	if err := l.Start(); err != nil {
		if ctx.Err() == nil && !errors.Is(err, recipes.ErrClosed) {
			w.sink.violation("%s: latch Start: %v", w.name, err)
		}
		return
	}
	defer func() {
		if err := l.Close(); err != nil && !errors.Is(err, recipes.ErrClosed) {
			w.sink.violation("%s: latch Close: %v", w.name, err)
		}
	}()
	err := w.timedAcquire(ctx, "latch", acquireWindow(r), l.Await)
	if err != nil {
		if ctx.Err() == nil {
			w.sink.failed("latch")
		}
		return
	}
	lctx := l.LeadershipContext()
	tok, ok := recipes.LeadershipToken(lctx)
	if !ok {
		return // the term ended already
	}
	// A fifth of the terms go on leading for 2-10s after their counter operations, longer than
	// a black hole or an expiry lasts, so that faults strike leaders too: a term must end within a
	// second of its session's expiry.
	var linger time.Duration
	if r.IntN(5) == 0 {
		linger = time.Duration(2000+r.IntN(8000)) * time.Millisecond
	}
	w.lead(r, "latch", path, tok, func() bool { return lctx.Err() == nil && l.HasLeadership() }, lctx, linger)
}

// selectorRound joins the election with a new selector, leads once for a few counter operations,
// and closes the selector.
func (w *soakWorker) selectorRound(ctx context.Context, r *rand.Rand) {
	path := w.p.lock("selector")
	led := make(chan struct{})
	var s *recipes.LeaderSelector
	rr := r2(r)
	s = recipes.NewLeaderSelector(w.c, path, func(lctx context.Context) error {
		defer close(led)
		tok, ok := recipes.LeadershipToken(lctx)
		if !ok {
			w.sink.violation("%s: no leadership token in the selector's context", w.name)
			return nil
		}
		w.lead(rr, "selector", path, tok, func() bool { return lctx.Err() == nil && s.HasLeadership() }, lctx, 0)
		return nil
	})
	if err := s.Start(); err != nil {
		if ctx.Err() == nil && !errors.Is(err, recipes.ErrClosed) {
			w.sink.violation("%s: selector Start: %v", w.name, err)
		}
		return
	}
	t := time.NewTimer(acquireTimeout)
	defer t.Stop()
	select {
	case <-led:
	case <-t.C:
		w.sink.failed("selector")
	case <-ctx.Done():
	}
	if err := s.Close(); err != nil && !errors.Is(err, recipes.ErrClosed) {
		w.sink.violation("%s: selector Close: %v", w.name, err)
	}
}

// lead is a leader's term: one to four counter operations, then linger more of leading (unless
// the term ends first).
func (w *soakWorker) lead(r *rand.Rand, key, path string, tok int64, alive func() bool, lctx context.Context, linger time.Duration) {
	guard, ok := recipes.LeadershipGuard(lctx)
	if !ok {
		w.sink.violation("%s: no guard in a %s's leadership context", w.name, key)
	}
	w.sink.acquired(key)
	id := w.id(key)
	done := w.holds.add(id, true, alive)
	defer done()
	leave := w.leaders.enter(path, id, alive, w.sink)
	defer leave()
	for k := range 1 + r.IntN(4) {
		if !alive() {
			w.sink.lost(key)
			return
		}
		w.counterOp(key, fmt.Sprintf("%s.%d", id, k), tok, guard, alive, lctx)
		pause(lctx, time.Duration(1+r.IntN(20))*time.Millisecond)
	}
	pause(lctx, linger)
}

// counterOp is one read-modify-write of the counter of key by the hold with token tok: read, a
// moment's work, and a write under a version check, refused if the counter holds a higher token
// or the hold has ended. Half the writes are guarded writes (the hold's guard: they commit only
// while its node exists), half plain ones, so that the check still sees two holders at once where
// the guard would have hidden it. It records the operation with the sink.
func (w *soakWorker) counterOp(key, id string, tok int64, guard recipes.Guard, alive func() bool, hctx context.Context) {
	path := w.p.counter(key)
	rec := opRecord{Key: key, ID: id, Token: tok, Call: time.Now().UnixNano(), Kind: opNone}
	w.sink.begin(key, id, rec.Call)
	defer func() {
		rec.Ended = !alive()
		rec.Return = time.Now().UnixNano()
		w.sink.op(rec)
	}()
	if !alive() {
		return
	}
	ctx, cancel := context.WithTimeout(hctx, 5*time.Second)
	defer cancel()
	data, st, err := w.c.Get(ctx, path)
	if err != nil {
		return
	}
	cur, err := parseCounter(data)
	if err != nil {
		w.sink.violation("%s: %v", id, err)
		return
	}
	rec.Read = cur.v
	if cur.t > tok {
		rec.Kind = opRefused
		return
	}
	time.Sleep(time.Millisecond) // the window in which another holder would show
	if !alive() {
		return
	}
	value := counterValue{v: cur.v + 1, t: tok, id: id}.bytes()
	if rand.IntN(2) == 0 {
		_, err = guard.Set(ctx, path, value, st.Version)
		switch {
		case err == nil:
			rec.Kind = opApplied
			return
		case errors.Is(err, framework.ErrUnknownOutcome):
			rec.ConnErr = true // sent, no reply: read back below
		case errors.Is(err, zk.ErrBadVersion):
			// Refused, nothing applied; but another wrote since the read: only an ended hold
			// may see that, as for a plain write.
			rec.Kind = opUnknown
			return
		default:
			return // refused (the hold is gone on the server, or known ended here) or not sent: nothing written
		}
	} else {
		_, err = w.c.Set(ctx, path, value, st.Version)
		if err == nil {
			rec.Kind = opApplied
			return
		}
		rec.ConnErr = !errors.Is(err, zk.ErrBadVersion)
	}
	rec.Kind = opUnknown
	// A write retried after a connection loss finds its own earlier write applied.
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if data, _, err := w.c.Get(rctx, path); err == nil {
		if now, err := parseCounter(data); err == nil && now.id == id {
			rec.Kind = opApplied
		}
	}
}

// The child process.

const (
	soakChildEnv     = "FAULTS_SOAK_CHILD" // the child's name; set, the test binary runs soakChildMain
	soakChildConnect = "FAULTS_SOAK_CONNECT"
	soakChildRoot    = "FAULTS_SOAK_ROOT"
	soakChildPolicy  = "FAULTS_SOAK_POLICY" // "standard" or "session"
	soakChildSeed    = "FAULTS_SOAK_SEED"
)

// A test binary started with FAULTS_SOAK_CHILD set is a soak child: it runs soakChildMain
// instead of the tests (before TestMain, which belongs to the whole package).
func init() {
	if os.Getenv(soakChildEnv) != "" {
		os.Exit(soakChildMain())
	}
}

// childEvent is one line a soak child prints.
type soakEvent struct {
	K     string    `json:"k"` // begin, op, acquired, failed, lost, violation, sid, ready, bye
	Key   string    `json:"key,omitempty"`
	ID    string    `json:"id,omitempty"`
	Call  int64     `json:"call,omitempty"`
	Op    *opRecord `json:"op,omitempty"`
	S     string    `json:"s,omitempty"`
	SID   int64     `json:"sid,omitempty"`
	State string    `json:"state,omitempty"`
}

// emitSink is a soak child's sink: it prints each event as a JSON line.
type emitSink struct {
	mu  sync.Mutex
	out *bufio.Writer
	enc *json.Encoder
}

func newEmitSink() *emitSink {
	out := bufio.NewWriter(os.Stdout)
	return &emitSink{out: out, enc: json.NewEncoder(out)}
}

func (s *emitSink) emit(ev soakEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enc.Encode(ev)
	s.out.Flush()
}

func (s *emitSink) begin(key, id string, call int64) {
	s.emit(soakEvent{K: "begin", Key: key, ID: id, Call: call})
}
func (s *emitSink) op(rec opRecord)        { s.emit(soakEvent{K: "op", Op: &rec}) }
func (s *emitSink) acquired(recipe string) { s.emit(soakEvent{K: "acquired", S: recipe}) }
func (s *emitSink) failed(recipe string)   { s.emit(soakEvent{K: "failed", S: recipe}) }
func (s *emitSink) lost(recipe string)     { s.emit(soakEvent{K: "lost", S: recipe}) }
func (s *emitSink) violation(format string, args ...any) {
	s.emit(soakEvent{K: "violation", S: fmt.Sprintf(format, args...)})
}

// soakChildMain runs a worker until SIGTERM, then releases everything, closes its client and
// prints "bye".
func soakChildMain() int {
	name := os.Getenv(soakChildEnv)
	sink := newEmitSink()
	seed, _ := strconv.ParseUint(os.Getenv(soakChildSeed), 10, 64)
	policy := framework.StandardErrorPolicy
	if os.Getenv(soakChildPolicy) == "session" {
		policy = framework.SessionErrorPolicy
	}
	c, err := framework.NewClient(os.Getenv(soakChildConnect),
		framework.WithSessionTimeout(sessionTimeout),
		framework.WithConnectionTimeout(10*time.Second),
		framework.WithRetryPolicy(retry.BoundedExponentialBackoff(100*time.Millisecond, time.Second, 10)),
		framework.WithErrorPolicy(policy))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c.Listen(func(st framework.State) { sink.emit(soakEvent{K: "sid", SID: c.SessionID(), State: st.String()}) })
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cctx, cancel := context.WithTimeout(ctx, waitTimeout)
	err = c.BlockUntilConnected(cctx)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sink.emit(soakEvent{K: "sid", SID: c.SessionID(), State: "ready"})
	mon := newMonitor()
	w := &soakWorker{name: name, c: c, p: soakPaths{os.Getenv(soakChildRoot)}, sink: sink, mon: mon,
		leaders: newLeaderLedger(), holds: newHoldSet()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, seed, 2)
	}()
	// Report the monitor's violations as they come.
	reported := 0
	flush := func() {
		v := mon.Violations()
		for _, s := range v[reported:] {
			sink.violation("%s", s)
		}
		reported = len(v)
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-tick.C:
			flush()
		}
	}
	flush()
	c.Close()
	sink.emit(soakEvent{K: "bye"})
	return 0
}
