package faults

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit/zkenv"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/retry"
	"github.com/gocurator/curator/zktest"
)

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(runHelper(name))
	}
	// The outage matrix's cells mostly wait: run many at once unless -parallel says otherwise.
	flag.Set("test.parallel", "16")
	zkenv.Main(m)
}

var (
	soakDuration = flag.Duration("soak.duration", defaultSoakDuration(),
		"how long TestSoak injects faults (default 60s, or 2m when CI=true)")
	soakSeed = flag.Uint64("soak.seed", 0,
		"seed of TestSoak's fault injector; 0 takes one from the clock (the seed used is printed)")
	leaderKillRounds = flag.Int("leaderkill.rounds", 20, "how many times TestLeaderKillLoop kills the leader member")
)

func defaultSoakDuration() time.Duration {
	if os.Getenv("CI") == "true" {
		return 2 * time.Minute
	}
	return 60 * time.Second
}

// sessionTimeout is what every client asks for: the longest the members grant at the ensemble's
// 200ms tick. A client that loses its member is back on another within about a second
// (go-zookeeper pauses a second after each pass over the servers), and a leader election takes
// about half a second, so sessions survive member failures with room to spare on a busy machine.
const sessionTimeout = 4 * time.Second

// waitTimeout bounds every wait for something that should happen within a few session timeouts.
const waitTimeout = 30 * time.Second

// ensembleSize is the number of members of every test's ensemble.
const ensembleSize = 3

// startEnsemble starts the test's ensemble. When ZK_SERVERS names an external ensemble it skips
// the test with a message, as zktest.StartEnsemble does.
func startEnsemble(t testing.TB) *zktest.Ensemble {
	t.Helper()
	return zktest.StartEnsemble(t, ensembleSize)
}

// testContext returns a context that ends after d, or with the test.
func testContext(t testing.TB, d time.Duration) context.Context {
	return zkenv.Context(t, d)
}

// pollEvery is how often eventually and poll call their condition.
const pollEvery = 20 * time.Millisecond

// eventually polls cond every 20ms until it is true, and fails the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	zkenv.Eventually(t, d, pollEvery, what, cond)
}

// poll polls cond every 20ms until it is true or d has passed, and reports whether it became true.
func poll(d time.Duration, cond func() bool) bool {
	return zkenv.Poll(d, pollEvery, cond)
}

// states records a client's connection states in order, as Listen delivers them.
type states struct {
	mu   sync.Mutex
	list []framework.State
}

func newStates() *states { return &states{} }

func (s *states) add(st framework.State) {
	s.mu.Lock()
	s.list = append(s.list, st)
	s.mu.Unlock()
}

// mark returns the number of states so far, for since.
func (s *states) mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.list)
}

// since returns the states from index from on.
func (s *states) since(from int) []framework.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.list[min(from, len(s.list)):])
}

// session is one client under test, its recorded states and, if it connects through one, its
// EnsembleProxy.
type session struct {
	name   string
	c      *framework.Client
	ep     *zktest.EnsembleProxy // nil for a client that connects to the members directly
	states *states
	policy framework.ErrorPolicy
}

// clientConfig says how newSession connects a client.
type clientConfig struct {
	policy framework.ErrorPolicy
	proxy  bool // through an EnsembleProxy of its own, so that faults can target it alone
	member int  // with proxy and >= 0: connect to this member first (the others refuse until then)
	dialer zk.Dialer
}

// direct is the configuration of a client that connects to the members directly.
var direct = clientConfig{member: -1}

// proxied is the configuration of a client that connects through an EnsembleProxy of its own.
var proxied = clientConfig{proxy: true, member: -1}

// with returns cfg with the error policy p.
func (cfg clientConfig) with(p framework.ErrorPolicy) clientConfig {
	cfg.policy = p
	return cfg
}

