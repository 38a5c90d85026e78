package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// This file is the soak's independent check: every critical section of an exclusive lock, and
// every term of a leader, is a read-modify-write of a counter znode, recorded with its call and
// return times and its outcome; porcupine (an independent linearizability checker) checks the
// history of each counter against a model in which each critical section is one atomic
// fetch-and-increment and a refused write is a no-op. Two holders in at once that both reached
// the store make the history non-linearizable.

// counterValue is a counter znode's data: the count, the highest fencing token that wrote it and
// the id of the critical section that wrote it.
type counterValue struct {
	v, t int64
	id   string
}

func (c counterValue) bytes() []byte { return fmt.Appendf(nil, "v=%d t=%d id=%s", c.v, c.t, c.id) }

func parseCounter(b []byte) (counterValue, error) {
	var c counterValue
	if _, err := fmt.Sscanf(string(b), "v=%d t=%d id=%s", &c.v, &c.t, &c.id); err != nil {
		return c, fmt.Errorf("counter data %q: %w", b, err)
	}
	return c, nil
}

// opKind is the outcome of a critical section's read-modify-write.
type opKind string

const (
	opApplied opKind = "applied" // the conditional write was applied
	opRefused opKind = "refused" // the counter held a higher token than the hold's: nothing written
	opUnknown opKind = "unknown" // the write may or may not have been applied
	opNone    opKind = "none"    // nothing was written (the read failed, or the hold ended first)
)

// opRecord is one critical section's read-modify-write of the counter of Key.
type opRecord struct {
	Key    string `json:"key"`
	ID     string `json:"id"`
	Token  int64  `json:"tok"`
	Call   int64  `json:"call"` // Unix nanoseconds
	Return int64  `json:"ret"`
	Kind   opKind `json:"kind"`
	Read   int64  `json:"read"` // the count it read (for applied and unknown)
	// Ended says the hold had ended (lease or leadership) when the operation returned: a
	// refused write is excused only then.
	Ended bool `json:"ended"`
	// ConnErr says an unknown outcome came from a connection-level error: the write may never
	// have been applied, with no fault of the lock.
	ConnErr bool `json:"connerr"`
}

func (op opRecord) String() string {
	return fmt.Sprintf("%s tok=%d %s read=%d ended=%v connerr=%v [%s, %s]", op.ID, op.Token, op.Kind, op.Read,
		op.Ended, op.ConnErr, time.Unix(0, op.Call).Format("15:04:05.000"), time.Unix(0, op.Return).Format("15:04:05.000"))
}

// counterState is the model's state: the count and the highest token that wrote it, unknown
// (known false) until the first applied write of a window whose start state is unknown.
type counterState struct {
	known bool
	v, t  int64
}

// counterModel is the sequential specification of a counter under an exclusive lock, starting at
// start: a critical section is one atomic fetch-and-increment by a holder whose token is at least
// the last writer's; a refused write is a no-op, legal only for a hold that had ended (fenced off)
// and only once a higher token has written; an unknown outcome is either.
func counterModel(start counterState) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{start} },
		Step: func(state, _, output any) []any {
			s := state.(counterState)
			op := output.(opRecord)
			var next []any
			apply := func() {
				if !s.known || (op.Read == s.v && op.Token >= s.t) {
					next = append(next, counterState{known: true, v: op.Read + 1, t: op.Token})
				}
			}
			switch op.Kind {
			case opApplied:
				apply()
			case opRefused:
				if op.Ended && (!s.known || s.t > op.Token) {
					next = append(next, s)
				}
			case opUnknown:
				apply()
				if op.Ended || op.ConnErr {
					next = append(next, s)
				}
			case opNone:
				next = append(next, s)
			}
			return next
		},
		DescribeOperation: func(_, output any) string { return output.(opRecord).String() },
	}
	return nm.ToModel()
}

// checkCounter checks ops (one counter's) with porcupine, starting at start, for at most
// timeout. An unknown outcome's write may be applied until unknownSlack after it returned: its
// return time is moved that far.
func checkCounter(start counterState, ops []opRecord, timeout time.Duration) porcupine.CheckResult {
	hist := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		hist = append(hist, porcupine.Operation{Input: op.Token, Call: op.Call, Output: op, Return: effectiveReturn(op)})
	}
	return porcupine.CheckOperationsTimeout(counterModel(start), hist, timeout)
}

