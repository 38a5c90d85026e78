package framework

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
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
	// Kept only when the client has an observer (see requestObserved):
	op   int32  // its opcode
	path string // its server path, for the ops that have one
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

	readFailed atomic.Bool // a Read returned an error: go-zookeeper's reader ends with it

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
		r := sentRequest{xid: int32(binary.BigEndian.Uint32(b[4:8])), sent: now}
		if t.c.Observed() && r.xid > 0 {
			r.op, r.path = requestOpPath(b)
		}
		t.pending = append(t.pending, r)
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
	if err != nil {
		t.readFailed.Store(true)
	}
	for rest := b[:n]; len(rest) > 0; {
		k, done := t.rd.advance(rest)
		rest = rest[k:]
		if done {
			t.reply()
		}
	}
	if err != nil && t.c.Observed() {
		t.unanswered()
	}
	return n, err
}

// unanswered reports the requests left without an answer when the connection ends, as connection
// losses, to the client's observer.
func (t *trackedConn) unanswered() {
	t.mu.Lock()
	left := t.pending
	t.pending = nil
	t.mu.Unlock()
	now := monoNow()
	for _, r := range left {
		if r.op != 0 {
			t.c.observeRequest(r, now, zk.ErrConnectionClosed)
		}
	}
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
	var req sentRequest
	for i, r := range t.pending {
		if r.xid == t.rd.xid {
			// ZooKeeper answers a session's requests in order: everything before it is done.
			req = r
			t.pending = t.pending[i+1:]
			break
		}
	}
	t.mu.Unlock()
	if req.sent != 0 {
		t.c.acknowledged(t.gen, req.sent, 0)
		if req.op != 0 {
			t.c.observeRequest(req, monoNow(), replyErr(t.rd.errCode))
		}
	}
}

// replyFramer follows the packet boundaries of the replies a connection reads, however they are
// split into reads. Every packet is a 4-byte big-endian length and that many bytes. The first
// packet of a connection is the connect response (protocol version, timeout, session id,
// password); every later one starts with its xid.
type replyFramer struct {
	started bool // a packet has been completed: the connect response is past
	hdr     [20]byte
	pos     int   // header bytes collected of the current packet
	want    int   // header bytes the current packet has (set when its first byte comes)
	skip    int64 // bytes of the current packet still to skip once its header is done
	// Of the packet whose header was completed last:
	first   bool          // it was the connect response
	xid     int32         // its xid, when not first
	errCode int32         // its error code (0: none), when not first
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
	if f.pos == 0 {
		f.want = 20 // length, xid, zxid, error code
		if !f.started {
			f.want = 12 // length, protocol version, timeout
		}
	}
	want := f.want
	for n < len(b) && f.pos < want {
		f.hdr[f.pos] = b[n]
		f.pos++
		n++
		if f.pos == 4 {
			size := int64(binary.BigEndian.Uint32(f.hdr[:4]))
			if size+4 < int64(want) {
				want = int(size + 4) // a short packet: take it whole as its header
				f.want = want
			}
		}
	}
	if f.pos < want {
		return n, false
	}
	size := int64(binary.BigEndian.Uint32(f.hdr[:4]))
	f.first = !f.started
	f.xid, f.errCode, f.timeout = 0, 0, 0
	if f.first {
		if want >= 12 {
			f.timeout = time.Duration(int32(binary.BigEndian.Uint32(f.hdr[8:12]))) * time.Millisecond
		}
	} else {
		if want >= 8 {
			f.xid = int32(binary.BigEndian.Uint32(f.hdr[4:8]))
		}
		if want >= 20 {
			f.errCode = int32(binary.BigEndian.Uint32(f.hdr[16:20]))
		}
	}
	f.started = true
	f.skip = size + 4 - int64(want)
	f.pos = 0
	return n, true
}

// requestOps names the opcodes of the requests an observer is told of.
var requestOps = map[int32]string{
	1: "create", 2: "delete", 3: "exists", 4: "getData", 5: "setData", 6: "getACL", 7: "setACL",
	8: "getChildren", 9: "sync", 12: "getChildren", 13: "check", 14: "multi", 15: "create",
	16: "reconfig", 19: "create", 21: "create", -11: "closeSession",
}

// pathOps are the opcodes whose request body starts with the node's path.
var pathOps = map[int32]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true, 9: true, 12: true, 13: true, 15: true, 19: true, 21: true}

// requestOpPath returns the opcode of the request in b, as go-zookeeper writes it whole (length,
// xid, opcode, then the body), and its server path for the ops that have one. An opcode it does not
// name is 0.
func requestOpPath(b []byte) (op int32, path string) {
	if len(b) < 12 {
		return 0, ""
	}
	op = int32(binary.BigEndian.Uint32(b[8:12]))
	if _, ok := requestOps[op]; !ok {
		return 0, ""
	}
	if pathOps[op] && len(b) >= 16 {
		if n := int(int32(binary.BigEndian.Uint32(b[12:16]))); n > 0 && 16+n <= len(b) {
			path = string(b[16 : 16+n])
		}
	}
	return op, path
}

// replyErrs are the errors of the server's error codes, as go-zookeeper reports them.
var replyErrs = map[int32]error{
	-4: zk.ErrConnectionClosed, -7: errOperationTimeout, -8: zk.ErrBadArguments,
	-100: zk.ErrAPIError, -101: zk.ErrNoNode, -102: zk.ErrNoAuth, -103: zk.ErrBadVersion,
	-108: zk.ErrNoChildrenForEphemerals, -110: zk.ErrNodeExists, -111: zk.ErrNotEmpty,
	-112: zk.ErrSessionExpired, -114: zk.ErrInvalidACL, -115: zk.ErrAuthFailed, -116: zk.ErrClosing,
	-117: zk.ErrNothing, -118: zk.ErrSessionMoved,
}

// errOperationTimeout is the server's OPERATIONTIMEOUT, for which go-zookeeper has no error value.
var errOperationTimeout = errors.New("zk: operation timeout")

// replyErr returns the error of a reply's error code (nil for 0).
func replyErr(code int32) error {
	if code == 0 {
		return nil
	}
	if err, ok := replyErrs[code]; ok {
		return err
	}
	return fmt.Errorf("zk: server error code %d", code)
}

// observeRequest tells the client's observer that request r, sent at r.sent, was answered (or
// lost) at now with err.
func (c *Client) observeRequest(r sentRequest, now int64, err error) {
	path := r.path
	if path != "" {
		path = c.userPath(path)
	}
	// Not on the connection's reader, where an observer that makes a request would wait for a
	// reply that only this goroutine can read: the dispatch goroutine delivers it.
	c.observeQueued(Event{Kind: EventRequest, Op: requestOps[r.op], Path: path, Duration: time.Duration(now - r.sent), Err: err})
}
