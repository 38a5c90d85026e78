package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// w1 is the uncontended workload: one session, one path, pairs one after the other.
func (b *bench) w1(ctx context.Context) (Result, error) {
	c, err := b.newClient(ctx)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	lk := b.newLock(c, b.path("w1"))
	for range b.cfg.warmup {
		if _, err := pair(ctx, lk); err != nil {
			return Result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	n := b.cfg.iterations
	lat := make(latencies, 0, n)
	cnt := b.counter(c)
	cnt.start()
	start := time.Now()
	for range n {
		d, err := pair(ctx, lk)
		if err != nil {
			return Result{}, err
		}
		lat = append(lat, d)
	}
	elapsed := time.Since(start)
	srv, cli := cnt.deltas()
	return newResult("W1", b.cfg.recipe, n, elapsed, lat, srv, cli, cnt.m), nil
}

// interval is when one hold began and when its release began.
type interval struct{ from, to time.Time }

// overlaps counts the holds that began before an earlier hold's release began.
func overlaps(holds []interval) int {
	slices.SortFunc(holds, func(a, b interval) int { return a.from.Compare(b.from) })
	n := 0
	var last time.Time
	for _, h := range holds {
		if !last.IsZero() && h.from.Before(last) {
			n++
		}
		if h.to.After(last) {
			last = h.to
		}
	}
	return n
}

// loops runs n sessions at once, each calling op (with its index) per times after a common start,
// and returns the durations op returned, how long the run took, and the sessions' errors joined
// (a session stops at its first error).
func loops(n, per int, op func(i int) (time.Duration, error)) (latencies, time.Duration, error) {
	lat := make([]latencies, n)
	errs := make([]error, n)
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		lat[i] = make(latencies, 0, per)
		wg.Go(func() {
			<-begin
			for range per {
				d, err := op(i)
				if err != nil {
					errs[i] = err
					return
				}
				lat[i] = append(lat[i], d)
			}
		})
	}
	start := time.Now()
	close(begin)
	wg.Wait()
	return slices.Concat(lat...), time.Since(start), errors.Join(errs...)
}

// handoffs runs n sessions on one lock with loops: each takes the lock with acquire (with its
// index), which returns the release, holds it for a yield (so that a second holder, if the lock let
// one in, would be seen in the hold), and releases it, per times. It returns the waits for the
// lock, the holds (from the grant to the release's start), and how long the run took.
func handoffs(n, per int, acquire func(i int) (release func() error, err error)) (latencies, []interval, time.Duration, error) {
	holds := make([][]interval, n)
	waits, elapsed, err := loops(n, per, func(i int) (time.Duration, error) {
		t0 := time.Now()
		release, err := acquire(i)
		if err != nil {
			return 0, err
		}
		t1 := time.Now()
		runtime.Gosched()
		holds[i] = append(holds[i], interval{t1, time.Now()})
		return t1.Sub(t0), release()
	})
	return waits, slices.Concat(holds...), elapsed, err
}

// lockSessions makes n connected clients (see newClients), client i with a lock on path(i). The
// caller closes the clients (closeClients).
func (b *bench) lockSessions(ctx context.Context, n int, path func(i int) string) ([]*framework.Client, []locker, error) {
	clients, err := b.newClients(ctx, n)
	if err != nil {
		return nil, nil, err
	}
	locks := make([]locker, n)
	for i, c := range clients {
		locks[i] = b.newLock(c, path(i))
	}
	return clients, locks, nil
}

// w2 is the contended workload: sessions on one path, each acquiring and releasing in a loop.
func (b *bench) w2(ctx context.Context) (Result, error) {
	n, per := b.cfg.sessions, b.cfg.perSession
	path := b.path("w2")
	clients, locks, err := b.lockSessions(ctx, n, func(int) string { return path })
	if err != nil {
		return Result{}, err
	}
	defer closeClients(clients)
	cnt := b.counter(clients...)
	cnt.start()
	waits, holds, elapsed, err := handoffs(n, per, func(i int) (func() error, error) {
		l, err := locks[i].Acquire(ctx)
		if err != nil {
			return nil, err
		}
		return l.Release, nil
	})
	if err != nil {
		return Result{}, err
	}
	srv, cli := cnt.deltas()
	r := newResult("W2", b.cfg.recipe, n*per, elapsed, waits, srv, cli, cnt.m)
	r.Extra = map[string]float64{"overlaps": float64(overlaps(holds))}
	return r, nil
}

// w3 is the independent workload: sessions spread over paths, each acquiring and releasing in a
// loop.
func (b *bench) w3(ctx context.Context) (Result, error) {
	n, per := b.cfg.sessions, b.cfg.perSession
	clients, locks, err := b.lockSessions(ctx, n, func(i int) string { return b.path("w3", "p"+strconv.Itoa(i%b.cfg.paths)) })
	if err != nil {
		return Result{}, err
	}
	defer closeClients(clients)
	cnt := b.counter(clients...)
	cnt.start()
	lat, elapsed, err := loops(n, per, func(i int) (time.Duration, error) { return pair(ctx, locks[i]) })
	if err != nil {
		return Result{}, err
	}
	srv, cli := cnt.deltas()
	r := newResult("W3", b.cfg.recipe, n*per, elapsed, lat, srv, cli, cnt.m)
	r.Extra = map[string]float64{"paths": float64(min(b.cfg.paths, n))}
	return r, nil
}

// awaitQueued waits until the waiters are queued: until the servers hold at least watches watches
// and, if dir is not "", dir has at least children children. If the servers cannot tell the
// watches, it waits until ready reports true instead, and a second longer.
func (b *bench) awaitQueued(ctx context.Context, watches int64, dir string, children int, ready func() bool) error {
	for {
		n, err := mntrSum(b.servers, "zk_watch_count")
		if err != nil {
			if ready() {
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
				}
				return ctx.Err()
			}
		} else if n >= watches {
			if dir == "" {
				return nil
			}
			names, _, err := b.admin.Children(dir)
			if err == nil && len(names) >= children {
				return nil
			}
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("waiting for the waiters to queue (%d watches, have %d): %w", watches, n, ctx.Err())
		}
	}
}

