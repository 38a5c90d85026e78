package framework

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/zktest"
)

// TestSendDeleteOrdersLaterRequests: SendDelete returns without the reply, yet every request the
// client makes afterwards is applied after the delete, so a create of the same path that follows
// at once succeeds, and a look at the node finds it gone. Many rounds, so that a delete sent
// after its caller returned would be caught.
func TestSendDeleteOrdersLaterRequests(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	ctx := testContext(t, 60*time.Second)
	path := testPath(t)
	mustCreate(t, c, path, nil)
	for i := range 200 {
		d, err := c.SendDelete(context.Background(), path)
		if err != nil {
			t.Fatalf("round %d: SendDelete: %v", i, err)
		}
		if ok, _, err := c.Exists(ctx, path); err != nil || ok {
			t.Fatalf("round %d: Exists right after SendDelete = %v, %v; want false, nil", i, ok, err)
		}
		if _, err := c.Create(ctx, path, nil, Persistent); err != nil {
			t.Fatalf("round %d: Create right after SendDelete: %v", i, err)
		}
		if err := d.Wait(ctx); err != nil {
			t.Fatalf("round %d: Wait: %v", i, err)
		}
	}
}

// TestSendDeleteDoesNotWaitForReply holds the delete's reply at the proxy: SendDelete returns while
// the reply is held (the server has applied the delete: another client sees the node gone), and
// the Deletion ends once the reply is delivered. DeleteGuaranteed, by contrast, waits for it.
func TestSendDeleteDoesNotWaitForReply(t *testing.T) {
	t.Parallel()
	p := testServer.Proxy(t)
	c := newClient(t, p.Addr(), nil)
	other := newClient(t, "", nil)
	path := testPath(t)
	mustCreate(t, c, path, nil)
	held := p.HoldNextReply(zktest.OpDelete, 3*time.Second, zktest.Deliver)
	d, err := c.SendDelete(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
		t.Fatal("the Deletion ended while its reply was held")
	default:
	}
	waitClosed(t, held, 10*time.Second, "the held reply")
	if exists(t, other, path) {
		t.Fatal("node still there once the server answered the delete")
	}
	select {
	case <-d.Done():
		t.Fatal("the Deletion ended while its reply was held")
	default:
	}
	if err := d.Wait(testContext(t, 20*time.Second)); err != nil {
		t.Fatalf("Wait = %v, want nil", err)
	}
	if n := c.PendingDeletes(); n != 0 {
		t.Errorf("PendingDeletes() = %d after the delete was confirmed, want 0", n)
	}
}

// TestSendDeleteOutcomes: what a Deletion reports, and what SendDelete refuses.
func TestSendDeleteOutcomes(t *testing.T) {
	t.Parallel()
	c := newClient(t, "", nil)
	ctx := testContext(t, 30*time.Second)
	parent := testPath(t)
	mustCreate(t, c, parent, nil)
	mustCreate(t, c, parent+"/child", nil)
	tests := []struct {
		name string
		path string
		want error // nil: Wait returns nil
	}{
		{"gone already", parent + "/missing", nil},
		{"not empty", parent, zk.ErrNotEmpty},
		{"deleted", parent + "/child", nil},
	}
	for _, tt := range tests {
		d, err := c.SendDelete(context.Background(), tt.path)
		if err != nil {
			t.Fatalf("%s: SendDelete: %v", tt.name, err)
		}
		if d.Path() != tt.path {
			t.Errorf("%s: Path() = %q, want %q", tt.name, d.Path(), tt.path)
		}
		err = d.Wait(ctx)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: Wait = %v, want %v", tt.name, err, tt.want)
		}
		if got := d.Err(); !errors.Is(got, err) && got != err {
			t.Errorf("%s: Err() = %v after Wait returned %v", tt.name, got, err)
		}
	}

	bad := []struct {
		name string
		path string
	}{{"empty", ""}, {"relative", "a/b"}, {"trailing slash", "/a/"}}
	for _, tt := range bad {
		if _, err := c.SendDelete(context.Background(), tt.path); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("SendDelete(%s %q) = %v, want ErrInvalidArgument", tt.name, tt.path, err)
		}
	}
	u, err := NewClient(testServer.ConnectString())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.SendDelete(context.Background(), "/x"); !errors.Is(err, ErrNotStarted) {
		t.Errorf("SendDelete before Start = %v, want ErrNotStarted", err)
	}
	u.Close()
	if _, err := u.SendDelete(context.Background(), "/x"); !errors.Is(err, ErrClosed) {
		t.Errorf("SendDelete after Close = %v, want ErrClosed", err)
	}
}