// newSession starts a client of e as cfg says, waits until it is connected and closes it (and its
// proxy) at the test's end.
func newSession(t testing.TB, e *zktest.Ensemble, name string, cfg clientConfig) *session {
	t.Helper()
	s, err := openSession(e, name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

// openSession is newSession without a test: the caller must call close.
func openSession(e *zktest.Ensemble, name string, cfg clientConfig) (*session, error) {
	s := &session{name: name, states: newStates(), policy: cfg.policy}
	connect := e.ConnectString()
	if cfg.proxy {
		ep, err := e.NewProxy()
		if err != nil {
			return nil, err
		}
		s.ep = ep
		connect = ep.ConnectString()
		if cfg.member >= 0 {
			for i := range e.Size() {
				if i != cfg.member {
					ep.Proxy(i).Blackhole(true)
				}
			}
		}
	}
	opts := []framework.Option{
		framework.WithSessionTimeout(sessionTimeout),
		framework.WithConnectionTimeout(10 * time.Second),
		framework.WithRetryPolicy(retry.BoundedExponentialBackoff(100*time.Millisecond, time.Second, 10)),
		framework.WithErrorPolicy(cfg.policy),
	}
	if cfg.dialer != nil {
		opts = append(opts, framework.WithDialer(cfg.dialer))
	}
	c, err := framework.NewClient(connect, opts...)
	if err != nil {
		s.close()
		return nil, err
	}
	s.c = c
	c.Listen(s.states.add)
	if err := c.Start(); err != nil {
		s.close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := c.BlockUntilConnected(ctx); err != nil {
		s.close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if cfg.proxy && cfg.member >= 0 {
		for i := range e.Size() {
			s.ep.Proxy(i).Blackhole(false)
		}
	}
	return s, nil
}

func (s *session) close() {
	if s.c != nil {
		s.c.Close()
	}
	if s.ep != nil {
		s.ep.Close()
	}
}

// member returns the index of the member the session's client is connected to.
func (s *session) member(t testing.TB, e *zktest.Ensemble) int {
	t.Helper()
	var m int
	eventually(t, waitTimeout, s.name+" connected to a member", func() bool {
		sid := s.c.SessionID()
		if sid == 0 {
			return false
		}
		var err error
		m, err = e.SessionMember(sid)
		return err == nil
	})
	return m
}

// restartAll restarts every member of e that is not running, all at once, and waits until the
// ensemble is ready.
func restartAll(t testing.TB, e *zktest.Ensemble) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, e.Size())
	for i := range e.Size() {
		if !e.Running(i) {
			wg.Go(func() { errs[i] = e.Restart(i) })
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitReady(testContext(t, time.Minute)); err != nil {
		t.Fatal(err)
	}
}

// nodesUnder returns the paths of every znode under path (path itself excluded), except the
// parents that the recipes create as containers, whose names are in keep (their children are
// listed). A missing path has none.
func nodesUnder(ctx context.Context, c *framework.Client, path string, keep ...string) ([]string, error) {
	names, _, err := c.Children(ctx, path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		p := framework.JoinPath(path, n)
		below, err := nodesUnder(ctx, c, p, keep...)
		if err != nil {
			return nil, err
		}
		out = append(out, below...)
		if !slices.Contains(keep, n) {
			out = append(out, p)
		}
	}
	return out, nil
}

// noNodesLeft waits until no znode is left under any of the lock paths (the recipes' container
// parents aside), and fails the test if some still are after d. Nodes of sessions that a client
// gave up may outlive the client's giving up by a session timeout, hence the wait.
func noNodesLeft(t testing.TB, c *framework.Client, d time.Duration, paths ...string) {
	t.Helper()
	var left []string
	ok := poll(d, func() bool {
		left = left[:0]
		for _, p := range paths {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			nodes, err := nodesUnder(ctx, c, p, "leases", "locks")
			cancel()
			if err != nil {
				left = append(left, fmt.Sprintf("%s: %v", p, err))
				continue
			}
			left = append(left, nodes...)
		}
		return len(left) == 0
	})
	if !ok {
		t.Errorf("znodes left under the lock paths after %v: %v", d, left)
	}
}

// noPendingDeletes waits until none of the sessions has a guaranteed delete left to do.
func noPendingDeletes(t testing.TB, d time.Duration, sessions ...*session) {
	t.Helper()
	var left []string
	ok := poll(d, func() bool {
		left = left[:0]
		for _, s := range sessions {
			if n := s.c.PendingDeletes(); n > 0 {
				left = append(left, fmt.Sprintf("%s: %d", s.name, n))
			}
		}
		return len(left) == 0
	})
	if !ok {
		t.Errorf("guaranteed deletes still pending after %v: %v", d, left)
	}
}

// access says what a hold excludes.
type access int

const (
	exclusive access = iota // a mutex, a write lock: excludes every other hold of the path
	shared                  // a read lock: excludes the exclusive holds of the path
	counted                 // a semaphore lease: at most limit at once
)

// monitor watches the holds of every lock path in this process and records a violation when a
// hold begins while a hold that it excludes is live (its lease not ended): two holders at once.
type monitor struct {
	mu         sync.Mutex
	live       map[string]map[*holding]struct{}
	violations []string
}

// holding is one hold, from the return of Acquire until its holder stops using it.
type holding struct {
	who   string
	lease *recipes.Lease
	acc   access
	at    time.Time
}

func newMonitor() *monitor {
	return &monitor{live: map[string]map[*holding]struct{}{}}
}

// enter records that who holds the lock at path through lease, with the given access (limit is
// the semaphore's number of leases), checking at this moment every other live hold of the path.
func (m *monitor) enter(path, who string, acc access, limit int, lease *recipes.Lease) *holding {
	h := &holding{who: who, lease: lease, acc: acc, at: time.Now()}
	m.mu.Lock()
	defer m.mu.Unlock()
	set := m.live[path]
	if set == nil {
		set = map[*holding]struct{}{}
		m.live[path] = set
	}
	if lease.Err() == nil {
		var others []*holding
		for o := range set {
			if o.lease.Err() == nil {
				others = append(others, o)
			}
		}
		var clash []string
		switch acc {
		case exclusive:
			for _, o := range others {
				clash = append(clash, o.describe())
			}
		case shared:
			for _, o := range others {
				if o.acc == exclusive {
					clash = append(clash, o.describe())
				}
			}
		case counted:
			if len(others) >= limit {
				for _, o := range others {
					clash = append(clash, o.describe())
				}
			}
		}
		if len(clash) > 0 {
			m.violations = append(m.violations, fmt.Sprintf("%s: %s got a hold (token %d) while %s held",
				path, who, lease.Token(), strings.Join(clash, " and ")))
		}
	}
	set[h] = struct{}{}
	return h
}

func (h *holding) describe() string {
	return fmt.Sprintf("%s (token %d, since %s)", h.who, h.lease.Token(), h.at.Format("15:04:05.000"))
}

// leave records that the holder stopped using its hold.
func (m *monitor) leave(path string, h *holding) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.live[path], h)
}

// violation records a violation found elsewhere (by a fence, say).
func (m *monitor) violation(format string, args ...any) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.violations = append(m.violations, fmt.Sprintf(format, args...))
}

// Violations returns the violations recorded so far.
func (m *monitor) Violations() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.violations)
}

