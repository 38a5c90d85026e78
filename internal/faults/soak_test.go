package faults

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// The kinds of fault the soak injects.
const (
	faultCut         = "cut"          // a client's connections cut; the session survives
	faultBlackhole   = "blackhole"    // nothing passes to or from a client for 1.5 session timeouts
	faultExpire      = "expire"       // a session expired by the ensemble
	faultCutCreate   = "cut-create"   // a client's connection cut right after its next create
	faultHoldDeliver = "hold-deliver" // the reply to a client's next request of a kind held, then delivered
	faultHoldDrop    = "hold-drop"    // held, then the connection dropped instead
	faultDelay       = "delay"        // every packet of a client delayed for a few seconds
	faultPause       = "pause"        // a child process paused (SIGSTOP) past its session timeout, then resumed
	faultKill        = "member-kill"  // a follower member killed with SIGKILL, then restarted
	faultLeaderKill  = "leader-kill"  // the leader member killed with SIGKILL, then restarted
	faultDNS         = "dns-down"     // a client's dials fail as a name that does not resolve while its session is lost
	faultBlackCreate = "black-create" // a client's network goes silent past its session timeout as it sends a create (a downgrade's, mostly)
)

var faultKinds = []string{faultCut, faultBlackhole, faultExpire, faultCutCreate, faultHoldDeliver, faultHoldDrop,
	faultDelay, faultPause, faultKill, faultLeaderKill, faultDNS, faultBlackCreate}

// faultBag is what the injector draws from, without replacement, before it refills: every kind
// once, and the quick faults that end connections and sessions (where a hold must end at once)
// more often, so that even the 2-minute soak strikes holders with them several times.
var faultBag = append(slices.Clone(faultKinds), faultCut, faultCut, faultExpire, faultBlackhole)

// minFaultsPerKind is how many faults of each kind the soak injects however short it is.
const minFaultsPerKind = 1

// goleakOptions are the goroutines a test may leave while its ensemble runs: the waiters of the
// member processes it restarted.
var goleakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/gocurator/curator/zktest.(*member).start.func1"),
}

// soakRun is what the soak records: the in-process sink of every worker, here and in the child
// processes.
type soakRun struct {
	hist    *history
	stats   *stats
	mon     *monitor
	leaders *leaderLedger
}

func (r *soakRun) begin(key, id string, call int64) { r.hist.begin(key, id, call) }
func (r *soakRun) op(rec opRecord)                  { r.hist.add(rec) }
func (r *soakRun) acquired(recipe string) {
	r.stats.add(r.stats.acquired, recipe)
	r.stats.total.Add(1)
}
func (r *soakRun) failed(recipe string) { r.stats.add(r.stats.failed, recipe) }
func (r *soakRun) lost(recipe string)   { r.stats.add(r.stats.lost, recipe) }
func (r *soakRun) violation(format string, args ...any) {
	r.mon.violation(format, args...)
}

// slotSink is the sink of a slot's workers: the run's, counting the slot's acquisitions too.
type slotSink struct {
	*soakRun
	sl *soakSlot
}

func (s slotSink) acquired(recipe string) {
	s.sl.acquired.Add(1)
	s.soakRun.acquired(recipe)
}

// dnsRecovery bounds how long a client takes, once its names resolve again, to have a new
// session and acquire again: a client that gave up getting a session never does.
const dnsRecovery = 30 * time.Second

// soakDialer is the dialer of a client in this process. While down is set, every dial fails as a
// dial to a name that does not resolve ("lookup zk: no such host"), as when DNS is not ready. An
// armed createTrigger fires as the client sends a create request, before it leaves the client.
type soakDialer struct {
	down    atomic.Bool
	trigger atomic.Pointer[createTrigger]
}

// createTrigger is armed on a soakDialer: the next create the client sends (of a downgrade's read
// node only, if downgrade is set) calls fire and goes no further, as if the network had swallowed it.
type createTrigger struct {
	downgrade bool
	fire      func()
}

func (d *soakDialer) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	if d.down.Load() {
		return nil, &net.OpError{Op: "dial", Net: network,
			Err: &net.DNSError{Err: "no such host", Name: "zk", IsNotFound: true}}
	}
	conn, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	return &soakConn{Conn: conn, d: d}, nil
}

