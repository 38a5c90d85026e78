package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/zkraw"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// bench is one run of the workloads against one server.
type bench struct {
	cfg     config
	connect string
	servers []string
	root    string
	admin   *zk.Conn // a bare connection for setting up and cleaning up
	stderr  io.Writer

	memProfiled bool // the memory profile was written while W6 waited
}

// writeMemProfile writes the heap profile to -memprofile.
func (b *bench) writeMemProfile() {
	b.memProfiled = true
	f, err := os.Create(b.cfg.memProfile)
	if err != nil {
		b.progress("%v", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.progress("writing %s: %v", b.cfg.memProfile, err)
	}
}

// run runs the configured workloads and prints their results on stdout.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	connect := cfg.server
	if connect == "" {
		srv, err := zktest.StartServer(zktest.WithTickTime(2 * time.Second))
		if err != nil {
			return fmt.Errorf("starting a ZooKeeper server: %w", err)
		}
		defer srv.Close()
		connect = srv.ConnectString()
		if cfg.root == "" && srv.Root() != "" {
			cfg.root = srv.Root() + "/zkbench"
		}
	}
	if cfg.root == "" {
		cfg.root = fmt.Sprintf("/zkbench/%s-%d", implName, time.Now().UnixNano())
	}
	if err := framework.ValidatePath(cfg.root); err != nil || cfg.root == "/" {
		return fmt.Errorf("-root %q: not a znode path below /", cfg.root)
	}
	b := &bench{cfg: cfg, connect: connect, servers: splitServers(connect), root: cfg.root, stderr: stderr}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	admin, err := rawConnect(cctx, b.servers, cfg.sessionTimeout)
	cancel()
	if err != nil {
		return err
	}
	b.admin = admin
	defer admin.Close()
	if err := mkdirs(admin, b.root); err != nil {
		return err
	}
	defer func() {
		if err := zkraw.DeleteTree(admin, b.root, 10); err != nil {
			b.progress("cleaning up %s: %v", b.root, err)
		}
	}()
	if _, err := b.packets(); err != nil {
		b.progress("server packet counts unavailable (is mntr in 4lw.commands.whitelist?): %v", err)
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if cfg.mutexProfile != "" {
		runtime.SetMutexProfileFraction(1)
		defer func() {
			f, err := os.Create(cfg.mutexProfile)
			if err != nil {
				b.progress("%v", err)
				return
			}
			defer f.Close()
			if err := pprof.Lookup("mutex").WriteTo(f, 0); err != nil {
				b.progress("writing %s: %v", cfg.mutexProfile, err)
			}
		}()
	}
	if cfg.memProfile != "" {
		defer func() {
			if !b.memProfiled {
				b.writeMemProfile()
			}
		}()
	}
	p := printer{w: stdout, json: cfg.json}
	var all []Result
	var errs []error
	for _, w := range cfg.workloads {
		if err := ctx.Err(); err != nil {
			return err
		}
		b.progress("%s ...", w)
		wctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		results, err := b.workload(wctx, w)
		cancel()
		for _, r := range results {
			if err := p.print(r); err != nil {
				return err
			}
		}
		all = append(all, results...)
		if err != nil {
			b.progress("%s failed: %v", w, err)
			errs = append(errs, fmt.Errorf("%s: %w", w, err))
		}
	}
	if !cfg.json {
		// The JSON lines stay one object each; -compare works the ratios out from them.
		if err := writeCeilings(stdout, implName, all); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

func (b *bench) workload(ctx context.Context, w string) ([]Result, error) {
	one := func(r Result, err error) ([]Result, error) {
		if err != nil {
			return nil, err
		}
		return []Result{r}, nil
	}
	switch w {
	case "W1":
		return one(b.w1(ctx))
	case "W2":
		return one(b.w2(ctx))
	case "W3":
		return one(b.w3(ctx))
	case "W4":
		var out []Result
		for _, n := range b.cfg.herd {
			r, err := b.w4(ctx, n)
			if err != nil {
				return out, err
			}
			out = append(out, r)
		}
		return out, nil
	case "W5":
		return one(b.w5(ctx))
	case "W6":
		return one(b.w6(ctx, "W6", b.cfg.waiters, b.cfg.waiters))
	case "W6s":
		return one(b.w6(ctx, "W6s", b.cfg.sharedWaiters, 1))
	case "G1":
		return one(b.g1(ctx))
	case "R1":
		return one(b.raw(ctx, "R1", 1, 1, b.cfg.iterations, b.cfg.warmup))
	case "R2":
		return one(b.r2(ctx))
	case "R3":
		return one(b.raw(ctx, "R3", b.cfg.sessions, b.cfg.paths, b.cfg.perSession, 0))
	case "RC":
		return one(b.rc(ctx))
	}
	return nil, fmt.Errorf("unknown workload %q", w)
}

func (b *bench) progress(format string, args ...any) {
	if !b.cfg.quiet {
		fmt.Fprintf(b.stderr, "zkbench: "+format+"\n", args...)
	}
}

// path returns a path under the run's root.
func (b *bench) path(elems ...string) string {
	return b.root + "/" + strings.Join(elems, "/")
}

// packets returns the servers' packets received so far.
func (b *bench) packets() (int64, error) {
	return mntrSum(b.servers, "zk_packets_received")
}

// counter snapshots the server's and the clients' request counts, and meters the client
// process's CPU time and allocations between its start and its deltas (inside the two server
// snapshots, so that reading the servers' counts is not metered).
type counter struct {
	b       *bench
	clients []*framework.Client
	srv     int64 // -1 if unknown
	cli     int64
	raw     func() int64 // for bare connections: the requests counted by hand
	m       *meter       // shared by the counters of one workload's measured parts (W5)
}

func (b *bench) counter(clients ...*framework.Client) *counter {
	return &counter{b: b, clients: clients, m: newMeter()}
}

func (c *counter) clientCount() int64 {
	var n int64
	for _, cl := range c.clients {
		n += int64(cl.RequestCount())
	}
	if c.raw != nil {
		n += c.raw()
	}
	return n
}

// start takes the first snapshot.
func (c *counter) start() {
	s, err := c.b.packets()
	if err != nil {
		s = -1
	}
	c.srv, c.cli = s, c.clientCount()
	c.m.start()
}

// deltas returns the server and client deltas since start (server -1 if unknown).
func (c *counter) deltas() (srv, cli int64) {
	c.m.stop()
	// A release does not wait for its delete's reply: the last deletes may still be on their way to
	// the server, which counts them only once they arrive.
	deadline := time.Now().Add(2 * time.Second)
	for _, cl := range c.clients {
		for cl.PendingDeletes() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	cli = c.clientCount() - c.cli
	s, err := c.b.packets()
	if err != nil || c.srv < 0 {
		return -1, cli
	}
	// Each mntr is a packet the server counts: one of the two snapshots' is in the delta.
	return max(s-c.srv-int64(len(c.b.servers)), 0), cli
}

// newClient returns a started, connected client.
func (b *bench) newClient(ctx context.Context) (*framework.Client, error) {
	c, err := framework.NewClient(b.connect, framework.WithSessionTimeout(b.cfg.sessionTimeout))
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.BlockUntilConnected(cctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// newClients returns n connected clients, connected in parallel.
func (b *bench) newClients(ctx context.Context, n int) ([]*framework.Client, error) {
	clients := make([]*framework.Client, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() { clients[i], errs[i] = b.newClient(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		closeClients(clients)
		return nil, err
	}
	return clients, nil
}

// closeClients closes clients in parallel; nil ones are skipped.
func closeClients(clients []*framework.Client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c != nil {
			wg.Go(func() { c.Close() })
		}
	}
	wg.Wait()
}

// locker is the part of a lock recipe the workloads use.
type locker interface {
	Acquire(ctx context.Context) (*recipes.Lease, error)
}

// newLock returns a lock of the configured recipe on path.
func (b *bench) newLock(c *framework.Client, path string) locker {
	switch b.cfg.recipe {
	case "semaphore-mutex":
		return recipes.NewSemaphoreMutex(c, path)
	case "read":
		return recipes.NewReadWriteLock(c, path).ReadLock()
	case "write":
		return recipes.NewReadWriteLock(c, path).WriteLock()
	}
	return recipes.NewInterProcessMutex(c, path)
}

// pair acquires and releases lk once and returns how long it took.
func pair(ctx context.Context, lk locker) (time.Duration, error) {
	t0 := time.Now()
	l, err := lk.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	if err := l.Release(); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}
