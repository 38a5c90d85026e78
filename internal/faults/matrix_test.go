package faults

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/retry"
	"github.com/gocurator/curator/zktest"
)

// The outage matrix: for each recipe, an outage of each kind strikes a client (the subject, which
// connects through a Proxy of its own) at each moment of an acquisition, under each error policy,
// while a rival client in another session competes for the same lock. Every cell checks that
// there are never two exclusive holders (in this process, and with a version-checked write to a
// fence znode in every critical section), that every Acquire and Release returns in time, and that
// no znode is left under the lock path once the subject is connected again.

const (
	// matrixSession is the session timeout of the matrix's clients.
	matrixSession = 1500 * time.Millisecond
	// matrixAcquire bounds each Acquire of a cell.
	matrixAcquire = 6 * time.Second
	// matrixSlack is how long after its context ends an Acquire, or after it is called a
	// Release, may take to return.
	matrixSlack = time.Second
	// rivalHold is how long the rival keeps a hold it got.
	rivalHold = 300 * time.Millisecond
)

// hold is one hold of any recipe: a lease, a semaphore's leases, a latch's or a selector's
// leadership.
type hold struct {
	who     string
	weight  int             // leases of a semaphore it counts for; 1 otherwise
	acc     access          // what it excludes
	lease   *recipes.Lease  // for the fence's token check; nil for latches and selectors
	ctx     context.Context // ends when the hold ends
	alive   func() bool
	release func() error
}

// describe names the holder and, for a lease, its node and token.
func (h *hold) describe() string {
	if h.lease == nil {
		return h.who
	}
	return fmt.Sprintf("%s (%s, token %d)", h.who, h.lease.Node(), h.lease.Token())
}

// taker takes holds of one recipe with one client.
type taker struct {
	acquire func(ctx context.Context) (*hold, error)
	close   func() // at the end of the cell
	// readLock is, for a write lock, the read lock of the same ReadWriteLock (to downgrade).
	readLock *recipes.InterProcessMutex
}

// recipeCase is one row of the matrix.
type recipeCase struct {
	name    string
	acc     access
	limit   int
	paths   func(base string) []string // where no node may be left
	subject func(c *framework.Client, base string) taker
	rival   func(c *framework.Client, base string) taker
	moments []moment
	// controlled adds a column without an outage, to tell a fault of the recipe from one of
	// its handling of outages.
	controlled bool
}

func leaseHold(who string, acc access, l *recipes.Lease) *hold {
	return &hold{who: who, weight: 1, acc: acc, lease: l, ctx: l.Context(),
		alive: func() bool { return l.Err() == nil }, release: l.Release}
}

func lockTaker(who string, acc access, acquire func(context.Context) (*recipes.Lease, error)) taker {
	return taker{acquire: func(ctx context.Context) (*hold, error) {
		l, err := acquire(ctx)
		if err != nil {
			return nil, err
		}
		return leaseHold(who, acc, l), nil
	}, close: func() {}}
}

func semTaker(who string, c *framework.Client, base string, qty int) taker {
	s := recipes.NewSemaphore(c, base, 2)
	return taker{acquire: func(ctx context.Context) (*hold, error) {
		ls, err := s.Acquire(ctx, qty)
		if err != nil {
			return nil, err
		}
		h := leaseHold(who, counted, ls[0])
		h.weight = len(ls)
		h.alive = func() bool {
			for _, l := range ls {
				if l.Err() != nil {
					return false
				}
			}
			return true
		}
		h.release = func() error {
			var errs []error
			for _, l := range ls {
				errs = append(errs, l.Release())
			}
			return errors.Join(errs...)
		}
		return h, nil
	}, close: func() {}}
}

func latchTaker(who string, c *framework.Client, base string) taker {
	l := recipes.NewLeaderLatch(c, base)
	var once sync.Once
	closeLatch := func() error {
		var err error
		once.Do(func() { err = l.Close() })
		return err
	}
	return taker{acquire: func(ctx context.Context) (*hold, error) {
		if err := l.Start(); err != nil {
			return nil, err
		}
		if err := l.Await(ctx); err != nil {
			closeLatch()
			return nil, err
		}
		return &hold{who: who, weight: 1, acc: exclusive, ctx: l.LeadershipContext(),
			alive: l.HasLeadership, release: closeLatch}, nil
	}, close: func() { closeLatch() }}
}