// check fails the test if any violation was recorded.
func (m *monitor) check(t testing.TB) {
	t.Helper()
	for _, v := range m.Violations() {
		t.Errorf("violation: %s", v)
	}
}

// createTrap is a dialer for a client under test that arms an EnsembleProxy to cut the
// connection right after the first create request whose path contains match: it looks at each
// request the client writes and arms the proxy just before that create goes out, so that exactly
// that create is cut, whatever creates the recipe makes before it.
type createTrap struct {
	match string

	mu    sync.Mutex
	ep    *zktest.EnsembleProxy // nil until attach
	armed chan struct{}         // closed once armed
	done  bool
	cut   <-chan struct{}
	seen  string // the path of the create it armed the proxy for
}

func newCreateTrap(match string) *createTrap {
	return &createTrap{match: match, armed: make(chan struct{})}
}

func (tr *createTrap) dial(network, addr string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, err
	}
	return &trapConn{Conn: c, tr: tr}, nil
}

// attach makes the trap arm ep; until then it lets every create pass.
func (tr *createTrap) attach(ep *zktest.EnsembleProxy) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.ep = ep
}

// cutDone returns the channel that the proxy closes once it has cut the create, or nil if the
// trap has not been sprung.
func (tr *createTrap) cutDone() <-chan struct{} {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.cut
}

// path returns the path of the create that the trap had cut.
func (tr *createTrap) path() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.seen
}

// see looks at one create request's path.
func (tr *createTrap) see(path string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.done || tr.ep == nil || !strings.Contains(path, tr.match) {
		return
	}
	tr.done = true
	tr.seen = path
	tr.cut = tr.ep.CutAfterNextCreate()
	close(tr.armed)
}

// trapConn is a client connection that shows the paths of its create requests to a createTrap.
// go-zookeeper writes each request with one Write: a length, the xid, the opcode, then (for a
// create) the path as a length-prefixed string. The first packet is the connect request.
type trapConn struct {
	net.Conn
	tr      *createTrap
	started bool
}

func (c *trapConn) Write(b []byte) (int, error) {
	if !c.started {
		c.started = true
	} else if len(b) >= 16 {
		switch binary.BigEndian.Uint32(b[8:12]) {
		case 1, 15, 19, 21: // create, create2, createContainer, createTTL
			if n := int(binary.BigEndian.Uint32(b[12:16])); n > 0 && 16+n <= len(b) {
				c.tr.see(string(b[16 : 16+n]))
			}
		}
	}
	return c.Conn.Write(b)
}
