package framework

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestObserverCallsClientOnRequest: an observer that, on seeing a request answered, makes a
// request of its own gets its answer: request events are not delivered on the goroutine that reads
// the connection's replies.
func TestObserverCallsClientOnRequest(t *testing.T) {
	t.Parallel()
	var c *Client
	var armed atomic.Bool
	var took atomic.Int64
	observed := make(chan struct{})
	path := testPath(t)
	obs := ObserverFunc(func(e Event) {
		if e.Kind != EventRequest || e.Op != "create" || e.Path != path || !armed.CompareAndSwap(true, false) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		_, _, err := c.Exists(ctx, path)
		took.Store(int64(time.Since(start)))
		close(observed)
		if err != nil {
			t.Errorf("Exists from the observer = %v", err)
		}
	})
	c = newClient(t, "", nil, WithObserver(obs), WithSessionTimeout(10*time.Second))
	ctx := testContext(t, 30*time.Second)
	armed.Store(true)
	start := time.Now()
	if _, err := c.Create(ctx, path, nil, Persistent); err != nil {
		t.Fatal(err)
	}
	created := time.Since(start)
	select {
	case <-observed:
	case <-time.After(10 * time.Second):
		t.Fatal("the observer was not called")
	}
	t.Logf("Create took %v; the observer's Exists took %v", created, time.Duration(took.Load()))
	if d := time.Duration(took.Load()); d > time.Second {
		t.Fatalf("the observer's Exists took %v: Observe runs on the connection's reader, so a request made from it cannot get its reply", d)
	}
}

// ctlDialer dials the test server directly and lets a test fail dials, close the connections it
// made, and hold back (until the connection is closed) the writes of delete requests.
type ctlDialer struct {
	mu           sync.Mutex
	fail         bool
	blockDeletes bool
	conns        []*ctlConn
}

type ctlConn struct {
	net.Conn
	block     bool
	closed    chan struct{}
	closeOnce sync.Once
}

func (d *ctlDialer) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return nil, errors.New("ctlDialer: refused")
	}
	nc, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	cc := &ctlConn{Conn: nc, block: d.blockDeletes, closed: make(chan struct{})}
	d.conns = append(d.conns, cc)
	return cc, nil
}

func (d *ctlDialer) set(fail, blockDeletes bool) {
	d.mu.Lock()
	d.fail, d.blockDeletes = fail, blockDeletes
	d.mu.Unlock()
}

func (d *ctlDialer) closeAll() {
	d.mu.Lock()
	conns := d.conns
	d.conns = nil
	d.mu.Unlock()
	for _, cc := range conns {
		cc.Close()
	}
}

func (cc *ctlConn) Write(b []byte) (int, error) {
	if cc.block && len(b) >= 12 && binary.BigEndian.Uint32(b[8:12]) == 2 {
		<-cc.closed
		return 0, net.ErrClosed
	}
	return cc.Conn.Write(b)
}

func (cc *ctlConn) Close() error {
	cc.closeOnce.Do(func() { close(cc.closed) })
	return cc.Conn.Close()
}

