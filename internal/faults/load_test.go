package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// This file is the load that TestSoak and TestLeaderKillLoop put on the recipes while faults are
// injected: workers that take and release locks over and over, and in every critical section
// check with the server that they are alone where they should be.

const (
	// acquireTimeout bounds each Acquire of a worker.
	acquireTimeout = 20 * time.Second
	// hangSlack is how long past its context's end an Acquire may take to return before it
	// counts as hanging. An Acquire whose context ends deletes its nodes before it returns,
	// each delete waiting up to a session timeout for the connection (then leaving it to the
	// background); a semaphore's has two nodes.
	hangSlack = 2*sessionTimeout + 5*time.Second
	// releaseLimit is how long a Release may take (it waits at most a session timeout for its
	// delete, then leaves it to the background) before it counts as hanging.
	releaseLimit = sessionTimeout + 10*time.Second
)

// fence is a znode that every critical section of one lock path reads when it begins and updates
// with a version-checked write when it ends, after checking its fencing token against what the
// node holds: the highest token of the exclusive holds (w), the highest token of the other holds
// (r) and a count of the holds (n).
//
// An exclusive holder's token must be above both w and r, and its write must find the version it
// read when it began (a BadVersion means another holder wrote in between: two holders at once). A
// reader's token must be above w. Any holder's token must be above the highest token recorded
// before its Acquire began (the floor): it was granted later. A holder whose lease has ended when
// a check fails was fenced off, as it should be; a live one is a violation.
type fence struct{ path string }

type fenceValue struct {
	w, r, n int64
	id      string // the critical section that wrote it
}

func (v fenceValue) bytes() []byte {
	return fmt.Appendf(nil, "w=%d r=%d n=%d id=%s", v.w, v.r, v.n, v.id)
}

func parseFence(b []byte) (fenceValue, error) {
	var v fenceValue
	if _, err := fmt.Sscanf(string(b), "w=%d r=%d n=%d id=%s", &v.w, &v.r, &v.n, &v.id); err != nil {
		return v, fmt.Errorf("fence data %q: %w", b, err)
	}
	return v, nil
}

// create makes the fence node, if it does not exist.
func (f fence) create(ctx context.Context, c *framework.Client) error {
	_, err := c.Create(ctx, f.path, fenceValue{id: "-"}.bytes(), framework.Persistent, framework.WithParents())
	if errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return err
}

// read returns the fence's value.
func (f fence) read(ctx context.Context, c *framework.Client) (fenceValue, *zk.Stat, error) {
	data, st, err := c.Get(ctx, f.path)
	if err != nil {
		return fenceValue{}, nil, err
	}
	v, err := parseFence(data)
	return v, st, err
}

// floor returns the highest token the fence has recorded.
func (f fence) floor(ctx context.Context, c *framework.Client) (int64, error) {
	v, _, err := f.read(ctx, c)
	return max(v.w, v.r), err
}

// fenceResult is what became of a critical section's fence update.
type fenceResult int

const (
	recorded    fenceResult = iota // the token was recorded
	fencedOff                      // the lease ended before it could be: the fence did its job
	unreachable                    // the server could not be reached while the lease lived
	violated                       // a violation was recorded
)

// ticket is what a critical section read from the fence when it began.
type ticket struct {
	v       fenceValue
	version int32
}

// begin checks a hold's token against the fence, with requests bound to the lease's context so
// that they stop when the lease ends, and returns what it read for commit. id names the critical
// section. It returns recorded if the checks passed.
func (f fence) begin(c *framework.Client, id string, l *recipes.Lease, acc access, floor int64, mon *monitor) (ticket, fenceResult) {
	tok := l.Token()
	if floor >= 0 && tok <= floor {
		return ticket{}, f.fail(id, l, mon, "token not above %d, the highest recorded before its Acquire began", floor)
	}
	v, st, err := f.read(l.Context(), c)
	if err != nil {
		return ticket{}, f.lost(l)
	}
	switch {
	case acc == exclusive && tok <= max(v.w, v.r):
		return ticket{}, f.fail(id, l, mon, "token not above the previous holders' (w=%d r=%d, by %s)", v.w, v.r, v.id)
	case acc != exclusive && tok <= v.w:
		return ticket{}, f.fail(id, l, mon, "token not above the last exclusive holder's (w=%d, by %s)", v.w, v.id)
	}
	return ticket{v: v, version: st.Version}, recorded
}

