package interop

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// These tests leave out a downgrade by the Java side: Debian's Curator 5.4 creates the read node
// of a downgrade as a new sequential node, so a writer queued behind its write node gets in once
// the write lock is released (CURATOR-621, fixed in 5.5); gocurator follows the 5.5 rule. A
// downgrade by the Go side is tested, since both versions sort its node alike.

// countKind returns how many children of path contain kind (__READ__ or __WRIT__).
func countKind(t testing.TB, c *framework.Client, path, kind string) int {
	t.Helper()
	n := 0
	for _, name := range children(t, c, path) {
		if strings.Contains(name, kind) {
			n++
		}
	}
	return n
}

// Curator readers and Go readers hold the read lock at once.
func TestReadWriteLockReadersShare(t *testing.T) {
	peers, clients, path, ctx := startMixed(t, 2, 2, "rw", 30*time.Second)

	peers[0].must("read.acquire r %s 5000", path)
	var leases []*recipes.Lease
	for _, c := range clients {
		l, err := recipes.NewReadWriteLock(c, path).ReadLock().TryAcquire(ctx)
		if err != nil {
			t.Fatalf("Go read lock while Curator reads: %v", err)
		}
		leases = append(leases, l)
	}
	peers[1].must("read.acquire r %s 5000", path)
	if n := countKind(t, clients[0], path, "__READ__"); n != 4 {
		t.Fatalf("%d read nodes, want 4: %v", n, children(t, clients[0], path))
	}
	for _, l := range leases {
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range peers {
		p.must("read.release r")
	}
	noNodesLeft(t, clients[0], path, "nodes")
}

// A Go writer waits for Curator readers; readers that come after the queued writer, Go or
// Curator, wait behind it; while Go writes, Curator can neither read nor write.
func TestReadWriteLockGoWriterWaitsForJavaReaders(t *testing.T) {
	peers, clients, path, ctx := startMixed(t, 2, 2, "rw", 60*time.Second)

	for _, p := range peers {
		p.must("read.acquire r %s 5000", path)
	}
	writer := recipes.NewReadWriteLock(clients[0], path).WriteLock()
	got := acquireAsync(ctx, writer.Acquire)
	eventually(t, 10*time.Second, "the Go writer to queue", func() bool { return countKind(t, clients[0], path, "__WRIT__") == 1 })
	mustNotReturn(t, got, 300*time.Millisecond, "Go write lock while Curator reads")

	// Fairness, both ways: a reader behind a queued writer waits.
	if _, err := peers[0].ok("read.acquire late %s 300", path); !isTimeout(err) {
		t.Fatalf("Curator reader behind the queued Go writer: %v, want TIMEOUT", err)
	}
	lateRead := recipes.NewReadWriteLock(clients[1], path).ReadLock()
	if l, err := lateRead.TryAcquire(ctx); !errors.Is(err, recipes.ErrLocked) {
		t.Fatalf("Go reader behind the queued Go writer: lease %v, err %v; want ErrLocked", l, err)
	}

	peers[0].must("read.release r")
	mustNotReturn(t, got, 200*time.Millisecond, "Go write lock while one Curator reader is left")
	peers[1].must("read.release r")
	r := within(t, got, 10*time.Second, "Go write lock after the Curator readers left")
	if r.err != nil {
		t.Fatal(r.err)
	}

	if _, err := peers[0].ok("read.acquire r %s 200", path); !isTimeout(err) {
		t.Fatalf("Curator read lock while Go writes: %v, want TIMEOUT", err)
	}
	if _, err := peers[1].ok("write.acquire w %s 200", path); !isTimeout(err) {
		t.Fatalf("Curator write lock while Go writes: %v, want TIMEOUT", err)
	}
	if err := r.lease.Release(); err != nil {
		t.Fatal(err)
	}
	peers[0].must("read.acquire r %s 5000", path)
	peers[0].must("read.release r")
	noNodesLeft(t, clients[0], path, "nodes")
}

// A Curator writer waits for Go readers; readers behind it wait; while Curator writes, Go can
// neither read nor write, and a Go writer gets the lock when Curator releases it.
func TestReadWriteLockJavaWriterWaitsForGoReaders(t *testing.T) {
	peers, clients, path, ctx := startMixed(t, 2, 3, "rw", 60*time.Second)

	var readers []*recipes.Lease
	for _, c := range clients[:2] {
		l, err := recipes.NewReadWriteLock(c, path).ReadLock().Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, l)
	}
	j := peers[0]
	j.send(fmt.Sprintf("write.acquire w %s 30000", path))
	eventually(t, 10*time.Second, "the Curator writer to queue", func() bool { return countKind(t, clients[0], path, "__WRIT__") == 1 })
	if silent, a := j.noAnswer(300 * time.Millisecond); !silent {
		t.Fatalf("Curator write lock returned %q while Go reads", a)
	}

	rw := recipes.NewReadWriteLock(clients[2], path)
	if l, err := rw.ReadLock().TryAcquire(ctx); !errors.Is(err, recipes.ErrLocked) {
		t.Fatalf("Go reader behind the queued Curator writer: lease %v, err %v; want ErrLocked", l, err)
	}
	if _, err := peers[1].ok("read.acquire late %s 300", path); !isTimeout(err) {
		t.Fatalf("Curator reader behind the queued Curator writer: %v, want TIMEOUT", err)
	}

	if err := readers[0].Release(); err != nil {
		t.Fatal(err)
	}
	if silent, a := j.noAnswer(200 * time.Millisecond); !silent {
		t.Fatalf("Curator write lock returned %q while a Go reader is left", a)
	}
	if err := readers[1].Release(); err != nil {
		t.Fatal(err)
	}
	a, err := j.answer(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, "OK ") || !strings.Contains(a, "__WRIT__") {
		t.Fatalf("Curator write lock after the Go readers left: %s", a)
	}

	if l, err := rw.ReadLock().TryAcquire(ctx); !errors.Is(err, recipes.ErrLocked) {
		t.Fatalf("Go read lock while Curator writes: lease %v, err %v; want ErrLocked", l, err)
	}
	got := acquireAsync(ctx, rw.WriteLock().Acquire)
	mustNotReturn(t, got, 300*time.Millisecond, "Go write lock while Curator writes")
	j.must("write.release w")
	r := within(t, got, 10*time.Second, "Go write lock after Curator released")
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := r.lease.Release(); err != nil {
		t.Fatal(err)
	}
	noNodesLeft(t, clients[0], path, "nodes")
}

