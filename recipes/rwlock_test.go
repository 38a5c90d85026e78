package recipes

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
)

// rwNodeName is Curator's read-write lock node name; group 2 is the sequence.
var rwNodeName = regexp.MustCompile(`^_c_[0-9a-f-]{36}-__(READ|WRIT)__(\d{10})$`)

// rwNodes lists the nodes under a read-write lock path and checks every name against Curator's
// layout.
func rwNodes(t *testing.T, c *framework.Client, path string) []string {
	t.Helper()
	names := children(t, c, path)
	for _, n := range names {
		if !rwNodeName.MatchString(n) {
			t.Errorf("node name %q is not Curator's read-write lock layout", n)
		}
	}
	return names
}

// nodeSeq returns the ten-digit sequence at the end of a node name or path.
func nodeSeq(name string) string { return name[len(name)-10:] }

// acquireResult is the outcome of an Acquire run in the background.
type acquireResult struct {
	l   *Lease
	err error
}

// acquireInBackground runs lk.Acquire(ctx) in the background; the outcome arrives on the
// channel. If check is not nil, it is called with the lease at the moment the Acquire returns.
func acquireInBackground(ctx context.Context, lk Locker, check func(*Lease)) <-chan acquireResult {
	ch := make(chan acquireResult, 1)
	go func() {
		l, err := lk.Acquire(ctx)
		if err == nil && check != nil {
			check(l)
		}
		ch <- acquireResult{l, err}
	}()
	return ch
}

// awaitGrant returns the lease of a background Acquire, failing the test if it takes longer than
// d or failed.
func awaitGrant(t *testing.T, ch <-chan acquireResult, d time.Duration, what string) *Lease {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return r.l
	case <-time.After(d):
		t.Fatalf("%s: not granted within %v", what, d)
	}
	return nil
}

// assertStillWaiting asserts that a background Acquire is still waiting, giving a wrongly
// granted one a moment to show up.
func assertStillWaiting(t *testing.T, ch <-chan acquireResult, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s returned while it must wait: lease %v, err %v", what, r.l != nil, r.err)
	case <-time.After(200 * time.Millisecond):
	}
}

func waitForNodes(t *testing.T, c *framework.Client, path string, n int) {
	t.Helper()
	eventually(t, 10*time.Second, "the waiters' nodes", func() bool { return len(children(t, c, path)) == n })
}

func TestReadWriteLockReadersShare(t *testing.T) {
	const readers = 4
	path := testPath(t, "rw")
	admin := newClient(t)
	var leases []*Lease
	for i := 0; i < readers; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		l, err := NewReadWriteLock(newClient(t), path).ReadLock().Acquire(ctx)
		cancel()
		if err != nil {
			t.Fatalf("reader %d while %d others read: %v", i, i, err)
		}
		leases = append(leases, l)
	}
	for i, l := range leases {
		if l.Err() != nil {
			t.Errorf("reader %d lost its hold: %v", i, l.Err())
		}
	}
	names := rwNodes(t, admin, path)
	if len(names) != readers {
		t.Fatalf("nodes %v, want %d", names, readers)
	}
	for _, n := range names {
		if !strings.Contains(n, readLockName) {
			t.Errorf("reader made node %q", n)
		}
	}
	rw := NewReadWriteLock(admin, path)
	ctx := testContext(t, 10*time.Second)
	if nodes, err := rw.ReadLock().ParticipantNodes(ctx); err != nil || len(nodes) != readers {
		t.Errorf("read ParticipantNodes = %v, %v; want %d nodes", nodes, err, readers)
	}
	if nodes, err := rw.WriteLock().ParticipantNodes(ctx); err != nil || len(nodes) != 0 {
		t.Errorf("write ParticipantNodes = %v, %v; want none", nodes, err)
	}
	if _, err := rw.WriteLock().TryAcquire(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("writer while readers hold: %v, want ErrLocked", err)
	}
	if n := len(children(t, admin, path)); n != readers {
		t.Errorf("a failed TryAcquire left a node: %d nodes", n)
	}
	for _, l := range leases {
		mustRelease(t, l)
	}
	if names := children(t, admin, path); len(names) != 0 {
		t.Errorf("nodes left: %v", names)
	}
}