func selectorTaker(who string, c *framework.Client, base string) taker {
	leads := make(chan context.Context, 1)
	stop := make(chan struct{})
	var stopOnce, closeOnce sync.Once
	s := recipes.NewLeaderSelector(c, base, func(ctx context.Context) error {
		select {
		case leads <- ctx:
		default:
		}
		select {
		case <-ctx.Done():
		case <-stop:
		}
		return nil
	})
	closeSel := func() error {
		stopOnce.Do(func() { close(stop) })
		var err error
		closeOnce.Do(func() { err = s.Close() })
		return err
	}
	return taker{acquire: func(ctx context.Context) (*hold, error) {
		if err := s.Start(); err != nil {
			return nil, err
		}
		select {
		case lctx := <-leads:
			return &hold{who: who, weight: 1, acc: exclusive, ctx: lctx,
				alive: func() bool { return lctx.Err() == nil && s.HasLeadership() }, release: closeSel}, nil
		case <-ctx.Done():
			closeSel()
			return nil, ctx.Err()
		}
	}, close: func() { closeSel() }}
}

// moment is when the outage strikes.
type moment string

const (
	beforeCreate moment = "before-create" // before the subject's Acquire begins
	createReply  moment = "create-reply"  // after its first create, before the reply reaches it
	waiting      moment = "waiting"       // while it waits behind the rival
	atGrant      moment = "at-grant"      // as the rival releases and it is granted
	whileHolding moment = "holding"       // while it holds
	releasing    moment = "releasing"     // as it releases
	downgrading  moment = "downgrading"   // as a write holder takes the read lock
)

var allMoments = []moment{beforeCreate, createReply, waiting, atGrant, whileHolding, releasing}

// outageKind is what strikes the subject's connection.
type outageKind string

const (
	cutOutage       outageKind = "cut"       // the connection is closed; the session survives
	blackholeOutage outageKind = "blackhole" // nothing passes for 1.5 session timeouts
	expireOutage    outageKind = "expire"    // the server expires the session
	noOutage        outageKind = "none"      // nothing: the control of a row whose cells fail
)

var allOutages = []outageKind{cutOutage, blackholeOutage, expireOutage}

func matrixRecipes() []recipeCase {
	one := func(base string) []string { return []string{base} }
	mutex := func(who string, acc access, get func(*framework.Client, string) func(context.Context) (*recipes.Lease, error)) func(*framework.Client, string) taker {
		return func(c *framework.Client, base string) taker { return lockTaker(who, acc, get(c, base)) }
	}
	ipm := func(c *framework.Client, base string) func(context.Context) (*recipes.Lease, error) {
		return recipes.NewInterProcessMutex(c, base).Acquire
	}
	semMutex := func(c *framework.Client, base string) func(context.Context) (*recipes.Lease, error) {
		return recipes.NewSemaphoreMutex(c, base).Acquire
	}
	read := func(c *framework.Client, base string) func(context.Context) (*recipes.Lease, error) {
		return recipes.NewReadWriteLock(c, base).ReadLock().Acquire
	}
	write := func(c *framework.Client, base string) func(context.Context) (*recipes.Lease, error) {
		return recipes.NewReadWriteLock(c, base).WriteLock().Acquire
	}
	multi := func(c *framework.Client, base string) func(context.Context) (*recipes.Lease, error) {
		return recipes.NewMultiLockPaths(c, base+"/a", base+"/b").Acquire
	}
	sem := func(qty int) func(*framework.Client, string) taker {
		return func(c *framework.Client, base string) taker { return semTaker("subject", c, base, qty) }
	}
	semRival := func(qty int) func(*framework.Client, string) taker {
		return func(c *framework.Client, base string) taker { return semTaker("rival", c, base, qty) }
	}
	return []recipeCase{
		{name: "mutex", acc: exclusive, paths: one, subject: mutex("subject", exclusive, ipm), rival: mutex("rival", exclusive, ipm)},
		{name: "semaphore-mutex", acc: exclusive, paths: one, subject: mutex("subject", exclusive, semMutex), rival: mutex("rival", exclusive, semMutex)},
		{name: "semaphore-qty1", acc: counted, limit: 2, paths: one, subject: sem(1), rival: semRival(2)},
		{name: "semaphore-qty2", acc: counted, limit: 2, paths: one, subject: sem(2), rival: semRival(1)},
		{name: "read", acc: shared, paths: one, subject: mutex("subject", shared, read), rival: mutex("rival", exclusive, write)},
		{name: "write", acc: exclusive, paths: one, subject: mutex("subject", exclusive, write), rival: mutex("rival", exclusive, write)},
		{name: "downgrade", acc: exclusive, paths: one, rival: mutex("rival", exclusive, write),
			subject: func(c *framework.Client, base string) taker {
				rw := recipes.NewReadWriteLock(c, base)
				tk := lockTaker("subject", exclusive, rw.WriteLock().Acquire)
				tk.readLock = rw.ReadLock()
				return tk
			},
			moments: []moment{downgrading}, controlled: true},
		{name: "multilock", acc: exclusive, paths: func(base string) []string { return []string{base + "/a", base + "/b"} },
			subject: mutex("subject", exclusive, multi), rival: mutex("rival", exclusive, multi)},
		{name: "leader-latch", acc: exclusive, paths: one,
			subject: func(c *framework.Client, base string) taker { return latchTaker("subject", c, base) },
			rival:   func(c *framework.Client, base string) taker { return latchTaker("rival", c, base) }},
		{name: "leader-selector", acc: exclusive, paths: one,
			subject: func(c *framework.Client, base string) taker { return selectorTaker("subject", c, base) },
			rival:   func(c *framework.Client, base string) taker { return selectorTaker("rival", c, base) }},
	}
}