// TestGateOpensWhileSuspended: a connected period begins with a delete left over, so requests are
// held back until that delete is written; the period ends (Suspended) before it is. The held
// requests must stay held while the client is Suspended (BlockUntilConnected does not return), and
// the next period must send the delete first: a request made after SendDelete returned is applied
// after the delete.
func TestGateOpensWhileSuspended(t *testing.T) {
	t.Parallel()
	d := &ctlDialer{}
	rec := newRecorder()
	log := newEventLog()
	c := newClient(t, "", rec, WithDialer(d.dial), WithSessionTimeout(20*time.Second), WithObserver(log))
	ctx := testContext(t, 60*time.Second)
	path := testPath(t)
	mustCreate(t, c, path, nil)

	// Suspended, with the delete of path left to the background deleter.
	seen := len(rec.get())
	d.set(true, false)
	d.closeAll()
	rec.waitState(t, seen, Suspended, 20*time.Second)
	dl, err := c.SendDelete(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if c.PendingDeletes() != 1 {
		t.Fatalf("PendingDeletes = %d, want 1", c.PendingDeletes())
	}

	// Reconnect; the left-over delete is not written (yet): the gate holds connectedCh.
	seen = len(rec.get())
	d.set(false, true)
	rec.waitState(t, seen, Reconnected, 20*time.Second)
	// The period ends before the delete is written, and the next does not begin for a while.
	seen = len(rec.get())
	d.set(true, false)
	d.closeAll()
	rec.waitState(t, seen, Suspended, 20*time.Second)
	time.Sleep(2 * sendWait)

	st := c.State()
	bctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	berr := c.BlockUntilConnected(bctx)
	cancel()
	t.Logf("state %v, BlockUntilConnected = %v", st, berr)
	if st == Suspended && berr == nil {
		t.Errorf("BlockUntilConnected returned nil while the client is %v: connectedCh was closed by the gate of a period that had ended", st)
	}

	// A request made now (after SendDelete returned) must be applied after the delete.
	type result struct {
		ok  bool
		err error
	}
	res := make(chan result, 1)
	go func() {
		ok, _, err := c.Exists(ctx, path)
		res <- result{ok, err}
	}()
	time.Sleep(200 * time.Millisecond)
	d.set(false, false)
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if err := dl.Wait(ctx); err != nil {
		t.Fatalf("Deletion.Wait = %v", err)
	}
	t.Logf("Exists = %v", r.ok)
	for _, e := range log.all() {
		if e.Kind == EventRequest && e.Path == path || e.Kind == EventStateChange || e.Kind == EventDeleteDone {
			t.Logf("event %v %s %s %v %v", e.Kind, e.Op, e.State, e.Duration, e.Err)
		}
	}
	if r.ok {
		t.Errorf("Exists(%s), made after SendDelete returned, = true: applied before the left-over delete (no gate on the next period)", path)
	}
}

// TestObserverClosesOnDeleteDone: an observer that closes the client when a background delete is
// done (say, one the server refused) returns: delete events are not delivered on a goroutine that
// Close waits for.
func TestObserverClosesOnDeleteDone(t *testing.T) {
	t.Parallel()
	var c *Client
	closed := make(chan error, 1)
	var once atomic.Bool
	path := testPath(t)
	obs := ObserverFunc(func(e Event) {
		if e.Kind == EventDeleteDone && e.Path == path && once.CompareAndSwap(false, true) {
			closed <- c.Close()
		}
	})
	c = newClient(t, "", nil, WithObserver(obs))
	mustCreate(t, c, path, nil)
	c.DeleteInBackground(path)
	select {
	case err := <-closed:
		t.Logf("Close from the observer = %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close called from Observe(EventDeleteDone) has not returned after 10s: it waits (c.wg) for the deleter goroutine it runs on")
	}
}

// TestDeleterKeepsJobOrder: the background deleter sends its jobs' deletes in the order of the
// jobs, so a child's delete queued before its parent's goes first, and the parent's is not refused
// as not empty.
func TestDeleterKeepsJobOrder(t *testing.T) {
	t.Parallel()
	d := &ctlDialer{}
	rec := newRecorder()
	c := newClient(t, "", rec, WithDialer(d.dial), WithSessionTimeout(20*time.Second))
	ctx := testContext(t, 60*time.Second)
	const rounds = 10
	failed := 0
	for round := range rounds {
		parent := testPath(t)
		mustCreate(t, c, parent, nil)
		var children []string
		for i := range 5 {
			child := fmt.Sprintf("%s/c%d", parent, i)
			mustCreate(t, c, child, nil)
			children = append(children, child)
		}
		seen := len(rec.get())
		d.set(true, false)
		d.closeAll()
		rec.waitState(t, seen, Suspended, 20*time.Second)
		// The children first, then their parent: each delete is queued while disconnected.
		for _, child := range children {
			c.DeleteInBackground(child)
		}
		dl, err := c.SendDelete(ctx, parent)
		if err != nil {
			t.Fatal(err)
		}
		seen = len(rec.get())
		d.set(false, false)
		rec.waitState(t, seen, Reconnected, 20*time.Second)
		if err := dl.Wait(ctx); err != nil {
			failed++
			ok, _, _ := c.Exists(ctx, parent)
			t.Logf("round %d: the parent's guaranteed delete ended with %v; parent exists: %v", round, err, ok)
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d rounds: a parent's guaranteed delete, queued after its children's, was refused (not empty) and given up", failed, rounds)
	}
}
