package interop

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/recipes"
)

// Go and Curator take leases of one semaphore of 3 together: 2 Curator leases and 1 Go lease fill
// it, a fourth waits on either side, and a lease returned on one side goes to a waiter on the
// other.
func TestSemaphoreSharedLeases(t *testing.T) {
	peers, clients, path, ctx := startMixed(t, 2, 2, "sem", 60*time.Second)
	leasesPath := path + "/leases"

	if v := peers[0].must("sem.acquire s %s 3 2 5000", path); len(strings.Fields(v)) != 2 {
		t.Fatalf("Curator took leases %q, want 2", v)
	}
	sem1 := recipes.NewSemaphore(clients[0], path, 3)
	mine, err := sem1.TryAcquire(ctx, 1)
	if err != nil {
		t.Fatalf("Go lease 3 of 3 while Curator holds 2: %v", err)
	}
	if ls, err := sem1.TryAcquire(ctx, 1); !errors.Is(err, recipes.ErrLocked) {
		t.Fatalf("Go lease 4 of 3: leases %v, err %v; want ErrLocked", ls, err)
	}
	if _, err := peers[1].ok("sem.acquire s %s 3 1 300", path); !isTimeout(err) {
		t.Fatalf("Curator lease 4 of 3: %v, want TIMEOUT", err)
	}
	if n := len(children(t, clients[0], leasesPath)); n != 3 {
		t.Fatalf("%d lease nodes, want 3: %v", n, children(t, clients[0], leasesPath))
	}

	// A Go waiter gets a lease that Curator returns.
	sem2 := recipes.NewSemaphore(clients[1], path, 3)
	type acquiredLeases struct {
		leases []*recipes.Lease
		err    error
	}
	got := make(chan acquiredLeases, 1)
	go func() {
		ls, err := sem2.Acquire(ctx, 2)
		got <- acquiredLeases{ls, err}
	}()
	mustNotReturn(t, got, 300*time.Millisecond, "Go Acquire of 2 leases while 3 of 3 are held")
	if v := peers[0].must("sem.release s"); v != "2" {
		t.Fatalf("Curator returned %s leases, want 2", v)
	}
	r := within(t, got, 10*time.Second, "Go Acquire of 2 leases after Curator returned 2")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.leases) != 2 {
		t.Fatalf("Go got %d leases, want 2", len(r.leases))
	}

	// And a Curator waiter gets a lease that Go returns.
	peers[1].send(fmt.Sprintf("sem.acquire s %s 3 1 30000", path))
	if silent, a := peers[1].noAnswer(300 * time.Millisecond); !silent {
		t.Fatalf("Curator lease 4 of 3 returned %q", a)
	}
	if err := mine[0].Release(); err != nil {
		t.Fatal(err)
	}
	if a, err := peers[1].answer(10 * time.Second); err != nil || !strings.HasPrefix(a, "OK ") {
		t.Fatalf("Curator lease after Go returned one: %q %v", a, err)
	}
	for _, l := range r.leases {
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
	}
	peers[1].must("sem.release s")
	noNodesLeft(t, clients[0], leasesPath, "lease nodes")
}