// TestSendDeleteWhileDisconnected: with the connection gone silent and noticed, SendDelete returns
// at once and leaves the node to the background deleter; Wait then waits for the reconnect (its ctx
// ending first is an error wrapping the ctx's), and returns nil once the node is gone. A Deletion
// still pending when the client is closed ends with ErrClosed.
func TestSendDeleteWhileDisconnected(t *testing.T) {
	t.Parallel()
	for _, closeFirst := range []bool{false, true} {
		name := "reconnect"
		if closeFirst {
			name = "close"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := testServer.Proxy(t)
			rec := newRecorder()
			c := newClient(t, p.Addr(), rec)
			other := newClient(t, "", nil)
			path := testPath(t)
			mustCreate(t, c, path, nil)
			p.Blackhole(true)
			rec.waitState(t, 1, Suspended, 10*time.Second)
			start := time.Now()
			d, err := c.SendDelete(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 100*time.Millisecond {
				t.Errorf("SendDelete while disconnected took %v", took)
			}
			short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := d.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Wait with a short ctx while disconnected = %v, want DeadlineExceeded", err)
			}
			if n := c.PendingDeletes(); n != 1 {
				t.Errorf("PendingDeletes() = %d, want 1", n)
			}
			if closeFirst {
				c.Close()
				waitClosed(t, d.Done(), 5*time.Second, "the Deletion's end after Close")
				if err := d.Err(); !errors.Is(err, ErrClosed) {
					t.Errorf("Err() after Close = %v, want ErrClosed", err)
				}
				return
			}
			p.Blackhole(false)
			if err := d.Wait(testContext(t, 30*time.Second)); err != nil {
				t.Fatalf("Wait after the reconnect = %v, want nil", err)
			}
			if exists(t, other, path) {
				t.Error("node still there after its Deletion ended")
			}
		})
	}
}

// resetOnDelete is a connection whose first write of a delete request, once armed, fails as a
// write to a connection the server has reset does (go-zookeeper then hands that error to the
// request), and closes the connection.
type resetOnDelete struct {
	net.Conn
	armed *atomic.Bool
}

func (r resetOnDelete) Write(b []byte) (int, error) {
	const opDelete = 2
	if len(b) >= 12 && int32(binary.BigEndian.Uint32(b[8:12])) == opDelete && r.armed.CompareAndSwap(true, false) {
		r.Conn.Close()
		return 0, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}
	}
	return r.Conn.Write(b)
}

// TestSendDeleteWriteFails: the write of the delete request fails (the connection was reset). That
// is a connection loss, not a refusal: the node is deleted once the client is connected again, and
// the Deletion ends with nil.
func TestSendDeleteWriteFails(t *testing.T) {
	t.Parallel()
	var armed atomic.Bool
	dial := func(network, address string, timeout time.Duration) (net.Conn, error) {
		conn, err := net.DialTimeout(network, address, timeout)
		if err != nil {
			return nil, err
		}
		return resetOnDelete{conn, &armed}, nil
	}
	c := newClient(t, "", nil, WithDialer(dial))
	other := newClient(t, "", nil)
	path := testPath(t)
	mustCreate(t, c, path, nil)
	armed.Store(true)
	d, err := c.SendDelete(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(testContext(t, 30*time.Second)); err != nil {
		t.Fatalf("Wait = %v, want nil (a failed write is a connection loss)", err)
	}
	if armed.Load() {
		t.Fatal("the delete's write never failed")
	}
	if exists(t, other, path) {
		t.Error("node still there after its Deletion ended")
	}
}

// TestTranslateNetworkErrors: a request's network error is a retryable connection loss; a
// server's answer and a caller's context error are not.
func TestTranslateNetworkErrors(t *testing.T) {
	t.Parallel()
	c, err := NewClient(testServer.ConnectString())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reset := &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}
	tests := []struct {
		name     string
		err      error
		connLoss bool
	}{
		{"reset", reset, true},
		{"broken pipe", os.NewSyscallError("write", syscall.EPIPE), true},
		{"eof", io.EOF, true},
		{"unexpected eof", io.ErrUnexpectedEOF, true},
		{"closed", net.ErrClosed, true},
		{"write deadline", os.ErrDeadlineExceeded, true},
		{"no node", zk.ErrNoNode, false},
		{"no auth", zk.ErrNoAuth, false},
		{"ctx deadline", context.DeadlineExceeded, false},
		{"ctx canceled", context.Canceled, false},
	}
	for _, tt := range tests {
		got := c.translate(tt.err)
		if isLoss := errors.Is(got, zk.ErrConnectionClosed); isLoss != tt.connLoss {
			t.Errorf("%s: translate(%v) = %v; connection loss %v, want %v", tt.name, tt.err, got, isLoss, tt.connLoss)
		}
		if !errors.Is(got, tt.err) {
			t.Errorf("%s: translate(%v) = %v, which no longer wraps the error", tt.name, tt.err, got)
		}
	}
}