// A Go writer that downgrades (takes the read lock with its write lease's context, then releases
// the write lock) keeps a queued Curator writer out until it stops reading: its read node carries
// the write node's sequence number, and Curator 5.4 sorts it by that number too.
func TestReadWriteLockGoDowngradeKeepsJavaWriterOut(t *testing.T) {
	j := startPeers(t, 1)[0]
	c := newClient(t)
	path := testPath(t, "rw")
	ctx := testContext(t, 60*time.Second)

	rw := recipes.NewReadWriteLock(c, path)
	w, err := rw.WriteLock().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	j.send(fmt.Sprintf("write.acquire w %s 30000", path))
	eventually(t, 10*time.Second, "the Curator writer to queue", func() bool { return countKind(t, c, path, "__WRIT__") == 2 })
	r, err := rw.ReadLock().Acquire(w.Context())
	if err != nil {
		t.Fatalf("downgrade: %v", err)
	}
	if seq(t, r.Node()) != seq(t, w.Node()) {
		t.Fatalf("downgrade read node %s does not carry the write node's sequence (%s)", r.Node(), w.Node())
	}
	if err := w.Release(); err != nil {
		t.Fatal(err)
	}
	if silent, a := j.noAnswer(500 * time.Millisecond); !silent {
		t.Fatalf("Curator write lock returned %q while the downgraded Go reader reads", a)
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	a, err := j.answer(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, "OK ") {
		t.Fatalf("Curator write lock after the Go reader left: %s", a)
	}
	j.must("write.release w")
}
