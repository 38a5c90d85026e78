package zktest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	// dialTimeout bounds the proxy's connection to its target.
	dialTimeout = 10 * time.Second
	// cutReplyTimeout bounds how long a cut connection waits for the
	// server's reply to the create before closing the server side.
	cutReplyTimeout = 10 * time.Second
)

// A Proxy is a TCP proxy between ZooKeeper clients and a server that injects
// faults: it can drop every connection, silently swallow all traffic (and so
// make the server expire sessions for real), cut a connection right after
// a create request, delay all traffic (Delay) and hold back the reply to one
// request (HoldNextReply).
//
// Clients under test connect to Addr instead of the server. The methods of a
// Proxy may be called from several goroutines at once.
type Proxy struct {
	ln        net.Listener
	ctx       context.Context // canceled by Close
	cancel    context.CancelFunc
	blackhole atomic.Bool
	wg        sync.WaitGroup // every goroutine of the proxy

	delayToServer atomic.Int64 // time.Duration set by Delay
	delayToClient atomic.Int64

	mu     sync.Mutex
	target string
	conns  map[*proxyConn]struct{}
	cut    chan struct{} // armed by CutAfterNextCreate; nil if not armed
	holds  []*hold       // armed by HoldNextReply, in order
	closed bool
}

// NewProxy returns a proxy listening on a free port of 127.0.0.1 that
// forwards every connection it accepts to target, a host:port address.
// The caller must call Close when done with it.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("zktest: proxy: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{
		ln:     ln,
		ctx:    ctx,
		cancel: cancel,
		target: target,
		conns:  make(map[*proxyConn]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Proxy returns a new proxy to the server (the first member of an ensemble)
// and registers a cleanup with t that closes it.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	p, err := NewProxy(s.Addr())
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Addr returns the host:port address clients should connect to.
func (p *Proxy) Addr() string {
	return p.ln.Addr().String()
}

// SetTarget makes the proxy forward connections it accepts from now on to
// target. Connections already open keep their server.
func (p *Proxy) SetTarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
}

// CloseConnections closes every connection currently open through the
// proxy, on both sides, as a network failure or a server restart would. The
// proxy goes on accepting new connections.
func (p *Proxy) CloseConnections() {
	for _, pc := range p.snapshot() {
		pc.close()
	}
}

// Blackhole turns black-hole mode on or off.
//
// While it is on, connections already open stay open but every byte sent
// through them, in either direction, is silently dropped, as when a network
// partition separates client and server. New connections are accepted and
// then closed at once, so that a client's attempts to reconnect fail fast
// instead of hanging. A connection one side closes meanwhile is kept open on
// the other side.
//
// Turning it off closes every connection that was open while it was on (so
// that their clients notice at once and reconnect), and the proxy forwards
// traffic again.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	was := p.blackhole.Swap(on)
	var conns []*proxyConn
	if was && !on {
		conns = p.snapshotLocked()
	}
	p.mu.Unlock()
	for _, pc := range conns {
		pc.close()
	}
}

// CutAfterNextCreate arms the proxy to cut a connection in the middle of a
// create. The next ZooKeeper create request (opcode create, create2,
// createContainer or createTTL) that any client sends through the proxy is
// forwarded to the server in full, and then that client's connection is
// closed at once, before the server's reply can reach the client. The client
// thus cannot tell whether its create succeeded; in fact the server performs
// it, unless it fails there (for example because the znode exists). Only
// that one create is cut: the proxy is then disarmed.
//
// The returned channel is closed once the connection has been cut and the
// server has answered the create (or closed its end of the connection), so
// that the znode can be looked for. If no create passes through the proxy,
// the channel is never closed. Calling CutAfterNextCreate again before the
// cut happens returns the same channel.
func (p *Proxy) CutAfterNextCreate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut == nil {
		p.cut = make(chan struct{})
	}
	return p.cut
}