// unknownSlack is how long after a write with an unknown outcome returned it may still be
// applied: a request that reached a member before its connection was lost is committed within an
// election and a session timeout.
const unknownSlack = int64(2*sessionTimeout + 5*time.Second)

func effectiveReturn(op opRecord) int64 {
	if op.Kind == opUnknown {
		return op.Return + unknownSlack
	}
	return op.Return
}

// history collects the counters' operations per key and checks them with porcupine in windows
// as they become complete, so that a long soak keeps only a bounded history.
type history struct {
	timeout   time.Duration // bound of each porcupine check
	minWindow int           // operations of a key kept before a window is cut
	lag       int64         // a window ends at least this long before now (a paused process's late reports)

	mu       sync.Mutex
	keys     map[string]*keyHistory
	ops      int // operations checked
	windows  int
	took     time.Duration
	failures []string
}

type keyHistory struct {
	ops      []opRecord
	inflight map[string]int64 // id -> call time, of operations begun and not yet recorded
	start    counterState
}

func newHistory() *history {
	return &history{timeout: 30 * time.Second, minWindow: 400, lag: int64(30 * time.Second), keys: map[string]*keyHistory{}}
}

func (h *history) key(k string) *keyHistory {
	kh := h.keys[k]
	if kh == nil {
		kh = &keyHistory{inflight: map[string]int64{}}
		h.keys[k] = kh
	}
	return kh
}

// begin records that the operation id on key k was called at call.
func (h *history) begin(k, id string, call int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.key(k).inflight[id] = call
}

// add records a finished operation.
func (h *history) add(op opRecord) {
	h.mu.Lock()
	defer h.mu.Unlock()
	kh := h.key(op.Key)
	delete(kh.inflight, op.ID)
	if op.Kind != opNone {
		kh.ops = append(kh.ops, op)
	}
}

// checkReady checks, for each key with at least minWindow operations, the longest prefix (in call
// order) that ends before every operation still in flight, before now less the lag, and before
// the next operation's call.
func (h *history) checkReady(now int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, kh := range h.keys {
		if len(kh.ops) < h.minWindow {
			continue
		}
		limit := now - h.lag
		for _, c := range kh.inflight {
			limit = min(limit, c)
		}
		sort.Slice(kh.ops, func(i, j int) bool { return kh.ops[i].Call < kh.ops[j].Call })
		cut := 0
		var maxRet int64
		for i, op := range kh.ops {
			if i > 0 && maxRet < op.Call && maxRet < limit {
				cut = i
			}
			maxRet = max(maxRet, effectiveReturn(op))
		}
		if cut >= h.minWindow/2 {
			h.checkLocked(k, kh, cut)
		}
	}
}

// finish checks every operation left.
func (h *history) finish() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, kh := range h.keys {
		sort.Slice(kh.ops, func(i, j int) bool { return kh.ops[i].Call < kh.ops[j].Call })
		if len(kh.ops) > 0 {
			h.checkLocked(k, kh, len(kh.ops))
		}
		if len(kh.inflight) > 0 {
			h.failures = append(h.failures, fmt.Sprintf("%s: %d operations never reported their outcome", k, len(kh.inflight)))
		}
	}
}

// checkLocked checks the first n operations of kh and drops them, carrying the state on.
func (h *history) checkLocked(k string, kh *keyHistory, n int) {
	window := slices.Clone(kh.ops[:n])
	kh.ops = slices.Delete(kh.ops, 0, n)
	begin := time.Now()
	res := checkCounter(kh.start, window, h.timeout)
	h.took += time.Since(begin)
	h.ops += len(window)
	h.windows++
	switch res {
	case porcupine.Ok:
		kh.start = endState(kh.start, window)
	case porcupine.Illegal:
		h.failures = append(h.failures, fmt.Sprintf("%s: the history of %d operations from %s is not linearizable: two holders at once reached the counter:%s",
			k, len(window), time.Unix(0, window[0].Call).Format("15:04:05.000"), describeOps(window)))
		kh.start = counterState{}
	default:
		h.failures = append(h.failures, fmt.Sprintf("%s: porcupine could not decide within %v on %d operations (%s)",
			k, h.timeout, len(window), res))
		kh.start = counterState{}
	}
}

// describeOps lists the operations around those that were not applied cleanly, or the last few.
func describeOps(ops []opRecord) string {
	var b strings.Builder
	shown := 0
	for i, op := range ops {
		if op.Kind == opApplied && !(i+1 < len(ops) && ops[i+1].Kind != opApplied) && !(i > 0 && ops[i-1].Read >= op.Read) {
			continue
		}
		if shown++; shown > 40 {
			b.WriteString("\n\t...")
			break
		}
		fmt.Fprintf(&b, "\n\t%s", op)
	}
	return b.String()
}

