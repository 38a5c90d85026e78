package framework

import (
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocurator/curator/internal/testkit/zkenv"
	"github.com/gocurator/curator/zktest"
)

// TestSendDeleteOrderHoldsThroughCut: SendDelete's delete is written to a connection that swallows
// it (black hole), so SendDelete returns; the connection is then cut and the delete goes to the
// background deleter, which also has an earlier job whose reply the proxy holds. The client's own
// next request after the reconnect (Exists) must still be applied after the delete: the deletes
// left over go first on the new connection.
func TestSendDeleteOrderHoldsThroughCut(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	rec := newRecorder()
	c := newClient(t, p.Addr(), rec, WithSessionTimeout(10*time.Second))
	ctx := testContext(t, 90*time.Second)
	const rounds = 6
	for round := range rounds {
		pathP := testPath(t)
		pathQ := testPath(t)
		mustCreate(t, c, pathP, nil)
		mustCreate(t, c, pathQ, nil)

		p.Blackhole(true)
		d, err := c.SendDelete(context.Background(), pathP)
		if err != nil {
			t.Fatal(err)
		}
		// Any earlier job of the deleter: here an unrelated background delete.
		c.DeleteInBackground(pathQ)
		time.Sleep(100 * time.Millisecond)
		p.HoldNextReply(zktest.OpDelete, 3*time.Second, zktest.Deliver)
		seen := len(rec.get())
		p.Blackhole(false) // closes the connection: the client reconnects at once, same session
		// A request made while the connection is dead but not yet noticed is queued by
		// go-zookeeper and goes first on the next connection: the order holds for requests made
		// once the client has seen the drop.
		rec.waitState(t, seen, Reconnected, 20*time.Second)
		start := time.Now()
		ok, _, err := c.Exists(ctx, pathP)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: Exists took %v, ok=%v, deletion over=%v pending=%d", round, time.Since(start), ok, isClosed(d.Done()), c.PendingDeletes())
		if err := d.Wait(ctx); err != nil {
			t.Fatalf("Wait = %v", err)
		}
		if ok {
			t.Fatalf("round %d: Exists(%s) by the same client, made after SendDelete returned, = true: the client's later request was applied before the delete", round, pathP)
		}
	}
}

// TestSendDeleteCloseRace: SendDelete racing with Close (WaitGroup Add after Wait started).
func TestSendDeleteCloseRace(t *testing.T) {
	t.Parallel()
	for i := range 40 {
		c := newClient(t, "", nil)
		path := testPath(t)
		mustCreate(t, c, path, nil)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); c.SendDelete(context.Background(), path) }()
		go func() { defer wg.Done(); c.Close() }()
		wg.Wait()
		_ = i
	}
}

// TestReconnectBlackholeNoSpin: while the proxy takes connections and closes them at once (black
// hole), the client redials under the backoff, not in a loop.
func TestReconnectBlackholeNoSpin(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	var dials atomic.Int64
	dialer := func(network, address string, timeout time.Duration) (net.Conn, error) {
		dials.Add(1)
		return net.DialTimeout(network, address, timeout)
	}
	c := newClient(t, p.Addr(), nil, WithDialer(dialer))
	p.Blackhole(true)
	p.CloseConnections()
	start := dials.Load()
	time.Sleep(3 * time.Second)
	n := dials.Load() - start
	t.Logf("%d dials in 3s while black-holed (state %v)", n, c.State())
	if n > 60 {
		t.Errorf("%d dials in 3s: a reconnect storm", n)
	}
	p.Blackhole(false)
	closeStart := time.Now()
	c.Close()
	t.Logf("Close took %v", time.Since(closeStart))
}

// epipeOnDelete breaks the connection (shuts its write side, so the write fails with EPIPE, as on
// a connection the network reset) when a delete of path is written, once.
type epipeOnDelete struct {
	*net.TCPConn
	armed *atomic.Bool
	path  string
}

func (b epipeOnDelete) Write(p []byte) (int, error) {
	if len(p) >= 16 && int32(binary.BigEndian.Uint32(p[8:12])) == 2 {
		n := int(binary.BigEndian.Uint32(p[12:16]))
		if 16+n <= len(p) && string(p[16:16+n]) == b.path && b.armed.CompareAndSwap(true, false) {
			b.TCPConn.CloseWrite()
		}
	}
	return b.TCPConn.Write(p)
}

// TestDeleterKeepsJobOnWriteError: a delete meets a connection reset (EPIPE on the write). That is
// a connection loss, not a refusal: the node is deleted once the client has reconnected to the same
// session, whether the delete came from the background deleter, SendDelete or DeleteGuaranteed.
func TestDeleterKeepsJobOnWriteError(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"DeleteInBackground", "SendDelete", "DeleteGuaranteed"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			var armed atomic.Bool
			path := testPath(t)
			dialer := func(network, address string, timeout time.Duration) (net.Conn, error) {
				c, err := net.DialTimeout(network, address, timeout)
				if err != nil {
					return nil, err
				}
				return epipeOnDelete{TCPConn: c.(*net.TCPConn), armed: &armed, path: path}, nil
			}
			c := newClient(t, "", nil, WithDialer(dialer), WithSessionTimeout(10*time.Second))
			ctx := testContext(t, 30*time.Second)
			mustCreate(t, c, path, nil)
			sid := c.SessionID()
			armed.Store(true)
			switch how {
			case "DeleteInBackground":
				c.DeleteInBackground(path)
			case "SendDelete":
				d, err := c.SendDelete(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("Deletion.Wait = %v", d.Wait(ctx))
			case "DeleteGuaranteed":
				t.Logf("DeleteGuaranteed = %v", c.DeleteGuaranteed(ctx, path))
			}
			if err := c.BlockUntilConnected(ctx); err != nil {
				t.Fatal(err)
			}
			if !zkenv.WaitGone(t, ctx, c, path, 10*time.Second) {
				t.Errorf("%s: node %s still there 10s later; client %v, same session %v, PendingDeletes %d",
					how, path, c.State(), c.SessionID() == sid, c.PendingDeletes())
			}
		})
	}
}