// ExpireSession makes the server s expire the session with id sessionID (as
// go-zookeeper's Conn.SessionID reports it), whose client must connect
// through the proxy. It turns black-hole mode on, so that the server hears
// nothing more from the client, waits until the server has expired the
// session, and turns black-hole mode off, which closes the client's
// connection so that the client notices, reconnects and learns that its
// session has expired.
//
// ExpireSession returns once the server has expired the session and deleted
// its ephemeral nodes; the client finds out a moment later. Every other
// session whose client connects through the proxy expires too, or is about
// to. The server is asked every 50ms which sessions it knows, with the dump
// command; if it does not allow that command, ExpireSession waits for its
// longest session timeout instead. The context bounds the wait.
func (p *Proxy) ExpireSession(ctx context.Context, s *Server, sessionID int64) error {
	p.Blackhole(true)
	defer p.Blackhole(false)

	start := time.Now()
	// After this long without hearing from its client, any session has
	// expired.
	bound := s.maxSessionTimeout() + 2*s.TickTime()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		alive, known := s.sessionAlive(sessionID)
		switch {
		case known && !alive:
			return nil
		case !known && time.Since(start) > bound:
			return nil
		case known && time.Since(start) > 2*bound:
			return fmt.Errorf("zktest: session 0x%x has not expired after %v; does its client connect through the proxy?",
				uint64(sessionID), 2*bound)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close stops the proxy: it stops listening, closes every connection and
// waits for the proxy's goroutines to finish.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	conns := p.snapshotLocked()
	p.mu.Unlock()

	p.cancel()
	err := p.ln.Close()
	for _, pc := range conns {
		pc.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) snapshot() []*proxyConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.snapshotLocked()
}

func (p *Proxy) snapshotLocked() []*proxyConn {
	conns := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		conns = append(conns, pc)
	}
	return conns
}

// claimCut disarms the proxy and returns the channel CutAfterNextCreate
// returned, or nil if the proxy is not armed.
func (p *Proxy) claimCut() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := p.cut
	p.cut = nil
	return ch
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or the like: try again shortly.
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if p.blackhole.Load() {
			c.Close()
			continue
		}
		p.wg.Add(1)
		go p.connect(c)
	}
}

