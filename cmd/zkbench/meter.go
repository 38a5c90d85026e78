package main

import (
	"encoding/binary"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// meter measures what the client process spends over the measured parts of a workload: the
// process's CPU time (user and system, every thread) and the Go heap's allocations (count and
// bytes, runtime.MemStats' Mallocs and TotalAlloc). Reading MemStats stops the world, so a meter
// reads it only at the start and the end of each measured part. A meter may measure several parts
// (W5's rounds): the totals add up. Its methods are not safe for concurrent use.
type meter struct {
	running bool
	cpuOK   bool // every part's CPU time could be read
	parts   int

	cpu0             time.Duration
	mallocs0, bytes0 uint64

	cpu            time.Duration
	mallocs, bytes uint64
}

// newMeter returns a meter that has measured nothing yet.
func newMeter() *meter { return &meter{cpuOK: true} }

// start begins a measured part. A start while a part is running is ignored.
func (m *meter) start() {
	if m.running {
		return
	}
	m.running = true
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.mallocs0, m.bytes0 = ms.Mallocs, ms.TotalAlloc
	var ok bool
	m.cpu0, ok = processCPU()
	m.cpuOK = m.cpuOK && ok
}

// stop ends the measured part begun by start and adds it to the totals. A stop without a start is
// ignored.
func (m *meter) stop() {
	if !m.running {
		return
	}
	m.running = false
	cpu, ok := processCPU()
	m.cpuOK = m.cpuOK && ok
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.cpu += cpu - m.cpu0
	m.mallocs += ms.Mallocs - m.mallocs0
	m.bytes += ms.TotalAlloc - m.bytes0
	m.parts++
}

// fill sets r's CPU and allocation figures per op from the totals; a nil meter, one that measured
// nothing, or a result with no ops leaves them unknown (-1).
func (m *meter) fill(r *Result) {
	r.CPUUsPerOp, r.AllocsPerOp, r.BytesPerOp = -1, -1, -1
	if m == nil || m.parts == 0 || r.Ops <= 0 {
		return
	}
	ops := float64(r.Ops)
	if m.cpuOK {
		r.CPUUsPerOp = round(float64(m.cpu)/float64(time.Microsecond)/ops, 1)
	}
	r.AllocsPerOp = round(float64(m.mallocs)/ops, 1)
	r.BytesPerOp = round(float64(m.bytes)/ops, 0)
}

// wire watches what a bare go-zookeeper connection writes, through the dialer it gives
// zk.Connect: it counts the requests written (go-zookeeper writes each request in one Write; the
// handshake, pings and other control packets, whose xid is not positive, are not counted) and
// tells when the next write is done, so that a request can be sent right behind another one that
// is already on the wire.
type wire struct {
	requests atomic.Int64
	mu       sync.Mutex
	waiting  []chan struct{}
}

// dial is a zk.Dialer whose connections report their writes to w.
func (w *wire) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	return &wireConn{Conn: c, w: w}, nil
}

// nextWrite returns a channel closed once the next write on the connection (of any packet, a ping
// included) has been handed to the operating system.
func (w *wire) nextWrite() <-chan struct{} {
	ch := make(chan struct{})
	w.mu.Lock()
	w.waiting = append(w.waiting, ch)
	w.mu.Unlock()
	return ch
}

// wrote tells the waiters that a write is done.
func (w *wire) wrote() {
	w.mu.Lock()
	ws := w.waiting
	w.waiting = nil
	w.mu.Unlock()
	for _, ch := range ws {
		close(ch)
	}
}

// wireConn is a connection that reports its writes to a wire.
type wireConn struct {
	net.Conn
	w *wire
}

// Write writes b and reports it: a request's packet is its length, its xid and its opcode, and
// requests have positive xids.
func (c *wireConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if err == nil && len(b) >= 12 && int32(binary.BigEndian.Uint32(b[4:8])) > 0 {
		c.w.requests.Add(1)
	}
	c.w.wrote()
	return n, err
}