// watchCount returns the servers' watches, 0 if they cannot tell.
func (b *bench) watchCount() int64 {
	n, _ := mntrSum(b.servers, "zk_watch_count")
	return n
}

// watchesPerQueue is how many watches the server holds once waiters of one session are queued on
// paths lock paths: one per waiter (on the node ahead, or for the semaphore's first waiter on the
// leases), except for readers, which all watch the writer ahead, and the server counts one watch
// per path and session.
func (b *bench) watchesPerQueue(waiters, paths int) int64 {
	if b.cfg.recipe == "read" {
		return int64(paths)
	}
	return int64(waiters)
}

// queueDir is where each waiter on lock path has a node of its own while it waits.
func (b *bench) queueDir(path string) string {
	if b.cfg.recipe == "semaphore-mutex" {
		return path + "/locks"
	}
	return path
}

// w4 is the herd workload: waiters queued behind a holder on one lock, each releasing as soon as
// it holds. It counts what each hand-off costs the server.
func (b *bench) w4(ctx context.Context, waiters int) (Result, error) {
	clients, err := b.newClients(ctx, waiters+1)
	if err != nil {
		return Result{}, err
	}
	defer closeClients(clients)
	path := b.path("w4-" + strconv.Itoa(waiters))
	holder := b.newLock(clients[0], path)
	if b.cfg.recipe == "read" {
		// Readers do not wait for a reader: they queue behind a writer.
		holder = recipes.NewReadWriteLock(clients[0], path).WriteLock()
	}
	base := b.watchCount()
	lease, err := holder.Acquire(ctx)
	if err != nil {
		return Result{}, err
	}
	got := make([]time.Time, waiters)
	errs := make([]error, waiters)
	var queued atomic.Int32
	var wg sync.WaitGroup
	for i, c := range clients[1:] {
		wg.Go(func() {
			lk := b.newLock(c, path)
			queued.Add(1)
			l, err := lk.Acquire(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			got[i] = time.Now()
			errs[i] = l.Release()
		})
	}
	ready := func() bool { return int(queued.Load()) == waiters }
	// Each waiter has a session of its own, so each watch counts, readers' included. (base is from
	// before the holder's acquire: a semaphore holder's watch on the leases fires when the first
	// waiter adds its lease.)
	if err := b.awaitQueued(ctx, base+int64(waiters), b.queueDir(path), waiters, ready); err != nil {
		lease.Release()
		wg.Wait()
		return Result{}, err
	}
	cnt := b.counter(clients...)
	cnt.start()
	start := time.Now()
	if err := lease.Release(); err != nil {
		return Result{}, err
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	srv, cli := cnt.deltas()
	slices.SortFunc(got, func(a, b time.Time) int { return a.Compare(b) })
	handoffs := make(latencies, waiters)
	prev := start
	for i, t := range got {
		handoffs[i] = t.Sub(prev)
		prev = t
	}
	r := newResult("W4/"+strconv.Itoa(waiters), b.cfg.recipe, waiters, elapsed, handoffs, srv, cli, cnt.m)
	r.Extra = map[string]float64{"waiters": float64(waiters)}
	return r, nil
}

// participant is one W5 LeaderLatch with its own client.
type participant struct {
	id    string
	c     *framework.Client
	latch *recipes.LeaderLatch
}

// w5 is the failover workload: the leader's client is closed, and the time until another
// participant is told IsLeader is measured.
func (b *bench) w5(ctx context.Context) (Result, error) {
	const size = 3
	path := b.path("w5")
	leaders := make(chan string, 64)
	var all []*participant
	defer func() {
		for _, p := range all {
			p.c.Close()
			p.latch.Close()
		}
	}()
	seq := 0
	join := func() (*participant, error) {
		seq++
		c, err := b.newClient(ctx)
		if err != nil {
			return nil, err
		}
		p := &participant{id: "p" + strconv.Itoa(seq), c: c}
		p.latch = recipes.NewLeaderLatch(c, path, recipes.WithParticipantID(p.id))
		p.latch.AddListener(recipes.LeaderLatchListenerFuncs{OnIsLeader: func() {
			select {
			case leaders <- p.id:
			default:
			}
		}})
		all = append(all, p)
		return p, p.latch.Start()
	}
	// joined waits until the election has size participants.
	joined := func(p *participant) error {
		for {
			ps, err := p.latch.Participants(ctx)
			if err == nil && len(ps) == size {
				return nil
			}
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				return fmt.Errorf("waiting for %d participants: %w", size, ctx.Err())
			}
		}
	}
	live := map[string]*participant{}
	for range size {
		p, err := join()
		if err != nil {
			return Result{}, err
		}
		live[p.id] = p
	}
	if err := joined(all[0]); err != nil {
		return Result{}, err
	}
	var leader string
	select {
	case leader = <-leaders:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("no leader: %w", ctx.Err())
	}
	var failovers, closes latencies
	var srvTotal, cliTotal int64
	m := newMeter() // the rounds' measured parts, added up
	for range b.cfg.failovers {
		old := live[leader]
		delete(live, leader)
		var others []*framework.Client
		for _, p := range live {
			others = append(others, p.c)
		}
		cnt := b.counter(others...)
		cnt.m = m
		cnt.start()
		closed := make(chan time.Duration, 1)
		start := time.Now()
		go func() {
			old.c.Close()
			closed <- time.Since(start)
		}()
		var next string
	wait:
		for {
			select {
			case next = <-leaders:
				if next != old.id {
					break wait
				}
			case <-ctx.Done():
				return Result{}, fmt.Errorf("no leader after %s's client closed: %w", old.id, ctx.Err())
			}
		}
		failovers = append(failovers, time.Since(start))
		srv, cli := cnt.deltas()
		if srv < 0 || srvTotal < 0 {
			srvTotal = -1
		} else {
			srvTotal += srv
		}
		cliTotal += cli
		closes = append(closes, <-closed)
		old.latch.Close() // the client is closed: this only ends the latch's goroutines
		leader = next
		p, err := join()
		if err != nil {
			return Result{}, err
		}
		live[p.id] = p
		if err := joined(p); err != nil {
			return Result{}, err
		}
	}
	var total time.Duration
	for _, d := range failovers {
		total += d
	}
	r := newResult("W5", "latch", len(failovers), total, failovers, srvTotal, cliTotal, m)
	r.P99Ms = round(ms(slices.Max(failovers)), 3) // with few rounds, p99 is the maximum
	cp50, _ := closes.p50p99()
	r.Extra = map[string]float64{"close_p50_ms": cp50, "close_max_ms": round(ms(slices.Max(closes)), 3)}
	return r, nil
}

// holderNode returns, for the configured recipe, the parent under a lock path and the node name
// prefix of a node that holds the lock against every other acquirer.
func (b *bench) holderNode() (sub, name string) {
	switch b.cfg.recipe {
	case "semaphore-mutex":
		return "/leases", "lease-"
	case "read", "write":
		return "", "__WRIT__"
	}
	return "", "lock-"
}

// protectedName returns a node name with Curator's protected prefix.
func protectedName(name string) string {
	var u [16]byte
	rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("_c_%x-%x-%x-%x-%x-%s", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16], name)
}