// commit records the hold's token and counts the hold, with a write that must find the fence as
// begin read it: for an exclusive hold, a change in between is another holder's. Shared and
// counted holds share the fence, and try again on a change.
func (f fence) commit(c *framework.Client, id string, l *recipes.Lease, acc access, tk ticket, mon *monitor) fenceResult {
	ctx := l.Context()
	tok := l.Token()
	for range 50 {
		next := fenceValue{w: tk.v.w, r: tk.v.r, n: tk.v.n + 1, id: id}
		if acc == exclusive {
			next.w = tok
		} else {
			next.r = max(tk.v.r, tok)
		}
		_, err := c.Set(ctx, f.path, next.bytes(), tk.version)
		if err == nil {
			return recorded
		}
		if !errors.Is(err, zk.ErrBadVersion) {
			return f.lost(l)
		}
		// A retried write that had been applied before its connection was lost finds its own
		// write; any other is someone else's.
		now, st, err := f.read(ctx, c)
		if err != nil {
			return f.lost(l)
		}
		if now.id == id {
			return recorded
		}
		if acc == exclusive {
			return f.fail(id, l, mon, "the fence changed under an exclusive holder (written by %s meanwhile)", now.id)
		}
		if tok <= now.w {
			return f.fail(id, l, mon, "an exclusive holder (%s, token %d) wrote the fence while it held", now.id, now.w)
		}
		tk = ticket{v: now, version: st.Version}
	}
	return unreachable
}

// fail records a violation, unless the lease has ended: then the fence did its job.
func (f fence) fail(id string, l *recipes.Lease, mon *monitor, format string, args ...any) fenceResult {
	if l.Err() != nil {
		return fencedOff
	}
	mon.violation("%s: %s (token %d): %s", f.path, id, l.Token(), fmt.Sprintf(format, args...))
	return violated
}

// lost classifies a failed request: fenced off if the lease has ended, else unreachable.
func (f fence) lost(l *recipes.Lease) fenceResult {
	if l.Err() != nil {
		return fencedOff
	}
	return unreachable
}

// lockSpec is one lock that workers take: how to take it with a session's client, and what the
// hold excludes.
type lockSpec struct {
	name  string // "mutex", "read", "write", "semaphore"
	path  string // lock path
	fence fence
	acc   access
	limit int // for a semaphore, its number of leases
}

// stats counts what the workers did, per lock name.
type stats struct {
	mu          sync.Mutex
	acquired    map[string]int
	failed      map[string]int // Acquire returned an error
	lost        map[string]int // the lease ended while held
	fencedOff   map[string]int
	unreachable map[string]int
	total       atomic.Int64 // acquisitions
}

func newStats() *stats {
	return &stats{
		acquired: map[string]int{}, failed: map[string]int{}, lost: map[string]int{},
		fencedOff: map[string]int{}, unreachable: map[string]int{},
	}
}

func (s *stats) add(m map[string]int, name string) {
	s.mu.Lock()
	m[name]++
	s.mu.Unlock()
}

