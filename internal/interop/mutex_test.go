package interop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

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
	if got := children(t, c, path); len(got) != 0 {
		t.Fatalf("nodes left: %v", got)
	}
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

// holdRecord is one hold of the contended mutex: the counter value its holder wrote, the holder's
// fencing token (Go: Lease.Token; Java: the lock parent's pzxid read just after the grant, which
// lies between its grant listing and its release, so it orders the same way), and who held it.
type holdRecord struct {
	value int64
	token int64
	who   string
	java  bool
}

// Three Go sessions and three Curator processes contend for one mutex, twenty holds each; every
// holder does a read-pause-write of a counter with the version it read, which a second holder at
// the same time would make fail. No write fails, the counter ends at 120, and the fencing tokens
// increase from one holder to the next in the order of the counter, across Go and Java holders.
func TestMutexContention(t *testing.T) {
	const (
		rounds = 20
		pause  = 3 * time.Millisecond
	)
	peers := startPeers(t, 3)
	clients := newClients(t, 3)
	path := testPath(t, "lock")
	counter := testPath(t, "counter")
	createCounter(t, clients[0], counter)
	ctx := testContext(t, 90*time.Second)

	var (
		mu       sync.Mutex
		holds    []holdRecord
		problems []string
		wg       sync.WaitGroup
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	record := func(r holdRecord) {
		mu.Lock()
		holds = append(holds, r)
		mu.Unlock()
	}
	for i, c := range clients {
		who := fmt.Sprintf("go-%d", i+1)
		m := recipes.NewInterProcessMutex(c, path)
		wg.Go(func() {
			for range rounds {
				l, err := m.Acquire(ctx)
				if err != nil {
					problem("%s: acquire: %v", who, err)
					return
				}
				v, err := incr(ctx, c, counter, pause)
				if errors.Is(err, zk.ErrBadVersion) {
					problem("%s: two holders at once: %v", who, err)
				} else if err != nil {
					problem("%s: %v", who, err)
				}
				record(holdRecord{value: v, token: l.Token(), who: who})
				if err := l.Release(); err != nil {
					problem("%s: release: %v", who, err)
					return
				}
			}
		})
	}
	for _, p := range peers {
		wg.Go(func() {
			for range rounds {
				if _, err := p.ok("mutex.acquire m %s 60000", path); err != nil {
					problem("%v", err)
					return
				}
				tok, err := p.ok("pzxid %s", path)
				if err != nil {
					problem("%v", err)
				}
				token, _ := strconv.ParseInt(tok, 10, 64)
				v, err := p.ok("incr %s %d", counter, pause.Milliseconds())
				if isBadVersion(err) {
					problem("%s: two holders at once: %v", p.name, err)
				} else if err != nil {
					problem("%v", err)
				}
				value, _ := strconv.ParseInt(v, 10, 64)
				record(holdRecord{value: value, token: token, who: p.name, java: true})
				if _, err := p.ok("mutex.release m"); err != nil {
					problem("%v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	if t.Failed() {
		return
	}

	total := int64(rounds * (len(clients) + len(peers)))
	if got := readCounter(t, clients[0], counter); got != total {
		t.Fatalf("counter is %d after %d holds", got, total)
	}
	slices.SortFunc(holds, func(a, b holdRecord) int { return int(a.value - b.value) })
	var goToJava, javaToGo int
	var lastGo int64
	for i, h := range holds {
		if h.value != int64(i+1) {
			t.Fatalf("hold %d wrote %d", i+1, h.value)
		}
		if i > 0 {
			prev := holds[i-1]
			if h.token <= prev.token {
				t.Errorf("hold %d (%s) has token %#x, not above hold %d (%s): %#x", i+1, h.who, h.token, i, prev.who, prev.token)
			}
			switch {
			case prev.java && !h.java:
				javaToGo++
			case !prev.java && h.java:
				goToJava++
			}
		}
		if !h.java {
			if h.token <= lastGo {
				t.Errorf("Go token %#x of hold %d is not above the previous Go token %#x", h.token, i+1, lastGo)
			}
			lastGo = h.token
		}
	}
	t.Logf("%d holds; the lock passed from Go to Curator %d times and from Curator to Go %d times", len(holds), goToJava, javaToGo)
	if goToJava == 0 || javaToGo == 0 {
		t.Errorf("the lock never passed between Go and Curator in one direction (Go→Curator %d, Curator→Go %d)", goToJava, javaToGo)
	}
	if got := children(t, clients[0], path); len(got) != 0 {
		t.Errorf("nodes left: %v", got)
	}
}