// w6 is the scale workload: waiters goroutines of one client wait on locks held by another
// session (a bare connection that made the lock nodes by hand), each on a lock of its own
// (npaths == waiters) or all on one; RSS and goroutines are read while all wait; then the holder's
// session is closed and the time until every waiter has held and released is measured.
func (b *bench) w6(ctx context.Context, name string, waiters, npaths int) (Result, error) {
	holder, err := rawConnect(ctx, b.servers, b.cfg.sessionTimeout)
	if err != nil {
		return Result{}, err
	}
	defer holder.Close()
	sub, node := b.holderNode()
	paths := make([]string, npaths)
	for i := range paths {
		paths[i] = b.path(name, "p"+strconv.Itoa(i))
	}
	// Take every lock with the bare connection, many at a time.
	if err := parallel(ctx, npaths, 64, func(i int) error {
		parent := paths[i] + sub
		if err := mkdirs(holder, parent); err != nil {
			return err
		}
		_, err := holder.Create(parent+"/"+protectedName(node), []byte{}, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
		return err
	}); err != nil {
		return Result{}, fmt.Errorf("taking the locks: %w", err)
	}
	c, err := b.newClient(ctx)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	base := b.watchCount()
	var drainStart atomic.Int64
	got := make(latencies, waiters)
	errs := make([]error, waiters)
	var started atomic.Int32
	var wg sync.WaitGroup
	queueStart := time.Now()
	for i := range waiters {
		wg.Go(func() {
			lk := b.newLock(c, paths[i%npaths])
			started.Add(1)
			l, err := lk.Acquire(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			got[i] = time.Duration(time.Now().UnixNano() - drainStart.Load())
			errs[i] = l.Release()
		})
	}
	ready := func() bool { return int(started.Load()) == waiters }
	dir := "" // with a lock each, the watches tell
	if npaths == 1 {
		dir = b.queueDir(paths[0])
	}
	if err := b.awaitQueued(ctx, base+b.watchesPerQueue(waiters, npaths), dir, waiters, ready); err != nil {
		holder.Close()
		wg.Wait()
		return Result{}, err
	}
	queued := time.Since(queueStart)
	rss, peak := rssMB()
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	goroutines := runtime.NumGoroutine()
	if b.cfg.memProfile != "" && !b.memProfiled {
		b.writeMemProfile()
	}

	cnt := b.counter(c)
	cnt.start()
	start := time.Now()
	drainStart.Store(start.UnixNano())
	holder.Close()
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return Result{}, err
	}
	srv, cli := cnt.deltas()
	r := newResult(name, b.cfg.recipe, waiters, elapsed, got, srv, cli, cnt.m)
	r.Extra = map[string]float64{
		"waiters":     float64(waiters),
		"paths":       float64(npaths),
		"rss_mb":      round(rss, 1),
		"rss_peak_mb": round(peak, 1),
		"heap_mb":     round(float64(mem.HeapInuse)/(1<<20), 1),
		"stack_mb":    round(float64(mem.StackInuse)/(1<<20), 1),
		"goroutines":  float64(goroutines),
		"queue_s":     round(queued.Seconds(), 3),
		"drain_s":     round(elapsed.Seconds(), 3),
	}
	return r, nil
}

// parallel runs f(0..n-1) on up to width goroutines and returns the first error.
func parallel(ctx context.Context, n, width int, f func(i int) error) error {
	next := atomic.Int64{}
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range min(width, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// raw makes the requests of a lock pair with bare go-zookeeper calls: an ephemeral-sequential
// create with a listing of the parent pipelined behind it (sent at the same time; go-zookeeper
// gives no way to order the two, so the listing may miss the new node, at the same cost), then a
// delete. sessions connections spread over paths each make pairs pairs.
func (b *bench) raw(ctx context.Context, name string, sessions, npaths, pairs, warmup int) (Result, error) {
	conns := make([]*zk.Conn, sessions)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range conns {
		c, err := rawConnect(ctx, b.servers, b.cfg.sessionTimeout)
		if err != nil {
			return Result{}, err
		}
		conns[i] = c
	}
	var requests atomic.Int64
	acl := zk.WorldACL(zk.PermAll)
	data := []byte{}
	rawPair := func(conn *zk.Conn, parent string) (time.Duration, error) {
		t0 := time.Now()
		type created struct {
			name string
			err  error
		}
		done := make(chan created, 1)
		requests.Add(3)
		go func() {
			n, err := conn.Create(parent+"/"+protectedName("lock-"), data, zk.FlagEphemeral|zk.FlagSequence, acl)
			done <- created{n, err}
		}()
		_, _, lerr := conn.Children(parent)
		cr := <-done
		if cr.err != nil {
			return 0, fmt.Errorf("create: %w", cr.err)
		}
		if lerr != nil {
			return 0, fmt.Errorf("children: %w", lerr)
		}
		if err := conn.Delete(cr.name, -1); err != nil {
			return 0, fmt.Errorf("delete: %w", err)
		}
		return time.Since(t0), nil
	}
	parents := make([]string, min(npaths, sessions))
	for i := range parents {
		parents[i] = b.path(name, "p"+strconv.Itoa(i))
		if err := mkdirs(b.admin, parents[i]); err != nil {
			return Result{}, err
		}
	}
	for range warmup {
		if _, err := rawPair(conns[0], parents[0]); err != nil {
			return Result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	cnt := b.counter()
	cnt.raw = requests.Load
	cnt.start()
	lat, elapsed, err := loops(sessions, pairs, func(i int) (time.Duration, error) {
		return rawPair(conns[i], parents[i%len(parents)])
	})
	if err != nil {
		return Result{}, err
	}
	srv, cli := cnt.deltas()
	r := newResult(name, "raw", sessions*pairs, elapsed, lat, srv, cli, cnt.m)
	if sessions > 1 {
		r.Extra = map[string]float64{"paths": float64(len(parents))}
	}
	return r, nil
}
