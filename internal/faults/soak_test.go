package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/zktest"
)

// The kinds of fault the soak injects.
const (
	faultExpire = "expire" // a session expired by the ensemble
	faultCut    = "cut"    // a client's connections cut
	faultKill   = "kill"   // a member killed with SIGKILL, then restarted
)

var faultKinds = []string{faultExpire, faultCut, faultKill}

// minFaultsPerKind is how many faults of each kind the soak injects however short it is.
const minFaultsPerKind = 2

// injector injects faults at random moments chosen from its seed.
type injector struct {
	e        *zktest.Ensemble
	rng      *rand.Rand
	sessions []*session // targets of cuts
	expire   []*session // targets of expiries: those whose holds end at Suspended
	log      func(format string, args ...any)
	start    time.Time

	mu     sync.Mutex
	counts map[string]int
	leader int // kills of the leader member
	bag    []string
}

func (in *injector) next() string {
	if len(in.bag) == 0 {
		in.bag = slices.Clone(faultKinds)
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
	s := formatCounts(in.counts)
	if in.leader > 0 {
		s += fmt.Sprintf(" (kills of the leader=%d)", in.leader)
	}
	return s, sum(in.counts)
}

// run injects faults, one at a time, until d has passed and every kind has been injected
// minFaultsPerKind times, or ctx ends.
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

func (in *injector) inject(ctx context.Context, kind string) error {
	switch kind {
	case faultExpire:
		s := in.expire[in.rng.IntN(len(in.expire))]
		var sid int64
		if !poll(waitTimeout, func() bool { sid = s.c.SessionID(); return sid != 0 }) {
			return fmt.Errorf("%s has no session to expire", s.name)
		}
		begin := time.Now()
		ectx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := s.ep.ExpireSession(ectx, sid); err != nil {
			return fmt.Errorf("expiring the session of %s: %w", s.name, err)
		}
		in.log("%s fault: expired session 0x%x of %s (%.1fs)", in.at(), sid, s.name, time.Since(begin).Seconds())
	case faultCut:
		s := in.sessions[in.rng.IntN(len(in.sessions))]
		s.ep.CloseConnections()
		in.log("%s fault: cut the connection of %s", in.at(), s.name)
	case faultKill:
		victim := in.rng.IntN(in.e.Size())
		leader, err := in.e.Leader()
		isLeader := false
		if err == nil && in.rng.IntN(2) == 0 {
			victim, isLeader = leader, true
		} else {
			isLeader = err == nil && victim == leader
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
		down := time.Duration(200+in.rng.IntN(1300)) * time.Millisecond
		pause(ctx, down)
		if err := in.e.Restart(victim); err != nil {
			return err
		}
		if _, err := in.e.WaitReady(rctx); err != nil {
			return err
		}
		what := "a follower"
		if isLeader {
			what = "the leader"
			in.mu.Lock()
			in.leader++
			in.mu.Unlock()
		}
		in.log("%s fault: killed member %d (%s; member %d leads now), restarted it after %.1fs", in.at(), victim, what,
			newLeader, time.Since(begin).Seconds())
	}
	in.count(kind)
	return nil
}

// goleakOptions are the goroutines a test may leave while its ensemble runs: the waiters of the
// member processes it restarted.
var goleakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/gocurator/curator/zktest.(*member).start.func1"),
}

// TestSoak runs 8 sessions that take and release a mutex, a read-write lock and a semaphore
// while faults are injected at random moments, for -soak.duration, and checks that no two holders
// that exclude each other ever held at once, that every holder's fencing token was above its
// predecessors', that no znode is left under the lock paths, and that no goroutine is left.
func TestSoak(t *testing.T) {
	seed := *soakSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("soak: seed %d (replay with -soak.seed=%d), duration %v", seed, seed, *soakDuration)
	e := startEnsemble(t)
	base := goleak.IgnoreCurrent()

	admin := newSession(t, e, "admin", direct)
	ld := newLoad("/soak", seed)
	if err := ld.setup(testContext(t, waitTimeout), admin.c); err != nil {
		t.Fatal(err)
	}
	var sessions, standard []*session
	for i := range 8 {
		cfg := proxied
		if i >= 6 {
			// Two sessions keep their holds across connection losses; they are not expired, as
			// an expiry behind a partition ends their holds only after the server's.
			cfg = cfg.with(framework.SessionErrorPolicy)
		}
		s, err := openSession(e, fmt.Sprintf("s%d", i), cfg)
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s)
		if s.policy == framework.StandardErrorPolicy {
			standard = append(standard, s)
		}
	}
	closeAll := sync.OnceFunc(func() {
		for _, s := range sessions {
			s.close()
		}
	})
	t.Cleanup(closeAll)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	for i, s := range sessions {
		ld.start(ctx, i, s)
	}
	in := &injector{
		e:        e,
		rng:      rand.New(rand.NewPCG(seed, 0x50a1c)),
		sessions: sessions,
		expire:   standard,
		log:      t.Logf,
		start:    time.Now(),
		counts:   map[string]int{},
	}
	runErr := in.run(ctx, *soakDuration)
	elapsed := time.Since(in.start)
	stop()
	if !ld.wait(time.Minute) {
		t.Errorf("workers still running a minute after the soak ended")
	}
	if runErr != nil {
		t.Errorf("fault injection failed: %v", runErr)
	}

	noPendingDeletes(t, waitTimeout, sessions...)
	noNodesLeft(t, admin.c, 3*sessionTimeout+20*time.Second, ld.lockPaths()...)
	closeAll()
	admin.close()
	if err := goleak.Find(append([]goleak.Option{base}, goleakOptions...)...); err != nil {
		t.Errorf("goroutines left after the soak: %v", err)
	}

	ld.mon.check(t)
	faults, nFaults := in.summary()
	violations := len(ld.mon.Violations())
	t.Logf("soak: %v; acquisitions %d (%s); failed acquires %s; holds lost %s; fenced off %s; fence unreachable %s",
		elapsed.Round(time.Second), ld.stats.total.Load(), ld.stats.summary(ld.stats.acquired),
		ld.stats.summary(ld.stats.failed), ld.stats.summary(ld.stats.lost), ld.stats.summary(ld.stats.fencedOff),
		ld.stats.summary(ld.stats.unreachable))
	if ld.stats.total.Load() == 0 {
		t.Errorf("no acquisitions")
	}
	line := fmt.Sprintf("soak: seed=%d duration=%v acquisitions=%d faults=%d (%s) violations=%d",
		seed, elapsed.Round(time.Second), ld.stats.total.Load(), nFaults, faults, violations)
	if t.Failed() {
		line += " FAILED: replay with -soak.seed=" + fmt.Sprint(seed)
	}
	t.Log(line)
	fmt.Println(strings.TrimSpace(line))
}
