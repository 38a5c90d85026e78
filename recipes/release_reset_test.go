package recipes

import (
	"encoding/binary"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit/zkenv"
)

// brokenOnDelete is a TCP connection to the real server that breaks, as a connection reset by the
// network does, at the moment the client writes a delete request for a path containing match:
// it shuts the socket's write side, so the kernel fails that write with EPIPE ("write: broken
// pipe"), the error a write on a connection the peer has reset gets.
type brokenOnDelete struct {
	*net.TCPConn
	armed *atomic.Bool
	match string
}

func (b brokenOnDelete) Write(p []byte) (int, error) {
	if len(p) >= 16 && int32(binary.BigEndian.Uint32(p[8:12])) == 2 {
		n := int(binary.BigEndian.Uint32(p[12:16]))
		if 16+n <= len(p) && strings.Contains(string(p[16:16+n]), b.match) && b.armed.CompareAndSwap(true, false) {
			b.TCPConn.CloseWrite()
		}
	}
	return b.TCPConn.Write(p)
}

// TestReleaseOnResetConnection: the connection breaks (EPIPE) just as Release's delete is written.
// That is a connection loss, not a refusal by the server: the delete never reached the server, the
// client reconnects to the same session within milliseconds, and the background deleter deletes
// the node then, so another client can take the lock (and ReleaseWait returns nil).
func TestReleaseOnResetConnection(t *testing.T) {
	eachReleaseForm(t, func(t *testing.T, wait bool) {
		var armed atomic.Bool
		path := testPath(t, "lock")
		dialer := func(network, address string, timeout time.Duration) (net.Conn, error) {
			c, err := net.DialTimeout(network, address, timeout)
			if err != nil {
				return nil, err
			}
			return brokenOnDelete{TCPConn: c.(*net.TCPConn), armed: &armed, match: "/lock/"}, nil
		}
		a := newClient(t, framework.WithDialer(dialer), framework.WithSessionTimeout(10*time.Second))
		b := newClient(t)
		ctx := testContext(t, 60*time.Second)
		l := acquired(t, ctx, NewInterProcessMutex(a, path).Acquire)
		node, sid := l.Node(), a.SessionID()
		armed.Store(true)
		if wait {
			t.Logf("ReleaseWait = %v", l.ReleaseWait(ctx))
		} else if err := l.Release(); err != nil {
			t.Fatalf("Release = %v", err)
		}
		if err := a.BlockUntilConnected(ctx); err != nil {
			t.Fatal(err)
		}
		if !zkenv.WaitGone(t, ctx, b, node, 10*time.Second) {
			short := testContext(t, 2*time.Second)
			_, aerr := NewInterProcessMutex(b, path).Acquire(short)
			t.Errorf("released node %s still there 10s after A reconnected (state %v, same session %v, PendingDeletes %d); another client's Acquire: %v",
				node, a.State(), a.SessionID() == sid, a.PendingDeletes(), aerr)
		}
	})
}

// slowOnDelete is a connection whose write of a delete request stalls, once, until unstall is
// closed, as a write into a full send buffer (a peer that stopped reading) does.
type slowOnDelete struct {
	*net.TCPConn
	armed   *atomic.Bool
	unstall <-chan struct{}
}

func (s slowOnDelete) Write(p []byte) (int, error) {
	if len(p) >= 12 && int32(binary.BigEndian.Uint32(p[8:12])) == 2 && s.armed.CompareAndSwap(true, false) {
		<-s.unstall
	}
	return s.TCPConn.Write(p)
}

// TestMultiLockReleaseBound: while the connection's writes stall, a MultiLock's Release waits
// once for its parts' deletes to be written, not once per part.
func TestMultiLockReleaseBound(t *testing.T) {
	t.Parallel()
	var armed atomic.Bool
	unstall := make(chan struct{})
	defer close(unstall) // before the client's Close, which the stalled write would hold up
	dialer := func(network, address string, timeout time.Duration) (net.Conn, error) {
		c, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return slowOnDelete{TCPConn: c.(*net.TCPConn), armed: &armed, unstall: unstall}, nil
	}
	a := newClient(t, framework.WithDialer(dialer), framework.WithSessionTimeout(20*time.Second))
	ctx := testContext(t, 60*time.Second)
	var paths []string
	for i := range 8 {
		paths = append(paths, testPath(t, "lock")+string(rune('a'+i)))
	}
	l := acquired(t, ctx, NewMultiLockPaths(a, paths...).Acquire)
	armed.Store(true)
	start := time.Now()
	err := l.Release()
	took := time.Since(start)
	t.Logf("MultiLock (%d parts) Release = %v, took %v", len(paths), err, took)
	if took > 1500*time.Millisecond {
		t.Errorf("Release took %v, past the ~1s bound", took)
	}
}