// soakConn is a connection of a soakDialer: it fires the dialer's createTrigger.
type soakConn struct {
	net.Conn
	d *soakDialer
}

// downgradeName matches the name of a downgrade's read node in a create request, and no other
// create's: only a downgrade names its read node with a sequence (its write node's); a reader's
// node is sequential, so its create names none (_c_<uuid>-__READ__).
var downgradeName = regexp.MustCompile(`__READ__[0-9]{10}`)

func (sc *soakConn) Write(b []byte) (int, error) {
	// go-zookeeper writes one request per Write: length, xid, opcode, then the body.
	if t := sc.d.trigger.Load(); t != nil && len(b) >= 12 {
		switch binary.BigEndian.Uint32(b[8:12]) {
		case 1, 15, 19, 21: // create, create2, createContainer, createTTL
			if (!t.downgrade || downgradeName.Match(b)) && sc.d.trigger.CompareAndSwap(t, nil) {
				t.fire()
				return len(b), nil
			}
		}
	}
	return sc.Conn.Write(b)
}

// soakTarget is a client that faults can strike: one in this process (whose session a fresh one
// may replace) or a child process.
type soakTarget interface {
	name() string
	proxy() *zktest.EnsembleProxy
	sessionID() int64
	liveHolds() []*liveHold // nil for a child process
	process() *zktest.Process
}

// soakSlot is a client in this process. One that closes its client from a state listener on Lost
// is replaced by a fresh one.
type soakSlot struct {
	label       string
	e           *zktest.Ensemble
	cfg         clientConfig
	closeOnLost bool
	holds       *holdSet
	dial        *soakDialer  // the dialer of its clients
	acquired    atomic.Int64 // how many acquisitions its workers made

	mu       sync.Mutex
	s        *session
	replaced int
}

func (sl *soakSlot) open() error {
	s, err := openSession(sl.e, sl.label, sl.cfg)
	if err != nil {
		return err
	}
	if sl.closeOnLost {
		c := s.c
		c.Listen(func(st framework.State) {
			if st == framework.Lost {
				c.Close() // from the listener's goroutine
			}
		})
	}
	sl.mu.Lock()
	sl.s = s
	sl.mu.Unlock()
	return nil
}

func (sl *soakSlot) current() *session {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	return sl.s
}

func (sl *soakSlot) name() string                 { return sl.label }
func (sl *soakSlot) proxy() *zktest.EnsembleProxy { return sl.current().ep }
func (sl *soakSlot) sessionID() int64             { return sl.current().c.SessionID() }
func (sl *soakSlot) liveHolds() []*liveHold       { return sl.holds.snapshot() }
func (sl *soakSlot) process() *zktest.Process     { return nil }

// work runs the slot's workers until ctx ends, replacing a client that closed itself.
func (sl *soakSlot) work(ctx context.Context, run *soakRun, p soakPaths, seed uint64, log func(string, ...any)) {
	for gen := 0; ctx.Err() == nil; gen++ {
		s := sl.current()
		w := &soakWorker{name: fmt.Sprintf("%s.%d", sl.label, gen), c: s.c, p: p, sink: slotSink{run, sl}, mon: run.mon,
			leaders: run.leaders, holds: sl.holds}
		w.run(ctx, seed+uint64(gen), 2)
		if ctx.Err() != nil {
			return
		}
		// The listener closed the client: a fresh one replaces it.
		s.close()
		for ctx.Err() == nil {
			if err := sl.open(); err != nil {
				log("%s: replacing the closed client: %v", sl.label, err)
				pause(ctx, time.Second)
				continue
			}
			sl.mu.Lock()
			sl.replaced++
			sl.mu.Unlock()
			break
		}
	}
}

// soakChild is a client in a child process of the test binary.
type soakChild struct {
	label string
	ep    *zktest.EnsembleProxy
	cmd   *exec.Cmd
	pr    *zktest.Process
	sid   atomic.Int64
	bye   atomic.Bool
	wg    sync.WaitGroup
}

func (ch *soakChild) name() string                 { return ch.label }
func (ch *soakChild) proxy() *zktest.EnsembleProxy { return ch.ep }
func (ch *soakChild) sessionID() int64             { return ch.sid.Load() }
func (ch *soakChild) liveHolds() []*liveHold       { return nil }
func (ch *soakChild) process() *zktest.Process     { return ch.pr }