// TestOutageMatrix runs the matrix: recipes × moments × outages × error policies, one server per
// error policy, every cell in parallel with the others (raise -parallel to run more at once; the
// package's TestMain makes it 16 unless set).
func TestOutageMatrix(t *testing.T) {
	for _, policy := range []framework.ErrorPolicy{framework.StandardErrorPolicy, framework.SessionErrorPolicy} {
		pname := map[framework.ErrorPolicy]string{framework.StandardErrorPolicy: "standard", framework.SessionErrorPolicy: "session"}[policy]
		t.Run(pname, func(t *testing.T) {
			t.Parallel()
			srv := zktest.Start(t)
			for _, rc := range matrixRecipes() {
				moments := rc.moments
				if moments == nil {
					moments = allMoments
				}
				for _, mo := range moments {
					outages := allOutages
					if rc.controlled {
						outages = append([]outageKind{noOutage}, outages...)
					}
					for _, ok := range outages {
						t.Run(fmt.Sprintf("%s/%s/%s", rc.name, mo, ok), func(t *testing.T) {
							t.Parallel()
							for _, v := range runCell(t, srv, rc, mo, ok, policy, fmt.Sprintf("/matrix/%s/%s/%s/%s", pname, rc.name, mo, ok)) {
								t.Errorf("%s", v)
							}
						})
					}
				}
			}
		})
	}
}

// matrixClient starts a client of connect and waits until it is connected.
func matrixClient(t *testing.T, connect string, policy framework.ErrorPolicy) *framework.Client {
	t.Helper()
	return startedClient(t, connect, policy, matrixSession,
		retry.BoundedExponentialBackoff(50*time.Millisecond, 500*time.Millisecond, 20))
}

// cell is the state of one cell of the matrix.
type cell struct {
	t      *testing.T
	rc     recipeCase
	srv    *zktest.Server
	proxy  *zktest.Proxy
	subj   *framework.Client
	rival  *framework.Client
	admin  *framework.Client
	fence  string
	base   string
	kind   outageKind
	mu     sync.Mutex
	holds  map[*hold]bool
	wg     sync.WaitGroup
	stop   chan struct{}
	report []string
}

func (c *cell) violation(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.report = append(c.report, fmt.Sprintf(format, args...))
}

// conflicts returns the live holds that h excludes, or that exclude h.
func (c *cell) conflictsLocked(h *hold) []string {
	var out []string
	total := h.weight
	for o := range c.holds {
		if o == h || o.who == h.who || !o.alive() {
			continue
		}
		switch {
		case h.acc == counted && o.acc == counted:
			total += o.weight
			if total > c.rc.limit {
				out = append(out, o.describe())
			}
		case h.acc == shared && o.acc == shared:
		default:
			out = append(out, o.describe())
		}
	}
	return out
}

