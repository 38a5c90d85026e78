package interop

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/recipes"
)

type acquired struct {
	lease *recipes.Lease
	err   error
}

// acquireAsync starts acquire on a goroutine of its own and returns its outcome on a channel.
func acquireAsync(ctx context.Context, acquire func(context.Context) (*recipes.Lease, error)) <-chan acquired {
	ch := make(chan acquired, 1)
	go func() {
		l, err := acquire(ctx)
		ch <- acquired{l, err}
	}()
	return ch
}

// noNodesLeft fails the test if path has children as c sees them; what names them in the
// message ("nodes", "lease nodes").
func noNodesLeft(t testing.TB, c *framework.Client, path, what string) {
	t.Helper()
	if got := children(t, c, path); len(got) != 0 {
		t.Errorf("%s left: %v", what, got)
	}
}

// Curator holds the mutex; a Go waiter queues behind its node, waits, and gets the lock when Curator
// releases it.
func TestMutexJavaHoldsGoWaits(t *testing.T) {
	j := startPeers(t, 1)[0]
	c := newClient(t)
	path := testPath(t, "lock")
	ctx := testContext(t, 60*time.Second)

	jnode := j.must("mutex.acquire m %s 10000", path)
	m := recipes.NewInterProcessMutex(c, path)
	if l, err := m.TryAcquire(ctx); !errors.Is(err, recipes.ErrLocked) {
		t.Fatalf("Go TryAcquire while Curator holds: lease %v, err %v; want ErrLocked", l, err)
	}
	if got := children(t, c, path); len(got) != 1 {
		t.Fatalf("after a failed TryAcquire the lock has nodes %v, want only Curator's", got)
	}

	got := acquireAsync(ctx, m.Acquire)
	eventually(t, 10*time.Second, "the Go node to queue", func() bool { return len(children(t, c, path)) == 2 })
	mustNotReturn(t, got, 300*time.Millisecond, "Go Acquire while Curator holds")
	parts, err := m.ParticipantNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[0] != jnode {
		t.Fatalf("Go sees participants %v, want Curator's holder %s first", parts, jnode)
	}

	j.must("mutex.release m")
	r := within(t, got, 10*time.Second, "Go Acquire after Curator released")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.lease.Node() != parts[1] || seq(t, r.lease.Node()) <= seq(t, jnode) {
		t.Fatalf("Go holds with node %s; queued as %s behind %s", r.lease.Node(), parts[1], jnode)
	}
	if err := r.lease.Release(); err != nil {
		t.Fatal(err)
	}
	noNodesLeft(t, c, path, "nodes")
}

