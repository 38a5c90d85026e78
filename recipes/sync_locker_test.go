package recipes

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
)

// TestSyncLockerExclusion has goroutines of two processes (two sessions) increment a shared
// counter non-atomically under sync.Locker views of one lock path; a second holder would show as
// a failed versioned write.
func TestSyncLockerExclusion(t *testing.T) {
	path := testPath(t, "lock")
	admin := newClient(t)
	k := newCounter(t, admin, testPath(t, "counter"))
	const goroutines, rounds = 2, 5
	lockers := []sync.Locker{
		NewInterProcessMutex(newClient(t), path).SyncLocker(),
		NewSyncLocker(NewInterProcessMutex(newClient(t), path)),
	}
	var wg sync.WaitGroup
	for i, l := range lockers {
		for g := range goroutines {
			wg.Go(func() {
				for range rounds {
					l.Lock()
					err := k.increment(context.Background(), admin, 5*time.Millisecond)
					l.Unlock()
					if err != nil {
						t.Errorf("locker %d goroutine %d: %v", i, g, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if got, want := k.value(t), len(lockers)*goroutines*rounds; got != want {
		t.Errorf("counter = %d, want %d", got, want)
	}
	if names := children(t, admin, path); len(names) != 0 {
		t.Errorf("nodes after the last Unlock: %v", names)
	}
}

// TestSyncLockerLease checks the view's Lease, over another Locker than the mutex.
func TestSyncLockerLease(t *testing.T) {
	c := newClient(t)
	path := testPath(t, "lock")
	s := NewSyncLocker(NewSemaphoreMutex(c, path))
	if s.Lease() != nil {
		t.Fatal("Lease of an unlocked SyncLocker is not nil")
	}
	s.Lock()
	l := s.Lease()
	if l == nil || l.Err() != nil || l.Token() <= 0 {
		t.Fatalf("Lease while locked = %v", l)
	}
	s.Unlock()
	if s.Lease() != nil || l.Err() != ErrReleased {
		t.Errorf("after Unlock: Lease %v, old lease Err %v", s.Lease(), l.Err())
	}
}

// TestSyncLockerWaitsThroughOutage checks that Lock keeps waiting while ZooKeeper cannot be
// reached (past the retry policy and the session's expiry) and returns holding the lock once it
// can.
func TestSyncLockerWaitsThroughOutage(t *testing.T) {
	c, p := newProxiedClient(t)
	path := testPath(t, "lock")
	s := NewInterProcessMutex(c, path).SyncLocker()
	p.Blackhole(true)
	locked := make(chan struct{})
	go func() {
		s.Lock()
		close(locked)
	}()
	time.Sleep(2 * testSessionTimeout) // the outage outlasts the session
	select {
	case <-locked:
		t.Fatal("Lock returned while ZooKeeper was unreachable")
	default:
	}
	p.Blackhole(false)
	within(t, locked, 30*time.Second, "Lock did not return after the outage")
	l := s.Lease()
	if _, st, err := c.Get(testContext(t, 10*time.Second), l.Node()); err != nil || st.EphemeralOwner != c.SessionID() {
		t.Errorf("the hold's node %s: %v, want owned by the live session", l.Node(), err)
	}
	s.Unlock()
}

// TestSyncLockerPanics checks the panics that sync.Locker's contract forces: Unlock when unlocked,
// and Lock of a lock that can never be had.
func TestSyncLockerPanics(t *testing.T) {
	closed, err := framework.NewClient(testServer.ConnectString())
	if err != nil {
		t.Fatal(err)
	}
	closed.Start()
	closed.Close()
	c := newClient(t)
	for _, tc := range []struct {
		name string
		do   func()
		want string
	}{
		{"unlock of unlocked", func() { NewInterProcessMutex(c, testPath(t, "lock")).SyncLocker().Unlock() }, "unlocked"},
		{"bad path", func() { NewInterProcessMutex(c, "relative").SyncLocker().Lock() }, `"relative"`},
		{"closed client", func() { NewInterProcessMutex(closed, "/lock").SyncLocker().Lock() }, "closed"},
		{"nil locker", func() { NewSyncLocker(nil).Lock() }, "nil"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tc.want) {
					t.Errorf("panic %v, want one naming %s", r, tc.want)
				}
			}()
			tc.do()
		})
	}
}