func TestReadWriteLockWriterExcludes(t *testing.T) {
	path := testPath(t, "rw")
	a, b, c := newClient(t), newClient(t), newClient(t)
	ctx := testContext(t, 30*time.Second)
	rwA, rwB, rwC := NewReadWriteLock(a, path), NewReadWriteLock(b, path), NewReadWriteLock(c, path)
	w := acquired(t, ctx, rwA.WriteLock().Acquire)
	for _, tc := range []struct {
		name string
		lock *InterProcessMutex
	}{{"reader", rwB.ReadLock()}, {"writer", rwB.WriteLock()}} {
		if _, err := tc.lock.TryAcquire(ctx); !errors.Is(err, ErrLocked) {
			t.Errorf("%s TryAcquire while a writer holds: %v, want ErrLocked", tc.name, err)
		}
		dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := tc.lock.Acquire(dctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s Acquire while a writer holds: %v, want DeadlineExceeded", tc.name, err)
		}
		if names := rwNodes(t, a, path); len(names) != 1 || path+"/"+names[0] != w.Node() {
			t.Errorf("nodes after the %s gave up: %v, want only the writer's", tc.name, names)
		}
	}

	// Queue a reader, then a writer; the holder's release lets the reader in, and the writer only
	// after the reader is done.
	var readReleased atomic.Bool
	rCh := acquireInBackground(ctx, rwB.ReadLock(), nil)
	waitForNodes(t, a, path, 2)
	w2Ch := acquireInBackground(ctx, rwC.WriteLock(), func(*Lease) {
		if !readReleased.Load() {
			t.Error("the second writer got in while the reader held the lock")
		}
	})
	waitForNodes(t, a, path, 3)
	assertStillWaiting(t, rCh, "reader behind a writer")
	mustRelease(t, w)
	r := awaitGrant(t, rCh, 10*time.Second, "reader after the writer released")
	if _, err := rwA.WriteLock().TryAcquire(ctx); !errors.Is(err, ErrLocked) {
		t.Errorf("writer TryAcquire while a reader holds: %v, want ErrLocked", err)
	}
	readReleased.Store(true)
	mustRelease(t, r)
	w2 := awaitGrant(t, w2Ch, 10*time.Second, "second writer")
	if !(w.Token() < r.Token() && r.Token() < w2.Token()) {
		t.Errorf("tokens not increasing from holder to holder: %d, %d, %d", w.Token(), r.Token(), w2.Token())
	}
	mustRelease(t, w2)
	if names := children(t, a, path); len(names) != 0 {
		t.Errorf("nodes left: %v", names)
	}
}

func TestReadWriteLockWriterNotStarved(t *testing.T) {
	path := testPath(t, "rw")
	a, b, c, d := newClient(t), newClient(t), newClient(t), newClient(t)
	ctx := testContext(t, 30*time.Second)
	r1 := acquired(t, ctx, NewReadWriteLock(a, path).ReadLock().Acquire)
	var r1Released, wReleased atomic.Bool
	wCh := acquireInBackground(ctx, NewReadWriteLock(b, path).WriteLock(), func(*Lease) {
		if !r1Released.Load() {
			t.Error("writer got in while the first reader held the lock")
		}
	})
	waitForNodes(t, a, path, 2)
	// Readers arriving after the writer wait behind it, though only readers hold.
	if _, err := NewReadWriteLock(d, path).ReadLock().TryAcquire(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("late reader TryAcquire: %v, want ErrLocked", err)
	}
	r2Ch := acquireInBackground(ctx, NewReadWriteLock(c, path).ReadLock(), func(*Lease) {
		if !wReleased.Load() {
			t.Error("a reader that came after the writer got in before the writer was done")
		}
	})
	waitForNodes(t, a, path, 3)
	assertStillWaiting(t, r2Ch, "late reader")
	r1Released.Store(true)
	mustRelease(t, r1)
	w := awaitGrant(t, wCh, 10*time.Second, "writer")
	assertStillWaiting(t, r2Ch, "late reader while the writer holds")
	wReleased.Store(true)
	mustRelease(t, w)
	r2 := awaitGrant(t, r2Ch, 10*time.Second, "late reader")
	mustRelease(t, r2)
}

