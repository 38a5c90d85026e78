package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// g1 is go-zookeeper's own lock recipe (zk.NewLock, Lock, Unlock) on one session and one path,
// pairs one after the other, as W1 runs ours. The client's requests are counted on the wire.
func (b *bench) g1(ctx context.Context) (Result, error) {
	w := &wire{}
	conn, err := rawConnectVia(ctx, b.servers, b.cfg.sessionTimeout, w.dial)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()
	path := b.path("g1")
	if err := mkdirs(b.admin, path); err != nil {
		return Result{}, err
	}
	lk := zk.NewLock(conn, path, zk.WorldACL(zk.PermAll))
	pair := func() (time.Duration, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		t0 := time.Now()
		if err := lk.Lock(); err != nil {
			return 0, fmt.Errorf("lock: %w", err)
		}
		if err := lk.Unlock(); err != nil {
			return 0, fmt.Errorf("unlock: %w", err)
		}
		return time.Since(t0), nil
	}
	for range b.cfg.warmup {
		if _, err := pair(); err != nil {
			return Result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	n := b.cfg.iterations
	lat := make(latencies, 0, n)
	cnt := b.counter()
	cnt.raw = w.requests.Load
	cnt.start()
	start := time.Now()
	for range n {
		d, err := pair()
		if err != nil {
			return Result{}, err
		}
		lat = append(lat, d)
	}
	elapsed := time.Since(start)
	srv, cli := cnt.deltas()
	return newResult("G1", "go-zk", n, elapsed, lat, srv, cli, cnt.m), nil
}

// seqOf returns the sequence suffix of a sequential node's name (its last 10 characters), by which
// a lock's queue is ordered.
func seqOf(name string) string {
	if len(name) < 10 {
		return name
	}
	return name[len(name)-10:]
}

// rawLocker makes the requests of a mutex's acquire and release with bare go-zookeeper calls on
// one session, as the lock recipes do: an ephemeral-sequential create with the listing of the
// parent sent right behind it (once the create is on the wire, so that the server, which answers a
// session's requests in order, lists the new node), then, while a node ahead is there, an exists
// watch on the node just ahead and a new listing once it fires; the release is a delete.
type rawLocker struct {
	conn   *zk.Conn
	w      *wire
	parent string
}

// errNoNodeListed means a listing of the lock's parent does not show the node just made.
var errNoNodeListed = errors.New("own node not listed")

// acquire returns the path of the node that holds the lock.
func (l *rawLocker) acquire(ctx context.Context) (string, error) {
	type created struct {
		path string
		err  error
	}
	done := make(chan created, 1)
	written := l.w.nextWrite()
	go func() {
		p, err := l.conn.Create(l.parent+"/"+protectedName("lock-"), []byte{}, zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
		done <- created{p, err}
	}()
	var cr created
	var names []string
	select {
	case <-written:
		// The create (or, rarely, a ping just before it) is on the wire: list behind it.
		var err error
		names, _, err = l.conn.Children(l.parent)
		if err != nil {
			return "", fmt.Errorf("children: %w", err)
		}
		cr = <-done
	case cr = <-done:
	}
	if cr.err != nil {
		return "", fmt.Errorf("create: %w", cr.err)
	}
	own := cr.path[strings.LastIndexByte(cr.path, '/')+1:]
	for {
		if !slices.Contains(names, own) {
			// The listing went out ahead of the create: list again.
			var err error
			if names, _, err = l.conn.Children(l.parent); err != nil {
				return "", fmt.Errorf("children: %w", err)
			}
			if !slices.Contains(names, own) {
				return "", fmt.Errorf("%s: %w", cr.path, errNoNodeListed)
			}
		}
		slices.SortFunc(names, func(a, b string) int { return strings.Compare(seqOf(a), seqOf(b)) })
		i := slices.Index(names, own)
		if i == 0 {
			return cr.path, nil
		}
		ok, _, ch, err := l.conn.ExistsW(l.parent + "/" + names[i-1])
		if err != nil {
			return "", fmt.Errorf("exists: %w", err)
		}
		if ok {
			select {
			case ev := <-ch:
				if ev.Err != nil {
					return "", fmt.Errorf("watch: %w", ev.Err)
				}
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		if names, _, err = l.conn.Children(l.parent); err != nil {
			return "", fmt.Errorf("children: %w", err)
		}
	}
}

// r2 is the contended raw workload: the lock protocol of W2 made by bare go-zookeeper calls
// (rawLocker), sessions sessions on one path, pairs pairs each; the wait in acquire and the
// overlapping holds are measured as in W2. Requests are counted on the wire.
func (b *bench) r2(ctx context.Context) (Result, error) {
	n, per := b.cfg.sessions, b.cfg.perSession
	parent := b.path("R2", "p0")
	if err := mkdirs(b.admin, parent); err != nil {
		return Result{}, err
	}
	lockers := make([]*rawLocker, n)
	defer func() {
		for _, l := range lockers {
			if l != nil {
				l.conn.Close()
			}
		}
	}()
	var counts []func() int64
	for i := range lockers {
		w := &wire{}
		conn, err := rawConnectVia(ctx, b.servers, b.cfg.sessionTimeout, w.dial)
		if err != nil {
			return Result{}, err
		}
		lockers[i] = &rawLocker{conn: conn, w: w, parent: parent}
		counts = append(counts, w.requests.Load)
	}
	cnt := b.counter()
	cnt.raw = func() int64 {
		var s int64
		for _, f := range counts {
			s += f()
		}
		return s
	}
	cnt.start()
	waits, holds, elapsed, err := handoffs(n, per, func(i int) (func() error, error) {
		l := lockers[i]
		node, err := l.acquire(ctx)
		if err != nil {
			return nil, err
		}
		return func() error {
			if err := l.conn.Delete(node, -1); err != nil {
				return fmt.Errorf("delete: %w", err)
			}
			return nil
		}, nil
	})
	if err != nil {
		return Result{}, err
	}
	srv, cli := cnt.deltas()
	r := newResult("R2", "raw", n*per, elapsed, waits, srv, cli, cnt.m)
	r.Extra = map[string]float64{"overlaps": float64(overlaps(holds))}
	return r, nil
}