// startSoakChild starts a child that connects through an EnsembleProxy of its own and feeds its
// events to run.
func startSoakChild(t *testing.T, e *zktest.Ensemble, label string, policy framework.ErrorPolicy, p soakPaths, seed uint64, run *soakRun) (*soakChild, error) {
	ep, err := e.NewProxy()
	if err != nil {
		return nil, err
	}
	pol := "standard"
	if policy == framework.SessionErrorPolicy {
		pol = "session"
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), soakChildEnv+"="+label, soakChildConnect+"="+ep.ConnectString(),
		soakChildRoot+"="+p.root, soakChildPolicy+"="+pol, soakChildSeed+"="+fmt.Sprint(seed))
	ch := &soakChild{label: label, ep: ep, cmd: cmd}
	ch.pr = zktest.StartProcess(t, cmd)
	ch.wg.Go(func() {
		for line := range ch.pr.Lines() {
			var ev soakEvent
			if json.Unmarshal([]byte(line), &ev) != nil {
				continue
			}
			switch ev.K {
			case "begin":
				run.begin(ev.Key, ev.ID, ev.Call)
			case "op":
				if ev.Op != nil {
					run.op(*ev.Op)
				}
			case "acquired":
				run.acquired(ev.S)
			case "failed":
				run.failed(ev.S)
			case "lost":
				run.lost(ev.S)
			case "violation":
				run.violation("%s (child %s)", ev.S, label)
			case "sid":
				ch.sid.Store(ev.SID)
			case "bye":
				ch.bye.Store(true)
			}
		}
	})
	if !poll(waitTimeout, func() bool { return ch.sid.Load() != 0 }) {
		ch.stop(time.Second)
		return nil, fmt.Errorf("child %s did not connect within %v", label, waitTimeout)
	}
	return ch, nil
}

// stop asks the child to let go of everything and exit, kills it if it has not after d, and
// reports whether it exited by itself.
func (ch *soakChild) stop(d time.Duration) bool {
	ch.pr.Resume()
	ch.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.pr.Exited():
	case <-time.After(d):
	}
	ch.pr.Stop()
	ch.wg.Wait()
	ch.ep.Close()
	return ch.bye.Load()
}

// injector injects faults at random moments chosen from its seed, one at a time.
type injector struct {
	e        *zktest.Ensemble
	rng      *rand.Rand
	targets  []soakTarget
	children []soakTarget
	closers  []soakTarget // the clients that close themselves on Lost
	keepers  []*soakSlot  // the clients in this process that keep their client on Lost
	slots    []*soakSlot  // the clients in this process
	admin    *framework.Client
	paths    soakPaths
	rec      *soakRun
	log      func(format string, args ...any)
	start    time.Time
	wg       sync.WaitGroup // the checks of the holds of expired sessions

	mu     sync.Mutex
	counts map[string]int
	bag    []string
}

func (in *injector) next() string {
	if len(in.bag) == 0 {
		in.bag = slices.Clone(faultBag)
		in.rng.Shuffle(len(in.bag), func(i, j int) { in.bag[i], in.bag[j] = in.bag[j], in.bag[i] })
	}
	k := in.bag[0]
	in.bag = in.bag[1:]
	return k
}

// done reports whether every kind has been injected at least minFaultsPerKind times.
func (in *injector) done() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, k := range faultKinds {
		if in.counts[k] < minFaultsPerKind {
			return false
		}
	}
	return true
}

func (in *injector) count(kind string) {
	in.mu.Lock()
	in.counts[kind]++
	in.mu.Unlock()
}

func (in *injector) summary() (string, int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return formatCounts(in.counts), sum(in.counts)
}

// run injects faults until d has passed and every kind has been injected minFaultsPerKind
// times, or ctx ends.
func (in *injector) run(ctx context.Context, d time.Duration) error {
	for ctx.Err() == nil && (time.Since(in.start) < d || !in.done()) {
		pause(ctx, 300*time.Millisecond+time.Duration(in.rng.IntN(1500))*time.Millisecond)
		if ctx.Err() != nil {
			break
		}
		if err := in.inject(ctx, in.next()); err != nil {
			return err
		}
	}
	return nil
}

func (in *injector) at() string {
	return fmt.Sprintf("t+%5.1fs", time.Since(in.start).Seconds())
}