func TestReadWriteLockDowngrade(t *testing.T) {
	path := testPath(t, "rw")
	a, b := newClient(t), newClient(t)
	ctx := testContext(t, 30*time.Second)
	rwA, rwB := NewReadWriteLock(a, path), NewReadWriteLock(b, path)
	w := acquired(t, ctx, rwA.WriteLock().Acquire)
	var readReleased atomic.Bool
	bwCh := acquireInBackground(ctx, rwB.WriteLock(), func(*Lease) {
		if !readReleased.Load() {
			t.Error("queued writer got in while the downgraded read lock was held (CURATOR-621)")
		}
	})
	waitForNodes(t, a, path, 2)

	// Only the write lease's context downgrades: the same lock with another context waits.
	if _, err := rwA.ReadLock().TryAcquire(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("read TryAcquire without the write lease's context: %v, want ErrLocked", err)
	}
	dctx, cancel := context.WithTimeout(w.Context(), 5*time.Second)
	r, err := rwA.ReadLock().Acquire(dctx)
	cancel()
	if err != nil {
		t.Fatalf("downgrade: %v", err)
	}
	_, wName := framework.SplitPath(w.Node())
	_, rName := framework.SplitPath(r.Node())
	if m := rwNodeName.FindStringSubmatch(rName); m == nil || m[1] != "READ" || m[2] != nodeSeq(wName) {
		t.Errorf("downgrade node %q, want _c_<uuid>-__READ__%s", rName, nodeSeq(wName))
	}
	_, st, err := a.Get(ctx, r.Node())
	if err != nil {
		t.Fatal(err)
	}
	if st.EphemeralOwner != a.SessionID() {
		t.Errorf("downgrade node owner %x, want the session %x", st.EphemeralOwner, a.SessionID())
	}
	if r.Token() <= w.Token() {
		t.Errorf("downgrade token %d not above the write token %d", r.Token(), w.Token())
	}
	names := rwNodes(t, a, path)
	var reads []string
	for _, n := range names {
		if strings.Contains(n, readLockName) {
			reads = append(reads, n)
		}
	}
	if len(names) != 3 || len(reads) != 1 || reads[0] != rName {
		t.Fatalf("nodes %v: want the write node, the downgrade node %s and the queued writer", names, rName)
	}

	// Releasing the write lock keeps the read lock, and the queued writer stays blocked.
	mustRelease(t, w)
	if r.Err() != nil || r.Context().Err() != nil {
		t.Fatalf("releasing the write lock ended the downgraded read lock: %v", r.Err())
	}
	if !rwA.ReadLock().IsAcquiredInThisProcess() || rwA.WriteLock().IsAcquiredInThisProcess() {
		t.Error("after the downgrade the read lock must be held and the write lock not")
	}
	names = rwNodes(t, a, path)
	if len(names) != 2 || !strings.Contains(names[0]+names[1], rName) {
		t.Fatalf("nodes after the write release: %v, want the downgrade node and the queued writer", names)
	}
	for _, n := range names {
		if n != rName && rwSortKey(n) <= rwSortKey(rName) {
			t.Errorf("queued writer %s does not sort after the downgrade node %s", n, rName)
		}
	}
	assertStillWaiting(t, bwCh, "queued writer after the downgrade")

	// The read hold re-enters through its own context, and a late reader queues behind the writer.
	r2, err := rwA.ReadLock().Acquire(r.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r2.Node() != r.Node() || r2.Token() != r.Token() {
		t.Errorf("read re-entry made a new hold: %s, want %s", r2.Node(), r.Node())
	}
	mustRelease(t, r2)
	readReleased.Store(true)
	mustRelease(t, r)
	bw := awaitGrant(t, bwCh, 10*time.Second, "queued writer after the read release")
	if bw.Token() <= r.Token() {
		t.Errorf("writer token %d not above the downgraded reader's %d", bw.Token(), r.Token())
	}
	mustRelease(t, bw)
	if names := children(t, a, path); len(names) != 0 {
		t.Errorf("nodes left: %v", names)
	}
}

func TestReadWriteLockNoUpgrade(t *testing.T) {
	path := testPath(t, "rw")
	a := newClient(t)
	ctx := testContext(t, 30*time.Second)
	rw := NewReadWriteLock(a, path)
	r := acquired(t, ctx, rw.ReadLock().Acquire)
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{{"read lease context", r.Context()}, {"other context", ctx}} {
		if _, err := rw.WriteLock().TryAcquire(tc.ctx); !errors.Is(err, ErrLocked) {
			t.Errorf("upgrade TryAcquire with the %s: %v, want ErrLocked", tc.name, err)
		}
		dctx, cancel := context.WithTimeout(tc.ctx, 300*time.Millisecond)
		_, err := rw.WriteLock().Acquire(dctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("upgrade with the %s: %v, want DeadlineExceeded", tc.name, err)
		}
		if names := rwNodes(t, a, path); len(names) != 1 || path+"/"+names[0] != r.Node() {
			t.Errorf("nodes after the upgrade gave up: %v, want only the reader's", names)
		}
	}
	if rw.WriteLock().IsAcquiredInThisProcess() {
		t.Error("write lock held after a failed upgrade")
	}
	mustRelease(t, r)
}

func TestReadWriteLockReentry(t *testing.T) {
	path := testPath(t, "rw")
	a := newClient(t)
	ctx := testContext(t, 30*time.Second)
	rw := NewReadWriteLock(a, path)
	for _, tc := range []struct {
		name  string
		first *InterProcessMutex
	}{{"write", rw.WriteLock()}, {"read", rw.ReadLock()}} {
		t.Run(tc.name, func(t *testing.T) {
			outer := acquired(t, ctx, tc.first.Acquire)
			inner, err := tc.first.Acquire(outer.Context())
			if err != nil {
				t.Fatal(err)
			}
			if inner.Node() != outer.Node() || inner.Token() != outer.Token() {
				t.Errorf("re-entry made a new hold: %s, want %s", inner.Node(), outer.Node())
			}
			if n := len(rwNodes(t, a, path)); n != 1 {
				t.Errorf("%d nodes after re-entry, want 1", n)
			}
			mustRelease(t, inner)
			if outer.Err() != nil || len(children(t, a, path)) != 1 {
				t.Fatalf("releasing the inner lease ended the hold: %v", outer.Err())
			}
			mustRelease(t, outer)
			if err := outer.Release(); !errors.Is(err, ErrNotHeld) {
				t.Errorf("second Release: %v, want ErrNotHeld", err)
			}
			if names := children(t, a, path); len(names) != 0 {
				t.Errorf("nodes left: %v", names)
			}
		})
	}
	t.Run("read released before write", func(t *testing.T) {
		w := acquired(t, ctx, rw.WriteLock().Acquire)
		r, err := rw.ReadLock().Acquire(w.Context())
		if err != nil {
			t.Fatal(err)
		}
		// The read lease's context carries both holds.
		w2, err := rw.WriteLock().Acquire(r.Context())
		if err != nil || w2.Node() != w.Node() {
			t.Fatalf("write re-entry through the downgraded read context: %v", err)
		}
		for _, l := range []*Lease{w2, r} {
			mustRelease(t, l)
		}
		if w.Err() != nil {
			t.Fatalf("write hold ended with the read release: %v", w.Err())
		}
		names := rwNodes(t, a, path)
		if len(names) != 1 || path+"/"+names[0] != w.Node() {
			t.Errorf("nodes %v, want only the write node", names)
		}
		mustRelease(t, w)
		if names := children(t, a, path); len(names) != 0 {
			t.Errorf("nodes left: %v", names)
		}
	})
}

func TestReadWriteLockWriterSessionExpires(t *testing.T) {
	path := testPath(t, "rw")
	a, proxy := newProxiedClient(t)
	b := newClient(t)
	ctx := testContext(t, 30*time.Second)
	w := acquired(t, ctx, NewReadWriteLock(a, path).WriteLock().Acquire)
	rCh := acquireInBackground(ctx, NewReadWriteLock(b, path).ReadLock(), nil)
	waitForNodes(t, b, path, 2)
	old := a.SessionID()
	expireHolder(t, ctx, proxy, old, w, "writer not told its session expired")
	if !errors.Is(w.Err(), ErrLockLost) {
		t.Errorf("Err = %v, want ErrLockLost", w.Err())
	}
	r := awaitGrant(t, rCh, 10*time.Second, "reader after the writer's session expired")
	eventually(t, 10*time.Second, "a new session", func() bool { s := a.SessionID(); return s != 0 && s != old })
	if err := w.Release(); !errors.Is(err, ErrLockLost) {
		t.Errorf("Release of the lost write lease: %v, want ErrLockLost", err)
	}
	if names := rwNodes(t, b, path); len(names) != 1 || path+"/"+names[0] != r.Node() {
		t.Errorf("nodes %v, want only the reader's %s", names, r.Node())
	}
	if _, _, err := b.Get(ctx, w.Node()); !isNoNode(err) {
		t.Errorf("the expired writer's node: %v, want no node", err)
	}
	mustRelease(t, r)
}

func TestReadWriteLockCancelWhileWaiting(t *testing.T) {
	for _, tc := range []struct {
		name string
		lock func(*ReadWriteLock) *InterProcessMutex
	}{
		{"reader", (*ReadWriteLock).ReadLock},
		{"writer", (*ReadWriteLock).WriteLock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := testPath(t, "rw")
			a, b := newClient(t), newClient(t)
			w, err := NewReadWriteLock(a, path).WriteLock().Acquire(testContext(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			ch := acquireInBackground(ctx, tc.lock(NewReadWriteLock(b, path)), nil)
			waitForNodes(t, a, path, 2)
			cancel()
			if r := <-ch; !errors.Is(r.err, context.Canceled) {
				t.Fatalf("cancelled Acquire: %v, want context.Canceled", r.err)
			}
			// A cancel that overtakes the create's reply leaves the node to the client's
			// background clean-up, so allow it a moment.
			eventually(t, 5*time.Second, "the cancelled waiter's node to go", func() bool {
				return len(children(t, a, path)) == 1
			})
			if names := children(t, a, path); path+"/"+names[0] != w.Node() {
				t.Errorf("nodes after a cancelled wait: %v, want only the writer's", names)
			}
			mustRelease(t, w)
		})
	}
}

func TestReadWriteLockExclusion(t *testing.T) {
	const sessions, rounds = 5, 10
	path := testPath(t, "rw")
	var (
		mu       sync.Mutex
		maxReads int
		reading  int
		readErrs []error
	)
	// read is a reader's round: the counter k must not change while it reads. It returns only the
	// error of its acquire, which ends the session's rounds; it records its other errors.
	read := func(ctx context.Context, c *framework.Client, rw *ReadWriteLock, k counter) error {
		l, err := rw.ReadLock().Acquire(ctx)
		if err != nil {
			return err
		}
		mu.Lock()
		reading++
		maxReads = max(maxReads, reading)
		mu.Unlock()
		before, _, err1 := c.Get(ctx, k.path)
		time.Sleep(5 * time.Millisecond)
		after, _, err2 := c.Get(ctx, k.path)
		err = errors.Join(err1, err2)
		if err == nil && string(before) != string(after) {
			err = errors.New("the counter changed while a reader held the lock")
		}
		mu.Lock()
		reading--
		mu.Unlock()
		err = errors.Join(err, l.Release())
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			readErrs = append(readErrs, err)
		}
		return nil
	}
	admin, holds := exclusionRun(t, sessions, rounds, func(i int, c *framework.Client, k counter) testkit.Contender {
		rw := NewReadWriteLock(c, path)
		write := testkit.Exclusive(rw.WriteLock().Acquire)
		return contender(i, k, c, func(ctx context.Context, n int) (testkit.Hold, error) {
			if (i+n)%3 == 0 {
				return testkit.Hold{}, read(ctx, c, rw, k)
			}
			return write(ctx, n)
		})
	})
	for _, err := range readErrs {
		t.Error(err)
	}
	t.Logf("%d writes; at most %d readers at once", len(holds), maxReads)
	if names := children(t, admin, path); len(names) != 0 {
		t.Errorf("nodes left: %v", names)
	}
}

func TestReadWriteLockParticipantNodes(t *testing.T) {
	path := testPath(t, "rw")
	admin := newClient(t)
	ctx := testContext(t, 30*time.Second)
	for i := 0; i < 3; i++ {
		if _, err := NewReadWriteLock(newClient(t), path).ReadLock().Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := 0; i < 2; i++ {
		acquireInBackground(wctx, NewReadWriteLock(newClient(t), path).WriteLock(), nil)
		waitForNodes(t, admin, path, 4+i)
	}
	rw := NewReadWriteLock(admin, path)
	for _, tc := range []struct {
		lock *InterProcessMutex
		kind string
		n    int
	}{{rw.ReadLock(), readLockName, 3}, {rw.WriteLock(), writeLockName, 2}} {
		nodes, err := tc.lock.ParticipantNodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != tc.n {
			t.Errorf("%s participants %v, want %d", tc.kind, nodes, tc.n)
		}
		for i, n := range nodes {
			if !strings.HasPrefix(n, path+"/") || !strings.Contains(n, tc.kind) {
				t.Errorf("%s participant %q", tc.kind, n)
			}
			if i > 0 && nodeSeq(n) <= nodeSeq(nodes[i-1]) {
				t.Errorf("%s participants not in queue order: %v", tc.kind, nodes)
			}
		}
	}
	rwNodes(t, admin, path)
}

func TestReadWriteLockBadInput(t *testing.T) {
	c := newClient(t)
	ctx := testContext(t, 10*time.Second)
	for _, tc := range []struct {
		name string
		c    *framework.Client
		path string
		want string
	}{
		{"empty path", c, "", `""`},
		{"relative path", c, "locks/rw", `"locks/rw"`},
		{"trailing slash", c, "/locks/rw/", `"/locks/rw/"`},
		{"root", c, "/", `"/"`},
		{"nil client", nil, "/locks/rw", "client is nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rw := NewReadWriteLock(tc.c, tc.path)
			for _, m := range []*InterProcessMutex{rw.ReadLock(), rw.WriteLock()} {
				_, err := m.Acquire(ctx)
				if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("Acquire: %v, want ErrInvalidArgument naming %s", err, tc.want)
				}
				if _, err := m.ParticipantNodes(ctx); !errors.Is(err, ErrInvalidArgument) {
					t.Errorf("ParticipantNodes: %v, want ErrInvalidArgument", err)
				}
			}
		})
	}
}