// endState is the state after a window that porcupine found linearizable: the count moved by
// its applied writes, the token that of the highest. A window with an unknown outcome leaves the
// state unknown.
func endState(start counterState, window []opRecord) counterState {
	s := start
	n := int64(0)
	minRead := int64(-1)
	for _, op := range window {
		switch op.Kind {
		case opUnknown:
			return counterState{}
		case opApplied:
			n++
			s.t = max(s.t, op.Token)
			if minRead < 0 || op.Read < minRead {
				minRead = op.Read
			}
		}
	}
	if n == 0 {
		return s
	}
	if !s.known {
		return counterState{known: true, v: minRead + n, t: s.t}
	}
	s.v += n
	return s
}

// summary returns porcupine's verdict, the time it took, and its failures.
func (h *history) summary() (verdict string, took time.Duration, failures []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	verdict = fmt.Sprintf("linearizable (%d operations in %d windows)", h.ops, h.windows)
	if len(h.failures) > 0 {
		verdict = fmt.Sprintf("NOT LINEARIZABLE or undecided (%d failures; %d operations in %d windows)", len(h.failures), h.ops, h.windows)
	}
	return verdict, h.took, slices.Clone(h.failures)
}

// TestSoakCheckerCatchesViolation shows that the porcupine check is not vacuous: histories in
// which two holders were in at once and both reached the counter, or a live holder was refused,
// are reported, and histories of proper holders pass.
func TestSoakCheckerCatchesViolation(t *testing.T) {
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	op := func(id string, tok, call, ret int64, kind opKind, read int64, ended, connErr bool) opRecord {
		return opRecord{Key: "k", ID: id, Token: tok, Call: ms(call), Return: ms(ret), Kind: kind, Read: read, Ended: ended, ConnErr: connErr}
	}
	for _, tc := range []struct {
		name  string
		start counterState
		ops   []opRecord
		want  porcupine.CheckResult
	}{
		{"one holder after another", counterState{known: true}, []opRecord{
			op("a", 10, 0, 10, opApplied, 0, false, false),
			op("b", 20, 11, 20, opApplied, 1, false, false),
			op("c", 20, 21, 30, opApplied, 2, false, false), // re-entry: the same token again
		}, porcupine.Ok},
		{"two overlapping increments that both read 0 and both wrote", counterState{known: true}, []opRecord{
			op("a", 10, 0, 10, opApplied, 0, false, false),
			op("b", 20, 5, 15, opApplied, 0, false, false),
		}, porcupine.Illegal},
		{"the same from an unknown start", counterState{}, []opRecord{
			op("a", 10, 0, 10, opApplied, 7, false, false),
			op("b", 20, 5, 15, opApplied, 7, false, false),
		}, porcupine.Illegal},
		{"an older token writes after a newer one", counterState{known: true}, []opRecord{
			op("a", 20, 0, 10, opApplied, 0, false, false),
			op("b", 10, 11, 20, opApplied, 1, false, false),
		}, porcupine.Illegal},
		{"a fenced-off holder is refused", counterState{known: true}, []opRecord{
			op("a", 20, 0, 10, opApplied, 0, false, false),
			op("b", 10, 11, 20, opRefused, 0, true, false),
			op("c", 30, 21, 30, opApplied, 1, false, false),
		}, porcupine.Ok},
		{"a live holder is refused: a newer holder wrote while it held", counterState{known: true}, []opRecord{
			op("a", 20, 0, 10, opApplied, 0, false, false),
			op("b", 10, 11, 20, opRefused, 0, false, false),
		}, porcupine.Illegal},
		{"a lost write of unknown outcome", counterState{known: true}, []opRecord{
			op("a", 10, 0, 10, opUnknown, 0, false, true),
			op("b", 20, 11, 20, opApplied, 0, false, false),
		}, porcupine.Ok},
		{"an applied write of unknown outcome", counterState{known: true}, []opRecord{
			op("a", 10, 0, 10, opUnknown, 0, false, true),
			op("b", 20, 11, 20, opApplied, 1, false, false),
		}, porcupine.Ok},
		{"an unknown outcome that a live holder's BadVersion leaves unexplained", counterState{known: true}, []opRecord{
			op("a", 10, 0, 10, opUnknown, 0, false, false),
			op("b", 20, 11, 20, opApplied, 0, false, false),
		}, porcupine.Illegal},
		{"an increment lost between windows", counterState{known: true, v: 5, t: 10}, []opRecord{
			op("a", 20, 0, 10, opApplied, 4, false, false),
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := checkCounter(tc.start, tc.ops, 10*time.Second); got != tc.want {
				t.Errorf("porcupine says %s; want %s for%s", got, tc.want, describeOps(tc.ops))
			}
		})
	}

	t.Run("windows", func(t *testing.T) {
		// A long proper history checked in windows passes; one double increment in its middle
		// is found.
		var ops []opRecord
		for i := range int64(1000) {
			ops = append(ops, op(fmt.Sprint("op", i), 10+i, 10*i, 10*i+5, opApplied, i, false, false))
		}
		run := func(ops []opRecord) []string {
			h := newHistory()
			h.minWindow, h.lag = 100, 0
			for _, o := range ops {
				h.begin(o.Key, o.ID, o.Call)
				h.add(o)
				h.checkReady(o.Return + 1)
			}
			h.finish()
			_, _, failures := h.summary()
			if h.windows < 5 {
				t.Errorf("%d windows; want the history cut in several", h.windows)
			}
			return failures
		}
		if f := run(ops); len(f) > 0 {
			t.Errorf("a proper history failed: %v", f)
		}
		bad := slices.Clone(ops)
		bad[500].Call = bad[499].Call + 1 // overlaps op 499, and read what it read
		bad[500].Read = bad[499].Read
		for i := 501; i < len(bad); i++ {
			bad[i].Read--
		}
		if f := run(bad); len(f) != 1 || !strings.Contains(f[0], "not linearizable") {
			t.Errorf("a double increment was not found: %v", f)
		}
	})
}