// lossBy checks, at deadline, that every hold in holds has ended: why (the server expired their
// session, or their connection dropped) came soon enough before it that they must have.
func (in *injector) lossBy(tg soakTarget, holds []*liveHold, deadline time.Time, why string) {
	if len(holds) == 0 {
		return
	}
	in.wg.Go(func() {
		time.Sleep(time.Until(deadline))
		for _, h := range holds {
			if h.alive() {
				in.rec.violation("%s: %s still held at %s, too long after %s", tg.name(), h.what,
					deadline.Format("15:04:05.000"), why)
			}
		}
	})
}

// aim returns a client in this process (under the standard policy only, if standardOnly) that
// holds something now, one that leads if any does, or nil if none holds anything: the faults that
// end sessions and connections strike it most of the time, so that a hold or a term that outlives its session or, under the standard policy, its
// connection is seen, not only when chance puts a fault on a holder.
func (in *injector) aim(standardOnly bool) *soakSlot {
	var holders, leaders []*soakSlot
	for _, sl := range in.slots {
		if standardOnly && sl.cfg.policy != framework.StandardErrorPolicy {
			continue
		}
		hs := sl.liveHolds()
		if len(hs) > 0 {
			holders = append(holders, sl)
		}
		if slices.ContainsFunc(hs, func(h *liveHold) bool { return h.leader && h.alive() }) {
			leaders = append(leaders, sl)
		}
	}
	switch {
	case len(leaders) > 0:
		return leaders[in.rng.IntN(len(leaders))]
	case len(holders) > 0:
		return holders[in.rng.IntN(len(holders))]
	}
	return nil
}

// target picks the client a fault of kind strikes.
func (in *injector) target(kind string) soakTarget {
	switch kind {
	case faultCut:
		// Three cuts in four at a holder under the standard policy (whose holds must end at once).
		if in.rng.IntN(4) > 0 {
			if sl := in.aim(true); sl != nil {
				return sl
			}
		}
	case faultExpire, faultBlackhole:
		switch in.rng.IntN(4) {
		case 0, 1: // half at a holder, a leader first
			if sl := in.aim(false); sl != nil {
				return sl
			}
		case 2: // a quarter at a client that closes itself on Lost
			if len(in.closers) > 0 {
				return in.closers[in.rng.IntN(len(in.closers))]
			}
		}
	}
	return in.targets[in.rng.IntN(len(in.targets))]
}

// suspendLimit is how soon after its connection is cut a hold under the standard error policy must
// have ended: the client hears the cut at once and is Suspended; a second, and slack for a loaded
// machine.
const suspendLimit = 1500 * time.Millisecond

// standardHolds returns the live holds of tg if it is a client in this process under the
// standard error policy, whose holds end as soon as its connection drops.
func (in *injector) standardHolds(tg soakTarget) []*liveHold {
	if sl, ok := tg.(*soakSlot); ok && sl.cfg.policy == framework.StandardErrorPolicy {
		return sl.liveHolds()
	}
	return nil
}