// use registers the hold and checks it until it ends or the cell stops: in this process against
// the other holds, and in ZooKeeper with a fence written under a version check.
func (c *cell) use(client *framework.Client, h *hold) {
	c.mu.Lock()
	c.holds[h] = true
	cl := c.conflictsLocked(h)
	others := make([]*hold, 0, len(c.holds))
	for o := range c.holds {
		if o != h && o.lease != nil {
			others = append(others, o)
		}
	}
	c.mu.Unlock()
	if len(cl) > 0 && h.alive() {
		// Say which nodes still exist, to tell a node deleted under its live lease.
		var exist []string
		for _, o := range append(others, h) {
			if o.lease == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			ok, _, err := c.admin.Exists(ctx, o.lease.Node())
			cancel()
			exist = append(exist, fmt.Sprintf("%s exists=%v%s", o.lease.Node(), ok, errSuffix(err)))
		}
		c.violation("%s got a hold while %v held; nodes: %v", h.describe(), cl, exist)
	}
	c.wg.Go(func() {
		defer func() {
			c.mu.Lock()
			delete(c.holds, h)
			c.mu.Unlock()
		}()
		f := fence{c.fence}
		for n := 0; ; n++ {
			select {
			case <-h.ctx.Done():
				return
			case <-c.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			c.mu.Lock()
			if cl := c.conflictsLocked(h); len(cl) > 0 && h.alive() {
				c.report = append(c.report, fmt.Sprintf("%s holds while %v hold", h.who, cl))
			}
			c.mu.Unlock()
			if h.acc == counted {
				continue // two holds of a semaphore may share the fence
			}
			id := fmt.Sprintf("%s#%d", h.who, n)
			c.fenceCheck(client, f, id, h)
		}
	})
}

// fenceCheck reads the fence, checks the hold's token against it, and writes it back under a
// version check: another holder writing in between shows as a BadVersion.
func (c *cell) fenceCheck(client *framework.Client, f fence, id string, h *hold) {
	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Second)
	defer cancel()
	v, st, err := f.read(ctx, client)
	if err != nil {
		return
	}
	var tok int64
	if h.lease != nil {
		tok = h.lease.Token()
	}
	// (Not checked against r: a writer that downgrades holds a read lock with a later token.)
	if tok > 0 && h.acc == exclusive && tok < v.w && h.alive() {
		c.violation("%s: token %d below the last writer's %d (%s)", id, tok, v.w, v.id)
	}
	if tok > 0 && h.acc == shared && tok < v.w && h.alive() {
		c.violation("%s: reader token %d below the last writer's %d (%s)", id, tok, v.w, v.id)
	}
	time.Sleep(20 * time.Millisecond) // the window in which another holder would show
	next := fenceValue{w: v.w, r: v.r, n: v.n + 1, id: id}
	if h.acc == exclusive {
		next.w = max(v.w, tok)
	} else {
		next.r = max(v.r, tok)
	}
	_, err = client.Set(ctx, f.path, next.bytes(), st.Version)
	if errors.Is(err, zk.ErrBadVersion) && h.acc == exclusive {
		now, _, rerr := f.read(ctx, client)
		if rerr == nil && now.id != id && !strings.HasPrefix(now.id, h.who+"#") && h.alive() {
			c.violation("%s: the fence changed under an exclusive holder (written by %s)", id, now.id)
		}
	}
}