// TestSoakPorcupineCatchesTwoHolders shows the soak's porcupine check catching two holders on a
// real server: workers take a semaphore of 2 leases as if it were a mutex, and increment its
// counter in their critical sections as the soak's workers do.
func TestSoakPorcupineCatchesTwoHolders(t *testing.T) {
	srv := zktest.Start(t)
	p := soakPaths{"/porcupine-check"}
	admin := standaloneClient(t, srv.ConnectString(), framework.SessionErrorPolicy, sessionTimeout)
	if err := p.setup(testContext(t, waitTimeout), admin); err != nil {
		t.Fatal(err)
	}
	var clients []*framework.Client
	for range 3 {
		clients = append(clients, standaloneClient(t, srv.ConnectString(), framework.SessionErrorPolicy, sessionTimeout))
	}
	// Two holders overlap only when the scheduler lets them: on a loaded machine a round may have
	// none, so rounds go on until one has (a broken lock is found out within a few).
	const rounds = 10
	for round := range rounds {
		run := &soakRun{hist: newHistory(), stats: newStats(), mon: newMonitor(), leaders: newLeaderLedger()}
		ctx, stop := context.WithTimeout(context.Background(), 3*time.Second)
		var wg sync.WaitGroup
		for i, c := range clients {
			w := &soakWorker{name: fmt.Sprint("w", i), c: c, p: p, sink: run, mon: newMonitor(), leaders: run.leaders, holds: newHoldSet()}
			sem := recipes.NewSemaphore(c, p.lock("smutex"), 2)
			acquire := func(ctx context.Context) (*recipes.Lease, error) { return oneLease(sem.Acquire(ctx, 1)) }
			r := rand.New(rand.NewPCG(uint64(round), uint64(i)))
			wg.Go(func() {
				for ctx.Err() == nil {
					w.withLease(ctx, r, soakLock{recipe: "broken", path: p.lock("smutex"), fence: p.fence("smutex"), acc: exclusive, limit: 1, key: "smutex"}, acquire, nil)
				}
			})
		}
		ok := waitGroupWithin(&wg, time.Minute)
		stop()
		if !ok {
			t.Fatal("workers did not stop")
		}
		run.hist.finish()
		verdict, took, failures := run.hist.summary()
		t.Logf("round %d: %d acquisitions; porcupine: %s in %v", round, run.stats.total.Load(), verdict, took)
		if len(failures) > 0 && strings.Contains(failures[0], "not linearizable") {
			return
		}
	}
	t.Errorf("porcupine found no violation in %d rounds of the history of a lock that admits two holders", rounds)
}