func (in *injector) inject(ctx context.Context, kind string) error {
	tg := in.target(kind)
	ep := tg.proxy()
	switch kind {
	case faultCut:
		holds := in.standardHolds(tg)
		ep.CloseConnections()
		// Under the standard policy a connection that drops ends every hold and term at once.
		in.lossBy(tg, holds, time.Now().Add(suspendLimit), "its connection was cut (standard error policy)")
		in.log("%s fault: cut the connections of %s (%d holds)", in.at(), tg.name(), len(holds))
	case faultBlackhole:
		holds := tg.liveHolds()
		begin := time.Now()
		ep.Blackhole(true)
		// A client hears nothing after begin: its session ends on the server no earlier than
		// a session timeout later, and its holds must end by then.
		in.lossBy(tg, holds, begin.Add(sessionTimeout+time.Second), "its session timed out in a black hole")
		pause(ctx, sessionTimeout*3/2)
		ep.Blackhole(false)
		in.log("%s fault: black-holed %s for %v", in.at(), tg.name(), sessionTimeout*3/2)
	case faultExpire:
		// The session and the proxy its client connects through are read together: a slot whose
		// client closed itself on Lost (an earlier expiry) gets a new client, and a new proxy.
		var sid int64
		if !poll(waitTimeout, func() bool {
			ep, sid = tg.proxy(), tg.sessionID()
			return sid != 0 && tg.proxy() == ep
		}) {
			return fmt.Errorf("%s has no session to expire", tg.name())
		}
		holds := tg.liveHolds()
		begin := time.Now()
		ectx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := ep.ExpireSession(ectx, sid); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("expiring the session of %s: %w", tg.name(), err)
		}
		in.lossBy(tg, holds, time.Now().Add(time.Second), "the server expired its session")
		in.log("%s fault: expired session 0x%x of %s (%.1fs)", in.at(), sid, tg.name(), time.Since(begin).Seconds())
	case faultCutCreate:
		holds := in.standardHolds(tg) // all made before the cut
		cut := ep.CutAfterNextCreate()
		select {
		case <-cut:
			in.lossBy(tg, holds, time.Now().Add(suspendLimit), "its connection was cut (standard error policy)")
			in.log("%s fault: cut the connection of %s right after a create", in.at(), tg.name())
		case <-time.After(waitTimeout):
			in.log("%s fault: %s made no create within %v to cut after", in.at(), tg.name(), waitTimeout)
		case <-ctx.Done():
			return nil
		}
	case faultHoldDeliver, faultHoldDrop:
		ops := []zktest.Op{zktest.OpCreate, zktest.OpDelete, zktest.OpGetChildren, zktest.OpGetData, zktest.OpSetData}
		op := ops[in.rng.IntN(len(ops))]
		d := time.Duration(300+in.rng.IntN(int(sessionTimeout*5/4/time.Millisecond))) * time.Millisecond
		mode := zktest.Deliver
		if kind == faultHoldDrop {
			mode = zktest.Drop
		}
		started := ep.HoldNextReply(op, d, mode)
		select {
		case <-started:
			var holds []*liveHold
			if mode == zktest.Drop {
				holds = in.standardHolds(tg) // all made before the drop
			}
			pause(ctx, d)
			in.lossBy(tg, holds, time.Now().Add(suspendLimit), "its connection was dropped (standard error policy)")
			in.log("%s fault: held the reply to a %v of %s for %v, then %v", in.at(), op, tg.name(), d, mode)
		case <-time.After(10 * time.Second):
			in.log("%s fault: %s made no %v within 10s (the hold stays armed)", in.at(), tg.name(), op)
		case <-ctx.Done():
			return nil
		}
	case faultDelay:
		dirs := []zktest.Direction{zktest.ToServer, zktest.ToClient, zktest.ToServer | zktest.ToClient}[in.rng.IntN(3)]
		d := time.Duration(20+in.rng.IntN(1500)) * time.Millisecond
		ep.Delay(dirs, d)
		pause(ctx, time.Duration(2000+in.rng.IntN(3000))*time.Millisecond)
		ep.Delay(zktest.ToServer|zktest.ToClient, 0)
		in.log("%s fault: delayed %v packets of %s by %v", in.at(), dirs, tg.name(), d)
	case faultBlackCreate:
		// The create leaves while the session still stands, but never arrives: the session
		// expires, and the create is answered, if ever, in a new session. A downgrade then must
		// not be granted next to the writer that got the lock meanwhile.
		sl := in.slots[in.rng.IntN(len(in.slots))]
		fired := make(chan *zktest.EnsembleProxy, 1)
		var holds []*liveHold
		trigger := func(downgrade bool) *createTrigger {
			return &createTrigger{downgrade: downgrade, fire: func() {
				holds = sl.liveHolds()
				ep := sl.proxy()
				ep.Blackhole(true)
				fired <- ep
			}}
		}
		var ep *zktest.EnsembleProxy
		what := "a downgrade's create"
		t := trigger(true)
		sl.dial.trigger.Store(t)
		select {
		case ep = <-fired:
		case <-time.After(20 * time.Second):
			// No downgrade: any create will do (unless the first trigger fired meanwhile).
			if t2 := trigger(false); sl.dial.trigger.CompareAndSwap(t, t2) {
				what, t = "a create", t2
			}
			select {
			case ep = <-fired:
			case <-time.After(10 * time.Second):
			case <-ctx.Done():
			}
		case <-ctx.Done():
		}
		if ep == nil {
			if sl.dial.trigger.CompareAndSwap(t, nil) {
				in.log("%s fault: %s made no create to black-hole", in.at(), sl.name())
				return nil
			}
			ep = <-fired // it fired as it was disarmed
		}
		in.lossBy(sl, holds, time.Now().Add(sessionTimeout+time.Second), "its session timed out in a black hole")
		lifted := make(chan struct{})
		if t.downgrade {
			in.wg.Go(func() { in.holdWriteAcross(ctx, lifted) })
		}
		pause(ctx, sessionTimeout*3/2)
		ep.Blackhole(false)
		close(lifted)
		in.log("%s fault: black-holed %s as it sent %s, for %v", in.at(), sl.name(), what, sessionTimeout*3/2)
	case faultDNS:
		// The session is lost while no dial can resolve the server's name, so the client's
		// first tries at a new session fail; once the name resolves again it must get a new
		// session and acquire again, however many tries failed.
		sl := in.keepers[in.rng.IntN(len(in.keepers))]
		var sid int64
		if !poll(waitTimeout, func() bool { sid = sl.sessionID(); return sid != 0 }) {
			return fmt.Errorf("%s has no session to lose", sl.name())
		}
		holds := sl.liveHolds()
		downAt := time.Now()
		sl.dial.down.Store(true)
		ectx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		err := sl.proxy().ExpireSession(ectx, sid)
		if err == nil {
			in.lossBy(sl, holds, time.Now().Add(time.Second), "the server expired its session")
			pause(ctx, time.Duration(2000+in.rng.IntN(3000))*time.Millisecond)
		}
		sl.dial.down.Store(false)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("expiring the session of %s: %w", sl.name(), err)
		}
		healed, before := time.Now(), sl.acquired.Load()
		in.log("%s fault: expired session 0x%x of %s while its dials failed as DNS for %.1fs", in.at(), sid, sl.name(),
			healed.Sub(downAt).Seconds())
		in.wg.Go(func() {
			ok := poll(dnsRecovery, func() bool {
				s := sl.sessionID()
				return ctx.Err() != nil || (s != 0 && s != sid && sl.acquired.Load() > before)
			})
			if !ok {
				in.rec.violation("%s: no new session and acquisition within %v after its server's name resolved again (session 0x%x, now 0x%x, state %v)",
					sl.name(), dnsRecovery, sid, sl.sessionID(), sl.current().c.State())
			}
		})
		ch := in.children[in.rng.IntN(len(in.children))]
		d := sessionTimeout*3/2 + time.Duration(in.rng.IntN(2000))*time.Millisecond
		if err := ch.process().Pause(); err != nil {
			return fmt.Errorf("pausing %s: %w", ch.name(), err)
		}
		pause(ctx, d)
		if err := ch.process().Resume(); err != nil {
			return fmt.Errorf("resuming %s: %w", ch.name(), err)
		}
		in.log("%s fault: paused %s for %v", in.at(), ch.name(), d)
	case faultKill, faultLeaderKill:
		leader, err := in.e.Leader()
		if err != nil {
			return err
		}
		victim := leader
		if kind == faultKill {
			victim = (leader + 1 + in.rng.IntN(in.e.Size()-1)) % in.e.Size()
		}
		begin := time.Now()
		if err := in.e.Kill(victim); err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		newLeader, err := in.e.WaitReady(rctx)
		if err != nil {
			return err
		}
		pause(ctx, time.Duration(200+in.rng.IntN(1300))*time.Millisecond)
		if err := in.e.Restart(victim); err != nil {
			return err
		}
		if _, err := in.e.WaitReady(rctx); err != nil {
			return err
		}
		in.log("%s fault: killed member %d (%s; member %d leads now), restarted it after %.1fs", in.at(), victim, kind,
			newLeader, time.Since(begin).Seconds())
	}
	in.count(kind)
	return nil
}

