package framework

import (
	"encoding/binary"
	"net"
	"sync"
	"time"
)

// The server expires a session a session timeout after the last packet it received from the
// client. The client cannot see that moment, but it can bound it from below: when the reply to a
// request comes back, the server received that request, so it received something at or after the
// moment the request was sent. The newest such send time (the "last acknowledgement") is what the
// client times Lost from. The time bytes were read proves nothing: a watch notification is pushed
// by the server unasked, and a reply read by a process that was paused may have been sent long
// before.

// clockBase is the origin of monoNow: time.Since reads the monotonic clock, so wall-clock steps
// do not move acknowledgements.
var clockBase = time.Now()

// monoNow returns the monotonic time in nanoseconds since clockBase.
func monoNow() int64 { return int64(time.Since(clockBase)) }

// Special xids of replies, as ZooKeeper's ClientCnxn names them.
const (
	xidNotification = -1 // a watch event, pushed by the server: acknowledges nothing
)

// maxPending bounds the requests a connection remembers while it waits for their replies; older
// ones are forgotten (their replies then acknowledge nothing, which only makes Lost come sooner).
const maxPending = 1 << 14

// sentRequest is a request written to a connection and not yet answered.
type sentRequest struct {
	xid  int32
	sent int64 // monoNow when its write began
}

// trackedConn wraps one TCP connection of go-zookeeper's: it records when each request is sent,
// frames the replies read back, and reports to the client the send time of each request whose
// reply arrives (the connect response answers the connect request).
type trackedConn struct {
	net.Conn
	c   *Client
	gen uint64 // the generation of the go-zookeeper connection this belongs to

	mu          sync.Mutex
	connectSent int64 // monoNow when the connect request was written; 0 until then
	pending     []sentRequest

	// Read side, touched only by the one goroutine that reads.
	rd replyFramer
}

func newTrackedConn(conn net.Conn, c *Client, gen uint64) *trackedConn {
	return &trackedConn{Conn: conn, c: c, gen: gen}
}

// Write records the request in b (go-zookeeper writes every request whole, in one Write) and
// sends it.
func (t *trackedConn) Write(b []byte) (int, error) {
	now := monoNow()
	t.mu.Lock()
	switch {
	case t.connectSent == 0:
		// The first packet of a connection is the connect request; it has no xid.
		t.connectSent = now
	case len(b) >= 8:
		if len(t.pending) >= maxPending {
			t.pending = append(t.pending[:0], t.pending[len(t.pending)-maxPending/2:]...)
		}
		t.pending = append(t.pending, sentRequest{xid: int32(binary.BigEndian.Uint32(b[4:8])), sent: now})
	}
	t.mu.Unlock()
	n, err := t.Conn.Write(b)
	if err == nil && t.c.writes.pending() {
		t.c.writes.written(b)
	}
	return n, err
}

// Read reads, and follows the replies in what was read.
func (t *trackedConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	for rest := b[:n]; len(rest) > 0; {
		k, done := t.rd.advance(rest)
		rest = rest[k:]
		if done {
			t.reply()
		}
	}
	return n, err
}

// reply handles the header of one reply, just framed.
func (t *trackedConn) reply() {
	if t.rd.first {
		t.mu.Lock()
		sent := t.connectSent
		t.mu.Unlock()
		if sent != 0 {
			t.c.acknowledged(t.gen, sent, t.rd.timeout)
		}
		return
	}
	if t.rd.xid == xidNotification {
		return
	}
	t.mu.Lock()
	var sent int64
	for i, r := range t.pending {
		if r.xid == t.rd.xid {
			// ZooKeeper answers a session's requests in order: everything before it is done.
			sent = r.sent
			t.pending = t.pending[i+1:]
			break
		}
	}
	t.mu.Unlock()
	if sent != 0 {
		t.c.acknowledged(t.gen, sent, 0)
	}
}

// replyFramer follows the packet boundaries of the replies a connection reads, however they are
// split into reads. Every packet is a 4-byte big-endian length and that many bytes. The first
// packet of a connection is the connect response (protocol version, timeout, session id,
// password); every later one starts with its xid.
type replyFramer struct {
	started bool // a packet has been completed: the connect response is past
	hdr     [12]byte
	pos     int   // header bytes collected of the current packet
	skip    int64 // bytes of the current packet still to skip once its header is done
	// Of the packet whose header was completed last:
	first   bool          // it was the connect response
	xid     int32         // its xid, when not first
	timeout time.Duration // the negotiated session timeout, when first
}

// advance consumes a prefix of b and returns its length. done reports that the header of a
// packet was completed by it (first, xid and timeout then describe that packet).
func (f *replyFramer) advance(b []byte) (n int, done bool) {
	if f.skip > 0 {
		k := int64(len(b))
		if k > f.skip {
			k = f.skip
		}
		f.skip -= k
		return int(k), false
	}
	want := 8 // length, xid
	if !f.started {
		want = 12 // length, protocol version, timeout
	}
	for n < len(b) && f.pos < want {
		f.hdr[f.pos] = b[n]
		f.pos++
		n++
		if f.pos == 4 {
			size := int64(binary.BigEndian.Uint32(f.hdr[:4]))
			if size+4 < int64(want) {
				want = int(size + 4) // a short packet: take it whole as its header
			}
		}
	}
	if f.pos < want {
		return n, false
	}
	size := int64(binary.BigEndian.Uint32(f.hdr[:4]))
	f.first = !f.started
	f.xid, f.timeout = 0, 0
	if f.first {
		if want >= 12 {
			f.timeout = time.Duration(int32(binary.BigEndian.Uint32(f.hdr[8:12]))) * time.Millisecond
		}
	} else if want >= 8 {
		f.xid = int32(binary.BigEndian.Uint32(f.hdr[4:8]))
	}
	f.started = true
	f.skip = size + 4 - int64(want)
	f.pos = 0
	return n, true
}