// Three Go sessions and three Curator processes take leases of a semaphore of 3, ten times each;
// every holder counts itself in an in-use counter (compare-and-set) while it holds. The counter
// never goes above 3, and does reach 3.
func TestSemaphoreNeverOverMaxLeases(t *testing.T) {
	const rounds, hold = 10, 15 * time.Millisecond
	peers, clients, path, ctx := startMixed(t, 3, 3, "sem", 90*time.Second)
	inUse := testPath(t, "in-use")
	createCounter(t, clients[0], inUse)

	var (
		mu   sync.Mutex
		peak int64
	)
	// inside counts the holder in the in-use counter (add, by the Go side or a peer) while it
	// holds its lease.
	inside := func(add func(delta int64) (int64, error)) func(context.Context) (int64, error) {
		return func(context.Context) (int64, error) {
			n, err := add(1)
			if err != nil {
				return 0, err
			}
			mu.Lock()
			peak = max(peak, n)
			mu.Unlock()
			if n > 3 {
				err = fmt.Errorf("%d leases in use, above maxLeases 3", n)
			}
			time.Sleep(hold)
			_, err2 := add(-1)
			return 0, errors.Join(err, err2)
		}
	}
	run := testkit.Contention{Rounds: rounds}
	for i, c := range clients {
		sem := recipes.NewSemaphore(c, path, 3)
		run.Contenders = append(run.Contenders, testkit.Contender{
			Name: fmt.Sprintf("go-%d", i+1),
			Acquire: func(ctx context.Context, _ int) (testkit.Hold, error) {
				ls, err := sem.Acquire(ctx, 1)
				if err != nil {
					return testkit.Hold{}, err
				}
				return testkit.Hold{Release: ls[0].Release}, nil
			},
			Inside: inside(func(delta int64) (int64, error) { return add(ctx, c, inUse, delta) }),
		})
	}
	for _, p := range peers {
		run.Contenders = append(run.Contenders, testkit.Contender{
			Name:    p.name,
			Acquire: javaAcquire(p, "sem.acquire s "+path+" 3 1 60000", "sem.release s", ""),
			Inside: inside(func(delta int64) (int64, error) {
				v, err := p.ok("add %s %d", inUse, delta)
				if err != nil {
					return 0, err
				}
				return strconv.ParseInt(v, 10, 64)
			}),
		})
	}
	if holds, want := run.Run(t, ctx), rounds*(len(clients)+len(peers)); len(holds) != want {
		t.Errorf("%d holds, want %d", len(holds), want)
	}
	if got := readCounter(t, clients[0], inUse); got != 0 {
		t.Errorf("in-use counter is %d at the end", got)
	}
	t.Logf("peak leases in use: %d of 3", peak)
	if peak != 3 {
		t.Errorf("the leases in use never reached 3 (peak %d): the semaphore was not shared", peak)
	}
	noNodesLeft(t, clients[0], path+"/leases", "lease nodes")
}

// A Curator InterProcessSemaphoreMutex and a Go SemaphoreMutex exclude each other, in both
// directions, and under contention.
func TestSemaphoreMutex(t *testing.T) {
	peers, clients, path, ctx := startMixed(t, 2, 2, "semmutex", 60*time.Second)
	j := peers[0]

	// Curator holds; Go waits.
	j.must("semmutex.acquire m %s 5000", path)
	m := recipes.NewSemaphoreMutex(clients[0], path)
	if l, err := m.TryAcquire(ctx); !errors.Is(err, recipes.ErrLocked) {
		t.Fatalf("Go TryAcquire while Curator holds: lease %v, err %v; want ErrLocked", l, err)
	}
	got := acquireAsync(ctx, m.Acquire)
	mustNotReturn(t, got, 300*time.Millisecond, "Go Acquire while Curator holds")
	j.must("semmutex.release m")
	r := within(t, got, 10*time.Second, "Go Acquire after Curator released")
	if r.err != nil {
		t.Fatal(r.err)
	}

	// Go holds; Curator waits.
	if _, err := j.ok("semmutex.acquire m %s 200", path); !isTimeout(err) {
		t.Fatalf("Curator acquire while Go holds: %v, want TIMEOUT", err)
	}
	j.send(fmt.Sprintf("semmutex.acquire m %s 30000", path))
	if silent, a := j.noAnswer(300 * time.Millisecond); !silent {
		t.Fatalf("Curator acquire returned %q while Go holds", a)
	}
	if err := r.lease.Release(); err != nil {
		t.Fatal(err)
	}
	if a, err := j.answer(10 * time.Second); err != nil || a != "OK" {
		t.Fatalf("Curator acquire after Go released: %q %v", a, err)
	}
	j.must("semmutex.release m")

	// Two of each, ten holds each, on a version-checked counter.
	counterRun(t, ctx, 10, 3*time.Millisecond, clients, peers,
		func(c *framework.Client) func(context.Context, int) (testkit.Hold, error) {
			return testkit.WithoutToken(testkit.Exclusive(recipes.NewSemaphoreMutex(c, path).Acquire))
		},
		func(p *peer) func(context.Context, int) (testkit.Hold, error) {
			return javaAcquire(p, "semmutex.acquire c "+path+" 60000", "semmutex.release c", "")
		})
	noNodesLeft(t, clients[0], path+"/leases", "lease nodes")
}