// summary formats a count map as "a=1 b=2", in name order.
func (s *stats) summary(m map[string]int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return formatCounts(m)
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// load runs the workers: for each session, one worker on the mutex, one on the read-write lock
// (reading or writing) and one on the semaphore.
type load struct {
	mon   *monitor
	stats *stats
	seed  uint64
	mutex lockSpec
	read  lockSpec
	write lockSpec
	sem   lockSpec
	wg    sync.WaitGroup
}

// newLoad returns a load on the lock paths under root, with the fences under root/fence.
func newLoad(root string, seed uint64) *load {
	return &load{
		mon:   newMonitor(),
		stats: newStats(),
		seed:  seed,
		mutex: lockSpec{name: "mutex", path: root + "/locks/mutex", fence: fence{root + "/fence/mutex"}, acc: exclusive, limit: 1},
		read:  lockSpec{name: "read", path: root + "/locks/rw", fence: fence{root + "/fence/rw"}, acc: shared},
		write: lockSpec{name: "write", path: root + "/locks/rw", fence: fence{root + "/fence/rw"}, acc: exclusive, limit: 1},
		sem:   lockSpec{name: "semaphore", path: root + "/locks/semaphore", fence: fence{root + "/fence/semaphore"}, acc: counted, limit: 2},
	}
}

// lockPaths returns the paths under which no node may be left at the end.
func (ld *load) lockPaths() []string { return []string{ld.mutex.path, ld.read.path, ld.sem.path} }

// setup creates the fences.
func (ld *load) setup(ctx context.Context, c *framework.Client) error {
	for _, f := range []fence{ld.mutex.fence, ld.read.fence, ld.sem.fence} {
		if err := f.create(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// start starts the workers of session s (number i) until ctx ends.
func (ld *load) start(ctx context.Context, i int, s *session) {
	mutex := recipes.NewInterProcessMutex(s.c, ld.mutex.path)
	rw := recipes.NewReadWriteLock(s.c, ld.read.path)
	sem := recipes.NewSemaphore(s.c, ld.sem.path, ld.sem.limit)
	one := func(leases []*recipes.Lease, err error) (*recipes.Lease, error) {
		if err != nil {
			return nil, err
		}
		return leases[0], nil
	}
	type job struct {
		pick func(r *rand.Rand) (lockSpec, func(context.Context) (*recipes.Lease, error))
	}
	jobs := []job{
		{func(*rand.Rand) (lockSpec, func(context.Context) (*recipes.Lease, error)) {
			return ld.mutex, mutex.Acquire
		}},
		{func(r *rand.Rand) (lockSpec, func(context.Context) (*recipes.Lease, error)) {
			if r.IntN(10) < 3 {
				return ld.write, rw.WriteLock().Acquire
			}
			return ld.read, rw.ReadLock().Acquire
		}},
		{func(*rand.Rand) (lockSpec, func(context.Context) (*recipes.Lease, error)) {
			return ld.sem, func(ctx context.Context) (*recipes.Lease, error) { return one(sem.Acquire(ctx, 1)) }
		}},
	}
	for j, jb := range jobs {
		r := rand.New(rand.NewPCG(ld.seed, uint64(i*len(jobs)+j)))
		ld.wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				spec, acquire := jb.pick(r)
				ld.once(ctx, s, spec, acquire, fmt.Sprintf("%s/%s#%d", s.name, spec.name, n), r)
			}
		})
	}
}

// once is one round of a worker: read the fence's floor, acquire, check in with the monitor and
// the fence, work a little, release.
func (ld *load) once(ctx context.Context, s *session, spec lockSpec, acquire func(context.Context) (*recipes.Lease, error),
	id string, r *rand.Rand) {
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	floor, err := spec.fence.floor(fctx, s.c)
	cancel()
	if err != nil {
		floor = -1 // no floor check this time
	}
	actx, cancel := context.WithTimeout(ctx, acquireTimeout)
	begin := time.Now()
	lease, err := acquire(actx)
	cancel()
	if took := time.Since(begin); took > acquireTimeout+hangSlack {
		ld.mon.violation("%s: Acquire returned %v after its context ended (took %v): %v", id, took-acquireTimeout, took, err)
	}
	if err != nil {
		if ctx.Err() == nil {
			ld.stats.add(ld.stats.failed, spec.name)
			pause(ctx, 50*time.Millisecond+time.Duration(r.IntN(200))*time.Millisecond)
		}
		return
	}
	ld.stats.add(ld.stats.acquired, spec.name)
	ld.stats.total.Add(1)
	h := ld.mon.enter(spec.path, id, spec.acc, spec.limit, lease)
	tk, res := spec.fence.begin(s.c, id, lease, spec.acc, floor, ld.mon)
	// The work: the window in which another holder would show.
	select {
	case <-time.After(time.Duration(1+r.IntN(20)) * time.Millisecond):
	case <-lease.Done():
	}
	if res == recorded {
		res = spec.fence.commit(s.c, id, lease, spec.acc, tk, ld.mon)
	}
	switch res {
	case fencedOff:
		ld.stats.add(ld.stats.fencedOff, spec.name)
	case unreachable:
		ld.stats.add(ld.stats.unreachable, spec.name)
	}
	ld.mon.leave(spec.path, h)
	if lease.Err() != nil {
		ld.stats.add(ld.stats.lost, spec.name)
	}
	begin = time.Now()
	if err := lease.Release(); err != nil && !errors.Is(err, recipes.ErrLockLost) && !errors.Is(err, recipes.ErrClosed) {
		ld.mon.violation("%s: Release: %v", id, err)
	}
	if took := time.Since(begin); took > releaseLimit {
		ld.mon.violation("%s: Release took %v", id, took)
	}
}

// wait waits for the workers to end, up to d, and reports whether they did.
func (ld *load) wait(d time.Duration) bool {
	return waitGroupWithin(&ld.wg, d)
}

// pause waits for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