// holdWriteAcross takes the write lock of the soak's ReadWriteLock with the admin client: queued
// behind the write node of a downgrade whose create was black-holed, it is granted once that
// node's session expires, and it holds for two session timeouts after lifted closes, while the
// downgrade's create may be answered in a new session. A downgrade granted meanwhile holds next to a writer.
func (in *injector) holdWriteAcross(ctx context.Context, lifted <-chan struct{}) {
	path := in.paths.lock("rw")
	rw := recipes.NewReadWriteLock(in.admin, path)
	actx, cancel := context.WithTimeout(ctx, 3*sessionTimeout)
	l, err := rw.WriteLock().Acquire(actx)
	cancel()
	if err != nil {
		return
	}
	defer l.Release()
	h := in.rec.mon.enter(path, fmt.Sprintf("admin/write@%s", in.at()), exclusive, 1, l)
	defer in.rec.mon.leave(path, h)
	select {
	case <-lifted:
	case <-l.Done():
		return
	}
	select {
	case <-time.After(2 * sessionTimeout):
	case <-l.Done():
	}
}

// protectedScan lists the nodes under root and reports two nodes under one parent with one
// protected prefix (_c_<uuid>-): a protected create made twice.
func protectedScan(ctx context.Context, c *framework.Client, root string, keep []string, seen map[string]bool, run *soakRun) {
	nodes, err := nodesUnder(ctx, c, root, keep...)
	if err != nil {
		return
	}
	const prefixLen = len("_c_") + 36 + 1
	byPrefix := map[string][]string{}
	for _, n := range nodes {
		dir, name := n[:strings.LastIndexByte(n, '/')], n[strings.LastIndexByte(n, '/')+1:]
		if strings.HasPrefix(name, "_c_") && len(name) > prefixLen {
			k := dir + "/" + name[:prefixLen]
			byPrefix[k] = append(byPrefix[k], n)
		}
	}
	for k, ns := range byPrefix {
		if len(ns) > 1 && !seen[k] {
			seen[k] = true
			run.violation("two nodes under one protected prefix %s: %v", k, ns)
		}
	}
}

