package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
)

// TestGuaranteedDeleteAfterDeadConnection makes a guaranteed delete, and the release of a lock,
// run into a dead connection: the connection black-holed, or the member the client is connected
// to killed while the client cannot reach another. Both calls return without waiting for the
// connection (the delete is left to the background), nothing is deleted meanwhile, and once the
// client is back, with its session, the node and the lock node are deleted and a waiter on
// another client gets the lock.
func TestGuaranteedDeleteAfterDeadConnection(t *testing.T) {
	e := startEnsemble(t)
	admin := newSession(t, e, "admin", direct)
	for _, tc := range []struct {
		name string
		// cut makes the connection of s dead; it returns a func that brings it back.
		cut func(t *testing.T, s *session) (restore func())
	}{
		{"black-holed", func(t *testing.T, s *session) func() {
			s.ep.Blackhole(true)
			return func() { s.ep.Blackhole(false) }
		}},
		{"member killed", func(t *testing.T, s *session) func() {
			on := s.member(t, e)
			for i := range e.Size() {
				if i != on {
					s.ep.Proxy(i).Blackhole(true)
				}
			}
			if err := e.Kill(on); err != nil {
				t.Fatal(err)
			}
			return func() {
				for i := range e.Size() {
					s.ep.Proxy(i).Blackhole(false)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := "/guaranteed-delete/" + strings.ReplaceAll(tc.name, " ", "-")
			node, lockPath := base+"/node", base+"/lock"
			ctx := testContext(t, time.Minute)
			mon := newMonitor()
			var g grants
			s := newSession(t, e, "deleter", proxied.with(framework.SessionErrorPolicy))
			other := newSession(t, e, "waiter", direct)
			if _, err := s.c.Create(ctx, node, []byte("x"), framework.Persistent, framework.WithParents()); err != nil {
				t.Fatal(err)
			}
			lease, err := mutexKind.acquire(s.c, lockPath)(ctx)
			if err != nil {
				t.Fatal(err)
			}
			h := mon.enter(lockPath, s.name, exclusive, 1, lease)
			w := startWaiter(ctx, "waiter", other, mutexKind, lockPath, mon, &g, holdFor(0))
			eventually(t, waitTimeout, "the waiter queued", func() bool {
				n, _ := nodesUnder(ctx, admin.c, lockPath)
				return len(n) == 2
			})
			sid, mark := s.c.SessionID(), s.states.mark()

			restore := tc.cut(t, s)
			dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			begin := time.Now()
			err = s.c.DeleteGuaranteed(dctx, node)
			cancel()
			if err != nil {
				t.Fatalf("DeleteGuaranteed on a dead connection = %v; want nil (left to the background)", err)
			}
			if took := time.Since(begin); took > 2*time.Second {
				t.Errorf("DeleteGuaranteed took %v on a dead connection", took)
			}
			if n := s.c.PendingDeletes(); n < 1 {
				t.Errorf("PendingDeletes() = %d; want the delete left to the background", n)
			}
			mon.leave(lockPath, h)
			released := make(chan error, 1)
			go func() { released <- lease.Release() }()
			pause(ctx, 700*time.Millisecond)
			if ok, _, err := admin.c.Exists(ctx, node); err != nil || !ok {
				t.Errorf("Exists(%s) before the connection is back = %v, %v; want true", node, ok, err)
			}
			if w.finished() {
				t.Errorf("the waiter got the lock before the holder's connection was back")
			}

			restore()
			if err := <-released; err != nil {
				t.Errorf("Release: %v", err)
			}
			eventually(t, waitTimeout, "the node deleted", func() bool {
				ok, _, err := admin.c.Exists(ctx, node)
				return err == nil && !ok
			})
			select {
			case <-w.done:
				if w.err != nil {
					t.Errorf("waiter: %v", w.err)
				}
			case <-time.After(waitTimeout):
				t.Fatalf("the waiter did not get the lock")
			}
			noPendingDeletes(t, waitTimeout, s)
			waitStates(t, []*session{s}, []int{mark}, framework.Suspended, framework.Reconnected)
			if s.c.SessionID() != sid {
				t.Errorf("session 0x%x; want 0x%x kept", s.c.SessionID(), sid)
			}
			mon.check(t)
			noNodesLeft(t, admin.c, waitTimeout, lockPath)
			restartAll(t, e)
		})
	}
}
