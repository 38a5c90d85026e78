package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/zktest"
)

// stateAt is a connection state change and when the listener was told of it.
type stateAt struct {
	s  framework.State
	at time.Time
}

// rc is the reconnect workload: a client connects to the first server through a zktest.Proxy;
// -reconnects times, the proxy cuts every connection and the time from the cut to the client's
// Reconnected state (as framework.Client.Listen reports it) is measured. P50Ms is the median and
// P99Ms the maximum.
// rcSettle is how long RC lets a connection stand before it cuts it again.
const rcSettle = 250 * time.Millisecond

func (b *bench) rc(ctx context.Context) (Result, error) {
	proxy, err := zktest.NewProxy(b.servers[0])
	if err != nil {
		return Result{}, err
	}
	defer proxy.Close()
	connect := proxy.Addr()
	if i := strings.IndexByte(b.connect, '/'); i >= 0 {
		connect += b.connect[i:] // the chroot
	}
	c, err := framework.NewClient(connect, framework.WithSessionTimeout(b.cfg.sessionTimeout))
	if err != nil {
		return Result{}, err
	}
	// The listener never blocks: a round reads the states of its own cut, and no more than a few
	// come per cut (Suspended, maybe Lost, Reconnected).
	states := make(chan stateAt, 1024)
	stopListening := c.Listen(func(s framework.State) {
		select {
		case states <- stateAt{s, time.Now()}:
		default:
		}
	})
	defer stopListening()
	if err := c.Start(); err != nil {
		return Result{}, err
	}
	defer c.Close()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = c.BlockUntilConnected(cctx)
	cancel()
	if err != nil {
		return Result{}, err
	}
	n := b.cfg.reconnects
	lat := make(latencies, 0, n)
	var sessionsLost int
	cnt := b.counter(c)
	cnt.start()
	var total time.Duration
	for round := range n {
		// Forget the states from before the cut (the first Connected).
	drain:
		for {
			select {
			case <-states:
			default:
				break drain
			}
		}
		start := time.Now()
		proxy.CloseConnections()
	wait:
		for {
			select {
			case st := <-states:
				switch st.s {
				case framework.Lost:
					sessionsLost++
				case framework.Reconnected:
					lat = append(lat, st.at.Sub(start))
					total += st.at.Sub(start)
					break wait
				}
			case <-ctx.Done():
				return Result{}, fmt.Errorf("round %d: no Reconnected after the proxy cut the connection: %w", round+1, ctx.Err())
			}
		}
		// The next cut comes once the connection has stood for a while: the client takes a
		// connection that drops within 100 ms for a flapping server and backs off before the next
		// reconnect, which is not what RC measures.
		select {
		case <-time.After(rcSettle):
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	srv, cli := cnt.deltas()
	r := newResult("RC", "reconnect", n, total, lat, srv, cli, cnt.m)
	r.P99Ms = round(ms(slices.Max(lat)), 3) // with few rounds, p99 is the maximum
	r.Extra = map[string]float64{"sessions_lost": float64(sessionsLost)}
	return r, nil
}