// TestSoak runs clients that take every recipe, in this process and in two child processes,
// under both error policies (two of them closing their client from a state listener on Lost, a
// fresh one replacing it), while faults of every kind strike at random moments, for
// -soak.duration. It checks that no two holders that exclude each other held at once (in this
// process, with a fence in ZooKeeper, and with porcupine over the counters that each exclusive
// hold and each leader increments), that holds end within a second of their session's expiry,
// that no node is left and no protected create made twice, and that no goroutine is left.
func TestSoak(t *testing.T) {
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("soak: seed %d (replay with -soak.seed=%d), duration %v", seed, seed, *soakDuration)
	e := startEnsemble(t)
	base := goleak.IgnoreCurrent()

	admin := newSession(t, e, "admin", direct)
	p := soakPaths{"/soak"}
	if err := p.setup(testContext(t, waitTimeout), admin.c); err != nil {
		t.Fatal(err)
	}
	run := &soakRun{hist: newHistory(), stats: newStats(), mon: newMonitor(), leaders: newLeaderLedger()}

	var slots []*soakSlot
	for i, sc := range []struct {
		policy      framework.ErrorPolicy
		closeOnLost bool
	}{
		{framework.StandardErrorPolicy, false},
		{framework.StandardErrorPolicy, false},
		{framework.StandardErrorPolicy, true},
		{framework.SessionErrorPolicy, false},
		{framework.SessionErrorPolicy, true},
	} {
		sl := &soakSlot{label: fmt.Sprintf("s%d", i), e: e, cfg: proxied.with(sc.policy), closeOnLost: sc.closeOnLost, holds: newHoldSet(),
			dial: &soakDialer{}}
		sl.cfg.dialer = sl.dial.dial
		if err := sl.open(); err != nil {
			t.Fatal(err)
		}
		slots = append(slots, sl)
	}
	// closeAll closes the clients and returns those whose Close has not returned within a
	// minute (a Close that hangs is a defect; the soak reports it and goes on).
	closeAll := sync.OnceValue(func() []string {
		var hung []string
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, sl := range slots {
			done := make(chan struct{})
			go func() {
				defer close(done)
				sl.current().close()
			}()
			wg.Go(func() {
				select {
				case <-done:
				case <-time.After(time.Minute):
					mu.Lock()
					hung = append(hung, sl.label)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return hung
	})
	t.Cleanup(func() { closeAll() })
	var children []*soakChild
	for i, policy := range []framework.ErrorPolicy{framework.StandardErrorPolicy, framework.SessionErrorPolicy} {
		ch, err := startSoakChild(t, e, fmt.Sprintf("child%d", i), policy, p, seed+uint64(100+i), run)
		if err != nil {
			t.Fatal(err)
		}
		children = append(children, ch)
	}
	stopChildren := sync.OnceValue(func() []string {
		var bad []string
		for _, ch := range children {
			if !ch.stop(time.Minute) {
				bad = append(bad, ch.label)
			}
		}
		return bad
	})
	t.Cleanup(func() { stopChildren() })

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var workers, background sync.WaitGroup
	for i, sl := range slots {
		workers.Go(func() { sl.work(ctx, run, p, seed+uint64(i)*1000, t.Logf) })
	}
	// The porcupine check of the windows that are complete, and the scan for protected
	// creates made twice, as the soak runs.
	seen := map[string]bool{}
	background.Go(func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			run.hist.checkReady(time.Now().UnixNano())
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			protectedScan(sctx, admin.c, p.lockRoot(), p.containers(), seen, run)
			cancel()
		}
	})

	var targets, childTargets []soakTarget
	var closers []soakTarget
	var keepers []*soakSlot
	for _, sl := range slots {
		targets = append(targets, sl)
		if sl.closeOnLost {
			closers = append(closers, sl)
		} else {
			keepers = append(keepers, sl)
		}
	}
	for _, ch := range children {
		targets = append(targets, ch)
		childTargets = append(childTargets, ch)
	}
	in := &injector{
		e:        e,
		rng:      rand.New(rand.NewPCG(seed, 0x50a1c)),
		targets:  targets,
		children: childTargets,
		closers:  closers,
		keepers:  keepers,
		slots:    slots,
		admin:    admin.c,
		paths:    p,
		rec:      run,
		log:      t.Logf,
		start:    time.Now(),
		counts:   map[string]int{},
	}
	runErr := in.run(ctx, *soakDuration)
	elapsed := time.Since(in.start)
	in.wg.Wait()
	stop()
	background.Wait()
	if !waitGroupWithin(&workers, time.Minute) {
		t.Errorf("workers still running a minute after the soak ended")
	}
	if bad := stopChildren(); len(bad) > 0 {
		t.Errorf("child processes %v did not let go and exit within a minute of being asked", bad)
	}
	if runErr != nil {
		t.Errorf("fault injection failed: %v", runErr)
	}

	var sessions []*session
	replaced := 0
	for _, sl := range slots {
		sessions = append(sessions, sl.current())
		replaced += sl.replaced
	}
	noPendingDeletes(t, waitTimeout, sessions...)
	noNodesLeft(t, admin.c, 3*sessionTimeout+20*time.Second, p.lockRoot())
	protectedScan(testContext(t, waitTimeout), admin.c, p.lockRoot(), p.containers(), seen, run)
	if hung := closeAll(); len(hung) > 0 {
		t.Errorf("Close of the clients of %v did not return within a minute", hung)
	}
	admin.close()
	if err := goleak.Find(append([]goleak.Option{base}, goleakOptions...)...); err != nil {
		t.Errorf("goroutines left after the soak: %v", err)
	}

	run.hist.finish()
	verdict, took, failures := run.hist.summary()
	for _, f := range failures {
		t.Errorf("porcupine: %s", f)
	}
	run.mon.check(t)
	faults, nFaults := in.summary()
	violations := len(run.mon.Violations()) + len(failures)
	t.Logf("soak: %v; failed acquires %s; holds lost %s; clients replaced after closing from a listener: %d",
		elapsed.Round(time.Second), run.stats.summary(run.stats.failed), run.stats.summary(run.stats.lost), replaced)
	if run.stats.total.Load() == 0 {
		t.Errorf("no acquisitions")
	}
	lines := []string{
		fmt.Sprintf("soak: seed=%d duration=%v violations=%d", seed, elapsed.Round(time.Second), violations),
		fmt.Sprintf("soak: acquisitions=%d (%s)", run.stats.total.Load(), run.stats.summary(run.stats.acquired)),
		fmt.Sprintf("soak: faults=%d (%s)", nFaults, faults),
		fmt.Sprintf("soak: porcupine: %s in %v", verdict, took.Round(time.Millisecond)),
	}
	if t.Failed() {
		lines = append(lines, "soak: FAILED: replay with -soak.seed="+fmt.Sprint(seed))
	}
	for _, l := range lines {
		t.Log(l)
		fmt.Println(l)
	}
}
