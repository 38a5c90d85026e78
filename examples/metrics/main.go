// Command metrics is a worker pool that contends for a few ZooKeeper locks on one client and
// serves the client's and the locks' metrics, from curatorprom, at /metrics. See README.md for
// what to look at.
//
//	go run . -zk 127.0.0.1:2181 -addr :9100 -workers 8 -locks 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gocurator/curator/framework"
	curatorprom "github.com/gocurator/curator/prometheus"
	"github.com/gocurator/curator/recipes"
)

// errBadFlag is wrapped by the error run returns for a bad setting; the text names the value.
var errBadFlag = errors.New("bad setting")

// config is what the flags set.
type config struct {
	servers string        // ZooKeeper's connect string
	addr    string        // where to serve /metrics
	root    string        // the znode under which the locks and the latch live
	workers int           // goroutines contending
	locks   int           // lock paths they contend for
	hold    time.Duration // mean time a worker holds a lock
	wait    time.Duration // how long a worker waits for a lock before it gives up
	jobs    int           // jobs per worker before it stops (0: until interrupted)
}

func (c config) check() error {
	switch {
	case c.servers == "":
		return fmt.Errorf("-zk %q: no servers: %w", c.servers, errBadFlag)
	case c.root == "" || c.root[0] != '/' || c.root == "/":
		return fmt.Errorf("-root %q: want an absolute path other than /: %w", c.root, errBadFlag)
	case c.workers < 1:
		return fmt.Errorf("-workers %d: want at least 1: %w", c.workers, errBadFlag)
	case c.locks < 1:
		return fmt.Errorf("-locks %d: want at least 1: %w", c.locks, errBadFlag)
	case c.hold <= 0:
		return fmt.Errorf("-hold %v: want more than 0: %w", c.hold, errBadFlag)
	case c.wait <= 0:
		return fmt.Errorf("-wait %v: want more than 0: %w", c.wait, errBadFlag)
	case c.jobs < 0:
		return fmt.Errorf("-jobs %d: want 0 or more: %w", c.jobs, errBadFlag)
	}
	return nil
}

func main() {
	var cfg config
	flag.StringVar(&cfg.servers, "zk", "127.0.0.1:2181", "ZooKeeper connect string")
	flag.StringVar(&cfg.addr, "addr", ":9100", "address to serve /metrics on")
	flag.StringVar(&cfg.root, "root", "/gocurator-metrics-example", "znode under which the locks live")
	flag.IntVar(&cfg.workers, "workers", 8, "worker goroutines contending for the locks")
	flag.IntVar(&cfg.locks, "locks", 3, "lock paths they contend for")
	flag.DurationVar(&cfg.hold, "hold", 200*time.Millisecond, "mean time a worker holds a lock")
	flag.DurationVar(&cfg.wait, "wait", time.Second, "how long a worker waits for a lock before giving up")
	flag.IntVar(&cfg.jobs, "jobs", 0, "jobs per worker before it stops (0: until interrupted)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, cfg, func(addr string) { log.Printf("serving metrics at http://%s/metrics", addr) }, nil)
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
}

// run serves /metrics on cfg.addr and runs the worker pool until ctx ends; it then stops both
// and returns ctx's error (or the first error that stopped it sooner). listening, if not nil,
// gets the address the server listens on; poolDone, if not nil, is called once every worker has
// done its cfg.jobs jobs (never, if cfg.jobs is 0) and the latch leads. The server keeps serving
// after that.
func run(ctx context.Context, cfg config, listening func(addr string), poolDone func()) error {
	if err := cfg.check(); err != nil {
		return err
	}
	obs := curatorprom.New()
	reg := prometheus.NewRegistry()
	reg.MustRegister(obs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	client, err := framework.NewClient(cfg.servers, framework.WithObserver(obs))
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Start(); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer srv.Close()
	if listening != nil {
		listening(ln.Addr().String())
	}

	// One latch, so that the leadership metrics have something to show.
	latch := recipes.NewLeaderLatch(client, cfg.root+"/leader")
	if err := latch.Start(); err != nil {
		return err
	}
	defer latch.Close()

	locks := make([]*recipes.InterProcessMutex, cfg.locks)
	for i := range locks {
		locks[i] = recipes.NewInterProcessMutex(client, fmt.Sprintf("%s/locks/lock-%d", cfg.root, i))
	}
	wctx, stopWorkers := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for w := range cfg.workers {
		wg.Go(func() { work(wctx, cfg, w, locks) })
	}
	pool := make(chan struct{})
	go func() {
		wg.Wait()
		close(pool)
	}()
	defer wg.Wait()     // second: the workers are done before the latch and the client close
	defer stopWorkers() // first

	select {
	case <-pool:
		if poolDone != nil && latch.Await(ctx) == nil {
			poolDone()
		}
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// work is one worker: it takes a lock at random, waiting at most cfg.wait (every fourth job
// only tries, and gives up at once if the lock is held), holds it for about cfg.hold unless the
// hold is lost first, and releases it.
func work(ctx context.Context, cfg config, w int, locks []*recipes.InterProcessMutex) {
	for job := 0; cfg.jobs == 0 || job < cfg.jobs; job++ {
		if ctx.Err() != nil {
			return
		}
		m := locks[rand.IntN(len(locks))]
		actx, cancel := context.WithTimeout(ctx, cfg.wait)
		var lease *recipes.Lease
		var err error
		if job%4 == 3 {
			lease, err = m.TryAcquire(actx)
		} else {
			lease, err = m.Acquire(actx)
		}
		cancel()
		if err != nil {
			continue // counted by the observer: timeout, canceled, locked or error
		}
		hold := time.NewTimer(cfg.hold/2 + rand.N(cfg.hold))
		select {
		case <-hold.C:
		case <-lease.Done():
			log.Printf("worker %d: hold of %s lost: %v", w, m.Path(), lease.Err())
		case <-ctx.Done():
		}
		hold.Stop()
		if err := lease.Release(); err != nil && !errors.Is(err, recipes.ErrLockLost) {
			log.Printf("worker %d: release %s: %v", w, m.Path(), err)
		}
	}
}