// acquire calls tk.acquire with a context of matrixAcquire and checks that it returns in time.
func (c *cell) acquire(who string, tk taker) (*hold, error) {
	ctx, cancel := context.WithTimeout(context.Background(), matrixAcquire)
	defer cancel()
	h, err := tk.acquire(ctx)
	if late := time.Since(deadlineOf(ctx)); late > matrixSlack {
		c.violation("%s: Acquire returned %v after its context ended (%v)", who, late.Round(time.Millisecond), err)
	}
	return h, err
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// release releases h and checks that it returns in time and without an unexpected error.
func (c *cell) release(h *hold) {
	begin := time.Now()
	err := h.release()
	if took := time.Since(begin); took > matrixSlack {
		c.violation("%s: Release took %v (%v)", h.who, took.Round(time.Millisecond), err)
	}
	if err != nil && !errors.Is(err, recipes.ErrLockLost) && !errors.Is(err, recipes.ErrNotLeader) {
		c.violation("%s: Release: %v", h.who, err)
	}
}

// strike starts the outage and returns once it has begun; the returned channel is closed once it
// is over.
func (c *cell) strike() <-chan struct{} {
	done := make(chan struct{})
	switch c.kind {
	case noOutage:
		close(done)
	case cutOutage:
		c.proxy.CloseConnections()
		close(done)
	case blackholeOutage:
		c.proxy.Blackhole(true)
		go func() {
			defer close(done)
			time.Sleep(matrixSession * 3 / 2) // the length of the outage
			c.proxy.Blackhole(false)
		}()
	case expireOutage:
		sid := c.subj.SessionID()
		c.proxy.Blackhole(true)
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			if err := c.proxy.ExpireSession(ctx, c.srv, sid); err != nil {
				c.violation("ExpireSession: %v", err)
			}
		}()
	}
	return done
}

// countNodes counts the nodes under the cell's lock paths.
func (c *cell) countNodes() int {
	n := 0
	for _, p := range c.rc.paths(c.base) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		nodes, _ := nodesUnder(ctx, c.admin, p, "leases", "locks")
		cancel()
		n += len(nodes)
	}
	return n
}

// rivalRound has the rival take a hold, use it for rivalHold and release it, in the background.
func (c *cell) rivalRound(tk taker) {
	c.wg.Go(func() {
		h, err := c.acquire("rival", tk)
		if err != nil {
			return
		}
		c.use(c.rival, h)
		select {
		case <-time.After(rivalHold):
		case <-c.stop:
		}
		c.release(h)
	})
}