// Go holds the mutex; Curator's timed acquire gives up (leaving no node), and a Curator waiter gets
// the lock when Go releases it.
func TestMutexGoHoldsJavaWaits(t *testing.T) {
	j := startPeers(t, 1)[0]
	c := newClient(t)
	path := testPath(t, "lock")
	ctx := testContext(t, 60*time.Second)

	m := recipes.NewInterProcessMutex(c, path)
	l, err := m.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.ok("mutex.acquire try %s 0", path); !isTimeout(err) {
		t.Fatalf("Curator acquire(0) while Go holds: %v, want TIMEOUT", err)
	}
	if got := children(t, c, path); len(got) != 1 || got[0] != baseName(l.Node()) {
		t.Fatalf("after Curator's failed try the lock has nodes %v, want only Go's %s", got, l.Node())
	}

	j.send(fmt.Sprintf("mutex.acquire m %s 30000", path))
	eventually(t, 10*time.Second, "Curator's node to queue", func() bool { return len(children(t, c, path)) == 2 })
	if silent, a := j.noAnswer(300 * time.Millisecond); !silent {
		t.Fatalf("Curator acquire returned %q while Go holds", a)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	a, err := j.answer(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	jnode, ok := strings.CutPrefix(a, "OK ")
	if !ok {
		t.Fatalf("Curator acquire after Go released: %s", a)
	}
	if seq(t, jnode) <= seq(t, l.Node()) {
		t.Fatalf("Curator holds with %s, before Go's %s", jnode, l.Node())
	}
	if l2, err := m.TryAcquire(ctx); !errors.Is(err, recipes.ErrLocked) {
		t.Fatalf("Go TryAcquire while Curator holds: lease %v, err %v; want ErrLocked", l2, err)
	}
	j.must("mutex.release m")
	l2, err := m.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("Go TryAcquire after Curator released: %v", err)
	}
	if l2.Token() <= l.Token() {
		t.Errorf("token %d after Curator's hold, not above %d before it", l2.Token(), l.Token())
	}
	if err := l2.Release(); err != nil {
		t.Fatal(err)
	}
}

// goContender is the contender who of a contention run (testkit.Contention) on client c: it takes
// the lock with acquire and, while it holds it, increments the counter at path with incr.
func goContender(who string, c *framework.Client, acquire func(context.Context, int) (testkit.Hold, error), counter string, pause time.Duration) testkit.Contender {
	return testkit.Contender{
		Name:    who,
		Acquire: acquire,
		Inside:  func(ctx context.Context) (int64, error) { return incr(ctx, c, counter, pause) },
	}
}

// counterRun runs a contention (testkit.Contention.Run) of rounds rounds a contender, within ctx,
// between the Go sessions clients and the Curator processes peers, in that order, on a counter of
// the test's own that clients[0] makes. A Go session takes the lock with goAcquire(c) and
// increments the counter with incr (goContender); a peer takes it with peerAcquire(p) and
// increments with javaIncr; both pause for pause between read and write. It fails t (never
// stopping it) if the holds are not rounds a contender, and returns them.
func counterRun(t testing.TB, ctx context.Context, rounds int, pause time.Duration, clients []*framework.Client, peers []*peer,
	goAcquire func(*framework.Client) func(context.Context, int) (testkit.Hold, error),
	peerAcquire func(*peer) func(context.Context, int) (testkit.Hold, error)) []testkit.Held {
	t.Helper()
	counter := testPath(t, "counter")
	createCounter(t, clients[0], counter)
	run := testkit.Contention{
		Rounds:  rounds,
		Counter: func(t testing.TB) int64 { return readCounter(t, clients[0], counter) },
	}
	for i, c := range clients {
		run.Contenders = append(run.Contenders, goContender(fmt.Sprintf("go-%d", i+1), c, goAcquire(c), counter, pause))
	}
	for _, p := range peers {
		run.Contenders = append(run.Contenders, testkit.Contender{Name: p.name, Acquire: peerAcquire(p), Inside: javaIncr(p, counter, pause)})
	}
	holds := run.Run(t, ctx)
	if want := rounds * (len(clients) + len(peers)); len(holds) != want {
		t.Errorf("%d holds, want %d", len(holds), want)
	}
	return holds
}

// javaAcquire returns the Acquire of a contender (testkit.Contender) played by peer p: it takes the
// lock with the peer command acquire and lets it go with the command release. With a tokenPath,
// a hold's fencing token is the pzxid of tokenPath (the lock's parent) read just after the grant,
// which lies between its grant listing and its release, so it orders as the Go side's
// Lease.Token does; an error reading it releases the lock and ends the contender's rounds.
func javaAcquire(p *peer, acquire, release, tokenPath string) func(context.Context, int) (testkit.Hold, error) {
	return func(context.Context, int) (testkit.Hold, error) {
		if _, err := p.ok("%s", acquire); err != nil {
			return testkit.Hold{}, err
		}
		h := testkit.Hold{Release: func() error {
			_, err := p.ok("%s", release)
			return err
		}}
		if tokenPath != "" {
			tok, err := p.ok("pzxid %s", tokenPath)
			if err == nil {
				h.Token, err = strconv.ParseInt(tok, 10, 64)
			}
			if err != nil {
				return testkit.Hold{}, errors.Join(fmt.Errorf("pzxid: %w", err), h.Release())
			}
		}
		return h, nil
	}
}

// javaIncr returns the Inside of a contender played by peer p: the peer's incr of the counter at
// path with the pause; its version conflict matches zk.ErrBadVersion.
func javaIncr(p *peer, counter string, pause time.Duration) func(context.Context) (int64, error) {
	return func(context.Context) (int64, error) {
		v, err := p.ok("incr %s %d", counter, pause.Milliseconds())
		if isBadVersion(err) {
			return 0, fmt.Errorf("%w: %v", zk.ErrBadVersion, err)
		}
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(v, 10, 64)
	}
}

// Three Go sessions and three Curator processes contend for one mutex, twenty holds each; every
// holder does a read-pause-write of a counter with the version it read, which a second holder at
// the same time would make fail. No write fails, the counter ends at 120, and the fencing tokens
// increase from one holder to the next in the order of the counter, across Go and Java holders.
func TestMutexContention(t *testing.T) {
	const rounds, pause = 20, 3 * time.Millisecond
	peers, clients, path, ctx := startMixed(t, 3, 3, "lock", 90*time.Second)
	holds := counterRun(t, ctx, rounds, pause, clients, peers,
		func(c *framework.Client) func(context.Context, int) (testkit.Hold, error) {
			return testkit.Exclusive(recipes.NewInterProcessMutex(c, path).Acquire)
		},
		func(p *peer) func(context.Context, int) (testkit.Hold, error) {
			return javaAcquire(p, "mutex.acquire m "+path+" 60000", "mutex.release m", path)
		})
	if t.Failed() {
		return
	}

	java := func(h testkit.Held) bool { return h.Contender >= len(clients) }
	var goToJava, javaToGo int
	var lastGo int64
	for i, h := range holds {
		if i > 0 {
			switch prev := holds[i-1]; {
			case java(prev) && !java(h):
				javaToGo++
			case !java(prev) && java(h):
				goToJava++
			}
		}
		if !java(h) {
			if h.Token <= lastGo {
				t.Errorf("Go token %#x of hold %d is not above the previous Go token %#x", h.Token, i+1, lastGo)
			}
			lastGo = h.Token
		}
	}
	t.Logf("%d holds; the lock passed from Go to Curator %d times and from Curator to Go %d times", len(holds), goToJava, javaToGo)
	if goToJava == 0 || javaToGo == 0 {
		t.Errorf("the lock never passed between Go and Curator in one direction (Go→Curator %d, Curator→Go %d)", goToJava, javaToGo)
	}
	noNodesLeft(t, clients[0], path, "nodes")
}
