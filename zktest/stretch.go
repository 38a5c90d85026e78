package zktest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// A Direction is one way traffic flows through a Proxy. Directions combine
// with |.
type Direction int

const (
	// ToServer is the traffic from the clients to the server: requests.
	ToServer Direction = 1 << iota
	// ToClient is the traffic from the server to the clients: replies and
	// watch notifications.
	ToClient
)

func (d Direction) String() string {
	switch d {
	case ToServer:
		return "ToServer"
	case ToClient:
		return "ToClient"
	case ToServer | ToClient:
		return "ToServer|ToClient"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// An Op is a kind of ZooKeeper request, for HoldNextReply. Each stands for
// every opcode of that kind.
type Op int

const (
	OpCreate      Op = iota + 1 // create, create2, createContainer, createTTL
	OpDelete                    // delete
	OpExists                    // exists
	OpGetData                   // getData
	OpSetData                   // setData
	OpGetChildren               // getChildren, getChildren2
	OpSync                      // sync
	OpMulti                     // multi (transactions)
)

var opNames = map[Op]string{
	OpCreate: "OpCreate", OpDelete: "OpDelete", OpExists: "OpExists", OpGetData: "OpGetData",
	OpSetData: "OpSetData", OpGetChildren: "OpGetChildren", OpSync: "OpSync", OpMulti: "OpMulti",
}

func (o Op) String() string {
	if s, ok := opNames[o]; ok {
		return s
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// matches reports whether the request opcode code is of kind o.
func (o Op) matches(code int32) bool {
	switch o {
	case OpCreate:
		return isCreate(code)
	case OpDelete:
		return code == 2
	case OpExists:
		return code == 3
	case OpGetData:
		return code == 4
	case OpSetData:
		return code == 5
	case OpGetChildren:
		return code == 8 || code == 12
	case OpSync:
		return code == 9
	case OpMulti:
		return code == 14
	}
	return false
}

// A HoldMode says what HoldNextReply does with a reply once its hold is over.
type HoldMode int

const (
	// Deliver delivers the held reply, and everything the server sent
	// after it, in order.
	Deliver HoldMode = iota
	// Drop closes the client's connection instead, on both sides: the
	// client never gets the reply, although the server has performed the
	// request.
	Drop
)

func (m HoldMode) String() string {
	switch m {
	case Deliver:
		return "Deliver"
	case Drop:
		return "Drop"
	}
	return fmt.Sprintf("HoldMode(%d)", int(m))
}

// Delay makes the proxy delay every packet that flows in the given
// directions by d from the moment the proxy reads it, on every connection,
// open or future; 0 turns the delay off. Packets keep their order: a packet
// is never delivered before one that the proxy read earlier in the same
// direction, so lowering the delay does not let packets already waiting
// overtake. The delay applies to packets read from now on.
//
// A ZooKeeper client that hears nothing from the server for two thirds of
// its session timeout drops its connection, and a server that hears nothing
// from a client for the session timeout expires the session: a delay of that
// order makes both happen, as a congested network would.
//
// A negative d counts as 0, and a dirs without ToServer or ToClient does
// nothing.
func (p *Proxy) Delay(dirs Direction, d time.Duration) {
	d = max(d, 0)
	if dirs&ToServer != 0 {
		p.delayToServer.Store(int64(d))
	}
	if dirs&ToClient != 0 {
		p.delayToClient.Store(int64(d))
	}
}

// delay returns the current delay of one direction.
func (p *Proxy) delay(toServer bool) time.Duration {
	if toServer {
		return time.Duration(p.delayToServer.Load())
	}
	return time.Duration(p.delayToClient.Load())
}

// A hold is one HoldNextReply.
type hold struct {
	op      Op
	d       time.Duration
	mode    HoldMode
	started chan struct{} // closed once the reply arrived and is held
	taken   *atomic.Bool  // shared by the holds of an EnsembleProxy's HoldNextReply; nil for a Proxy's
}

// HoldNextReply arms the proxy to hold back the server's reply to the next
// request of kind op that any client sends through the proxy (only that one:
// the proxy is then disarmed for it). The request itself reaches the server
// at once, and the server performs it. When its reply arrives, the proxy
// holds it for d, and with it everything else the server sends on that
// connection afterwards (other replies, pings, watch notifications), so that
// the client sees the server in order. Then, with mode Deliver, it delivers
// them all, in order; with Drop it closes the connection instead, on both
// sides, so that the client never learns the request's outcome.
//
// The returned channel is closed once the reply has arrived at the proxy and
// the hold has started: by then the server has performed the request. If the
// connection closes before the reply arrives, the hold is armed again for
// the next request of that kind. If no such request passes, the channel is
// never closed. Holds of several kinds, or several of one kind, may be armed
// at once; each takes the next request of its kind that no earlier hold
// took.
//
// A held connection carries no pings either: a client whose reply is held
// for longer than two thirds of its session timeout drops the connection
// itself (and, past the session timeout, the server expires the session).
// Black-hole mode and CutAfterNextCreate take precedence over a hold.
func (p *Proxy) HoldNextReply(op Op, d time.Duration, mode HoldMode) <-chan struct{} {
	h := &hold{op: op, d: max(d, 0), mode: mode, started: make(chan struct{})}
	p.arm(h)
	return h.started
}

func (p *Proxy) arm(h *hold) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holds = append(p.holds, h)
}

// Delay sets the delay of every proxy of ep, as Proxy.Delay does.
func (ep *EnsembleProxy) Delay(dirs Direction, d time.Duration) {
	for _, p := range ep.proxies {
		p.Delay(dirs, d)
	}
}

// HoldNextReply arms every proxy of ep to hold the reply to the next request
// of kind op, as Proxy.HoldNextReply does, whichever member it goes to: only
// that one reply is held, and the returned channel is closed once it is.
func (ep *EnsembleProxy) HoldNextReply(op Op, d time.Duration, mode HoldMode) <-chan struct{} {
	started := make(chan struct{})
	taken := new(atomic.Bool)
	for _, p := range ep.proxies {
		p.arm(&hold{op: op, d: max(d, 0), mode: mode, started: started, taken: taken})
	}
	return started
}

// claimHold removes and returns the first armed hold whose kind matches the
// request opcode code, or nil.
func (p *Proxy) claimHold(code int32) *hold {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < len(p.holds); i++ {
		h := p.holds[i]
		if !h.op.matches(code) {
			continue
		}
		if h.taken != nil {
			select {
			case <-h.started:
				// Another proxy of the EnsembleProxy has held this reply.
				p.holds = append(p.holds[:i:i], p.holds[i+1:]...)
				i--
				continue
			default:
			}
			if !h.taken.CompareAndSwap(false, true) {
				continue // another proxy awaits this reply; it may arm this one again
			}
		}
		p.holds = append(p.holds[:i:i], p.holds[i+1:]...)
		return h
	}
	return nil
}

// rearm arms holds again whose replies never came.
func (p *Proxy) rearm(hs []*hold) {
	if len(hs) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		for _, h := range hs {
			if h.taken != nil {
				h.taken.Store(false)
			}
		}
		p.holds = append(hs, p.holds...)
	}
}

// A chunk is a piece of one direction's byte stream waiting to be written,
// or a marker in it.
type chunk struct {
	data    []byte
	due     time.Time
	gate    *hold     // if set: hold what follows, as the hold says
	arrived time.Time // for a gate: when the held reply arrived
	written chan struct{}
	fin     bool // the end of the stream: close the connection
}

// A pipe writes one direction of a connection in order, each chunk once it
// is due. Its goroutine, run, ends when the connection closes.
type pipe struct {
	pc   *proxyConn
	dst  func([]byte) error // writes to the destination, or drops the bytes
	mu   sync.Mutex
	q    []chunk
	wake chan struct{} // receives a value when q grows
	dead bool          // writing failed: later chunks are dropped
}

func newPipe(pc *proxyConn, dst func([]byte) error) *pipe {
	return &pipe{pc: pc, dst: dst, wake: make(chan struct{}, 1)}
}

// push queues c; data is copied.
func (q *pipe) push(c chunk) {
	if c.data != nil {
		c.data = append([]byte(nil), c.data...)
	}
	q.mu.Lock()
	if q.dead {
		q.mu.Unlock()
		if c.written != nil {
			close(c.written)
		}
		if c.fin {
			q.pc.close()
		}
		return
	}
	q.q = append(q.q, c)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop waits for the next chunk; ok is false once the connection is closed.
func (q *pipe) pop() (chunk, bool) {
	for {
		q.mu.Lock()
		if len(q.q) > 0 {
			c := q.q[0]
			q.q[0] = chunk{}
			q.q = q.q[1:]
			q.mu.Unlock()
			return c, true
		}
		q.mu.Unlock()
		select {
		case <-q.wake:
		case <-q.pc.closed:
			return chunk{}, false
		}
	}
}

// wait waits until t; it reports false if the connection closed first.
func (q *pipe) wait(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-q.pc.closed:
		return false
	}
}

// kill drops every chunk queued and to come, releasing their waiters; a
// end of stream among them closes the connection at once.
func (q *pipe) kill() {
	q.mu.Lock()
	q.dead = true
	rest := q.q
	q.q = nil
	q.mu.Unlock()
	for _, c := range rest {
		if c.written != nil {
			close(c.written)
		}
		if c.fin {
			q.pc.close()
		}
	}
}

// run writes the chunks as they fall due, until the connection closes.
func (q *pipe) run() {
	defer q.pc.p.wg.Done()
	defer q.kill()
	for {
		c, ok := q.pop()
		if !ok {
			return
		}
		if !q.wait(c.due) {
			if c.written != nil {
				close(c.written)
			}
			return
		}
		if c.fin {
			q.pc.close()
			return
		}
		if c.gate != nil {
			if !q.wait(c.arrived.Add(c.gate.d)) {
				return
			}
			if c.gate.mode == Drop {
				q.pc.close()
				return
			}
			continue
		}
		err := q.dst(c.data)
		if c.written != nil {
			close(c.written)
		}
		if err != nil {
			q.kill()
			if !q.pc.p.blackhole.Load() {
				q.pc.close()
			}
			return
		}
	}
}