// connect dials the target for the accepted client connection and starts
// forwarding between them.
func (p *Proxy) connect(client net.Conn) {
	defer p.wg.Done()
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	d := net.Dialer{Timeout: dialTimeout}
	server, err := d.DialContext(p.ctx, "tcp", target)
	if err != nil {
		client.Close()
		return
	}
	pc := &proxyConn{
		p:       p,
		client:  client,
		server:  server,
		closed:  make(chan struct{}),
		replied: make(chan struct{}),
		pending: make(map[int32]*hold),
	}
	pc.toServer = newPipe(pc, pc.writeServer)
	pc.toClient = newPipe(pc, pc.writeClient)
	pc.live.Store(2)
	p.mu.Lock()
	if p.closed || p.blackhole.Load() {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.conns[pc] = struct{}{}
	p.wg.Add(4)
	p.mu.Unlock()
	go pc.toServer.run()
	go pc.toClient.run()
	go pc.clientToServer()
	go pc.serverToClient()
}

// A proxyConn is a client connection and the proxy's connection to the
// server on its behalf.
type proxyConn struct {
	p              *Proxy
	client, server net.Conn
	live           atomic.Int32 // forwarding goroutines still running
	closeOnce      sync.Once
	closed         chan struct{} // closed by close

	// toServer and toClient write each direction, in order, as its bytes
	// fall due (see Delay and HoldNextReply).
	toServer, toClient *pipe

	// mu is held while writing to the client, so that once cutting is
	// set no reply reaches the client.
	mu      sync.Mutex
	cutting bool
	cutXid  int32           // xid of the create that triggered the cut
	replied chan struct{}   // closed when the server has answered cutXid
	pending map[int32]*hold // holds claimed by requests, by xid, awaiting their replies
}

// writeServer writes b to the server, unless black-hole mode is on.
func (pc *proxyConn) writeServer(b []byte) error {
	if pc.p.blackhole.Load() {
		return nil
	}
	_, err := pc.server.Write(b)
	return err
}

// writeClient writes b to the client, unless black-hole mode is on or the
// connection is being cut.
func (pc *proxyConn) writeClient(b []byte) error {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.cutting || pc.p.blackhole.Load() {
		return nil
	}
	_, err := pc.client.Write(b)
	return err
}

// close closes both sides of the connection.
func (pc *proxyConn) close() {
	pc.closeOnce.Do(func() {
		pc.client.Close()
		pc.server.Close()
		close(pc.closed)
	})
}

// finish is called by each forwarding goroutine as it returns.
func (pc *proxyConn) finish() {
	if pc.live.Add(-1) == 0 {
		// Both directions have ended: close once what they read is
		// delivered.
		pc.toServer.push(chunk{fin: true})
		pc.toClient.push(chunk{fin: true})
		pc.p.mu.Lock()
		delete(pc.p.conns, pc)
		pc.p.mu.Unlock()
		pc.mu.Lock()
		var orphans []*hold
		for _, h := range pc.pending {
			orphans = append(orphans, h)
		}
		clear(pc.pending)
		pc.mu.Unlock()
		pc.p.rearm(orphans)
	}
	pc.p.wg.Done()
}

// readFailed handles the end of one direction of the connection, whose
// bytes out flushes. Normally the whole connection is closed, once out has
// delivered what was read before the end. In black-hole mode the other side
// is left open: a client giving up must not tell the server anything, so
// that the server expires the session. Turning black-hole mode off closes
// it.
func (pc *proxyConn) readFailed(out *pipe) {
	if !pc.p.blackhole.Load() {
		out.push(chunk{fin: true, due: time.Now().Add(pc.p.delay(out == pc.toServer))})
	}
}

// clientToServer reads the client's bytes and queues them for the server,
// following the request packets in order to carry out CutAfterNextCreate
// and HoldNextReply.
func (pc *proxyConn) clientToServer() {
	defer pc.finish()
	buf := make([]byte, 32*1024)
	f := framer{hdrLen: requestHeaderLen}
	var cut chan struct{} // set while the current packet is the create to cut after
	for {
		n, rerr := pc.client.Read(buf)
		data := buf[:n]
		if pc.p.blackhole.Load() {
			data = nil
		}
		due := time.Now().Add(pc.p.delay(true))
		for len(data) > 0 {
			k, header, end := f.advance(data)
			if header && isCreate(f.op) {
				if cut = pc.p.claimCut(); cut != nil {
					pc.mu.Lock()
					pc.cutting = true
					pc.cutXid = f.xid
					pc.mu.Unlock()
				}
			}
			if header && cut == nil {
				if h := pc.p.claimHold(f.op); h != nil {
					pc.mu.Lock()
					pc.pending[f.xid] = h
					pc.mu.Unlock()
				}
			}
			var written chan struct{}
			if end && cut != nil {
				written = make(chan struct{})
			}
			pc.toServer.push(chunk{data: data[:k], due: due, written: written})
			data = data[k:]
			if written != nil {
				select {
				case <-written:
				case <-pc.closed:
				}
				pc.cutAfterCreate(cut)
				return
			}
		}
		if rerr != nil {
			pc.readFailed(pc.toServer)
			return
		}
	}
}

// cutAfterCreate is called once a create has been forwarded in full. It
// closes the client's connection at once, and the server's once the server
// has answered the create.
func (pc *proxyConn) cutAfterCreate(cut chan struct{}) {
	pc.client.Close()
	t := time.NewTimer(cutReplyTimeout)
	defer t.Stop()
	select {
	case <-pc.replied:
	case <-pc.closed:
	case <-pc.p.ctx.Done():
	case <-t.C:
	}
	pc.close()
	close(cut)
}

// serverToClient reads the server's bytes and queues them for the client,
// following the reply packets in order to notice the reply to a cut create
// and the replies to hold.
func (pc *proxyConn) serverToClient() {
	defer pc.finish()
	buf := make([]byte, 32*1024)
	f := framer{hdrLen: replyHeaderLen}
	answered := false
	for {
		n, rerr := pc.server.Read(buf)
		data := buf[:n]
		now := time.Now()
		due := now.Add(pc.p.delay(false))
		for len(data) > 0 {
			k, header, _ := f.advance(data)
			if header {
				pc.mu.Lock()
				if pc.cutting && f.xid == pc.cutXid && !answered {
					answered = true
					close(pc.replied)
				}
				h := pc.pending[f.xid]
				delete(pc.pending, f.xid)
				pc.mu.Unlock()
				if h != nil {
					pc.toClient.push(chunk{gate: h, arrived: now, due: due})
					close(h.started)
				}
			}
			pc.toClient.push(chunk{data: data[:k], due: due})
			data = data[k:]
		}
		if rerr != nil {
			pc.readFailed(pc.toClient)
			return
		}
	}
}