// runCell runs one cell and returns the violations it found (a znode left behind fails t itself).
func runCell(t *testing.T, srv *zktest.Server, rc recipeCase, mo moment, kind outageKind, policy framework.ErrorPolicy, base string) []string {
	c := &cell{t: t, rc: rc, srv: srv, base: base, kind: kind, fence: base + "-fence",
		holds: map[*hold]bool{}, stop: make(chan struct{})}
	c.proxy = srv.Proxy(t)
	c.admin = matrixClient(t, srv.ConnectString(), policy)
	c.subj = matrixClient(t, c.proxy.Addr(), policy)
	c.rival = matrixClient(t, srv.ConnectString(), policy)
	if err := (fence{c.fence}).create(testContext(t, waitTimeout), c.admin); err != nil {
		t.Fatal(err)
	}
	subj := rc.subject(c.subj, base)
	rival := rc.rival(c.rival, base)
	defer subj.close()
	defer rival.close()

	var outage <-chan struct{}
	var subjHold *hold
	var extra []*hold // more holds of the subject, released first at the end
	subjAcquire := func() {
		h, err := c.acquire("subject", subj)
		if err == nil {
			subjHold = h
			c.use(c.subj, h)
		}
	}
	switch mo {
	case beforeCreate:
		outage = c.strike()
		c.rivalRound(rival)
		subjAcquire()
	case createReply:
		started := c.proxy.HoldNextReply(zktest.OpCreate, waitTimeout, zktest.Deliver)
		done := make(chan struct{})
		go func() {
			defer close(done)
			subjAcquire()
		}()
		select {
		case <-started:
			outage = c.strike()
			c.rivalRound(rival)
		case <-done:
			c.violation("the subject's Acquire returned before its create was answered")
		case <-time.After(waitTimeout):
			c.violation("the subject made no create")
		}
		<-done
	case waiting, atGrant:
		rh, err := c.acquire("rival", rival)
		if err != nil {
			t.Fatalf("rival: %v", err)
		}
		c.use(c.rival, rh)
		before := c.countNodes()
		done := make(chan struct{})
		go func() {
			defer close(done)
			subjAcquire()
		}()
		if !poll(waitTimeout, func() bool { return c.countNodes() > before }) {
			c.violation("the subject never queued behind the rival")
		}
		if mo == waiting {
			outage = c.strike()
			c.release(rh)
		} else {
			c.release(rh)
			outage = c.strike()
		}
		<-done
	case whileHolding:
		subjAcquire()
		if subjHold == nil {
			t.Fatal("the subject could not acquire before the outage")
		}
		outage = c.strike()
		c.rivalRound(rival)
		select {
		case <-subjHold.ctx.Done():
		case <-outage:
		}
	case releasing:
		subjAcquire()
		if subjHold == nil {
			t.Fatal("the subject could not acquire before the outage")
		}
		outage = c.strike()
		c.release(subjHold)
		subjHold = nil
		c.rivalRound(rival)
	case downgrading:
		subjAcquire()
		if subjHold == nil {
			t.Fatal("the subject could not take the write lock before the outage")
		}
		wl := subjHold.lease
		outage = c.strike()
		c.rivalRound(rival)
		rl := subj.readLock
		type result struct {
			l   *recipes.Lease
			err error
		}
		res := make(chan result, 1)
		issued := time.Now()
		go func() {
			l, err := rl.Acquire(context.WithoutCancel(wl.Context()))
			res <- result{l, err}
		}()
		select {
		case r := <-res:
			var node string
			if r.l != nil {
				node = r.l.Node()
			}
			t.Logf("downgrade: read Acquire returned after %v: %v %s; the write lease's Err then: %v",
				time.Since(issued).Round(time.Millisecond), r.err, node, wl.Err())
			if r.err == nil {
				h := leaseHold("subject", shared, r.l)
				c.use(c.subj, h)
				extra = append(extra, h)
			}
		case <-time.After(matrixAcquire + matrixSlack):
			c.violation("the downgrade's read Acquire did not return within %v", matrixAcquire+matrixSlack)
		}
	}
	<-outage
	// Let the rival compete for a while after the outage, then end every hold.
	time.Sleep(rivalHold)
	for _, h := range extra {
		c.release(h)
	}
	if subjHold != nil {
		c.release(subjHold)
	}
	close(c.stop)
	if !waitGroupWithin(&c.wg, waitTimeout) {
		c.violation("the holders did not stop within %v", waitTimeout)
	}
	subj.close()
	rival.close()
	if err := c.subj.BlockUntilConnected(testContext(t, waitTimeout)); err != nil {
		c.violation("the subject did not reconnect: %v", err)
	}
	noNodesLeft(t, c.admin, 3*matrixSession+2*time.Second, rc.paths(base)...)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.report
}

// TestMatrixChecksCatchTwoHolders shows that a cell's checks catch two exclusive holders: the
// subject and the rival take a semaphore of 2 leases as if it were a mutex. Both the check in
// this process and the fence in ZooKeeper must report it.
func TestMatrixChecksCatchTwoHolders(t *testing.T) {
	srv := zktest.Start(t)
	broken := recipeCase{name: "broken", acc: exclusive, paths: func(base string) []string { return []string{base} },
		subject: func(c *framework.Client, base string) taker {
			s := recipes.NewSemaphore(c, base, 2)
			return lockTaker("subject", exclusive, func(ctx context.Context) (*recipes.Lease, error) { return oneLease(s.Acquire(ctx, 1)) })
		},
		rival: func(c *framework.Client, base string) taker {
			s := recipes.NewSemaphore(c, base, 2)
			return lockTaker("rival", exclusive, func(ctx context.Context) (*recipes.Lease, error) { return oneLease(s.Acquire(ctx, 1)) })
		},
	}
	report := runCell(t, srv, broken, whileHolding, noOutage, framework.SessionErrorPolicy, "/matrix-check")
	var local, fenced int
	for _, v := range report {
		switch {
		case strings.Contains(v, " while [subject") || strings.Contains(v, " while [rival"):
			local++
		case strings.Contains(v, "the fence changed") || strings.Contains(v, "below the last writer"):
			fenced++
		}
	}
	t.Logf("%d violations: %d in this process, %d by the fence", len(report), local, fenced)
	if local == 0 || fenced == 0 {
		t.Errorf("violations in this process %d, by the fence %d; want both above 0:\n%s", local, fenced, strings.Join(report, "\n"))
	}
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

// waitGroupWithin waits for wg for up to d and reports whether it finished.
func waitGroupWithin(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
