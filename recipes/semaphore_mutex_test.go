package recipes

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
)

func TestSemaphoreMutexExclusionAcrossSessions(t *testing.T) {
	const sessions, rounds = 5, 8
	path := testPath(t, "lock")
	admin, holds := exclusionRun(t, sessions, rounds, func(i int, c *framework.Client, k counter) testkit.Contender {
		m := NewSemaphoreMutex(c, path)
		s := contender(i, k, c, testkit.Exclusive(m.Acquire))
		increment := s.Inside
		s.Inside = func(ctx context.Context) (int64, error) {
			var held error
			if !m.IsAcquiredInThisProcess() {
				held = errors.New("IsAcquiredInThisProcess false while held")
			}
			v, err := increment(ctx)
			return v, errors.Join(held, err)
		}
		return s
	})
	if len(holds) != sessions*rounds {
		t.Errorf("%d holds, want %d", len(holds), sessions*rounds)
	}
	noSemaphoreNodesLeft(t, admin, path)
}

func TestSemaphoreMutexNotReentrant(t *testing.T) {
	c := newClient(t)
	path := testPath(t, "lock")
	m := NewSemaphoreMutex(c, path)
	l, err := m.Acquire(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(l.Context(), 300*time.Millisecond)
	defer cancel()
	if _, err := m.Acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire with the holder's lease context: %v, want DeadlineExceeded", err)
	}
	if _, err := m.TryAcquire(l.Context()); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryAcquire with the holder's lease context: %v, want ErrLocked", err)
	}
	if names := leaseNodes(t, c, path); !sameNodes(path+"/leases", names, []string{l.Node()}) {
		t.Errorf("lease nodes after the failed re-entry: %v, want only %s", names, l.Node())
	}
	if names := lockNodes(t, c, path); len(names) != 0 {
		t.Errorf("internal mutex nodes after the failed re-entry: %v", names)
	}
	if l.Err() != nil || !m.IsAcquiredInThisProcess() {
		t.Fatalf("the failed re-entry ended the hold: %v", l.Err())
	}
	// Any goroutine may release it.
	released := make(chan error, 1)
	go func() { released <- l.Release() }()
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if m.IsAcquiredInThisProcess() {
		t.Error("IsAcquiredInThisProcess after Release")
	}
	if err := l.Release(); !errors.Is(err, ErrNotHeld) {
		t.Errorf("second Release: %v, want ErrNotHeld", err)
	}
}

func TestSemaphoreMutexTryAcquire(t *testing.T) {
	path := testPath(t, "lock")
	a, b := newClient(t), newClient(t)
	ctx := testContext(t, 10*time.Second)
	ma, mb := NewSemaphoreMutex(a, path), NewSemaphoreMutex(b, path)
	l, err := ma.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("TryAcquire of a free mutex: %v", err)
	}
	if _, err := mb.TryAcquire(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("TryAcquire of a held mutex: %v, want ErrLocked", err)
	}
	if !ma.IsAcquiredInThisProcess() || mb.IsAcquiredInThisProcess() {
		t.Errorf("IsAcquiredInThisProcess: holder %v, other %v", ma.IsAcquiredInThisProcess(), mb.IsAcquiredInThisProcess())
	}
	if names := leaseNodes(t, a, path); !sameNodes(path+"/leases", names, []string{l.Node()}) {
		t.Errorf("TryAcquire left lease nodes: %v", names)
	}
	if names := lockNodes(t, a, path); len(names) != 0 {
		t.Errorf("TryAcquire left internal mutex nodes: %v", names)
	}
	nodes, err := mb.ParticipantNodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0] != l.Node() {
		t.Errorf("ParticipantNodes = %v, %v; want [%s]", nodes, err, l.Node())
	}
	// Another client sees the lease gone once the release's delete is applied: ReleaseWait.
	if err := l.ReleaseWait(ctx); err != nil {
		t.Fatal(err)
	}
	l2, err := mb.TryAcquire(ctx)
	if err != nil {
		t.Fatalf("TryAcquire after release: %v", err)
	}
	if l2.Token() <= l.Token() {
		t.Errorf("token %d not above the previous holder's %d", l2.Token(), l.Token())
	}
	mustRelease(t, l2)
}

func TestSemaphoreMutexAsLocker(t *testing.T) {
	c := newClient(t)
	path := testPath(t, "lock")
	var lk Locker = NewSemaphoreMutex(c, path)
	l, err := lk.Acquire(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// The semaphore on the same path sees the mutex's lease: the two are one recipe.
	if _, err := NewSemaphore(c, path, 1).TryAcquire(testContext(t, 10*time.Second), 1); !errors.Is(err, ErrLocked) {
		t.Errorf("Semaphore of 1 on a held SemaphoreMutex's path: %v, want ErrLocked", err)
	}
	mustRelease(t, l)
}

func BenchmarkSemaphoreMutexUncontended(b *testing.B) {
	c := newClient(b)
	benchUncontended(b, c, NewSemaphoreMutex(c, testPath(b, "lock")))
}
