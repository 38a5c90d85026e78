// Command zkbench measures gocurator's lock and leader recipes against a ZooKeeper server, on the
// workloads that testdata/zkbench/ZkBench.java runs with Apache Curator, so that the two can be
// compared on one server in one run.
//
//	zkbench [flags]            run the workloads with gocurator, one line per workload
//	zkbench -compare [flags]   run gocurator and the Curator twin in alternation and print a
//	                           table of medians (what make bench runs)
//
// The workloads:
//
//	W1  uncontended: 1 session, 1 path, -iterations acquire+release pairs
//	W2  contended: -sessions sessions on 1 path, -per-session pairs each; hand-offs/s, the wait
//	    in acquire (p50, p99), and overlaps (holds that overlapped in time; 0 for a mutex)
//	W3  independent: -sessions sessions on -paths paths, -per-session pairs each; aggregate ops/s
//	W4  herd: -herd waiters (one session each) queued behind a holder on one lock, released in
//	    turn; server packets per hand-off, for each queue length
//	W5  failover: 3 LeaderLatch participants, the leader's client closed, time until another
//	    participant's IsLeader; -failovers rounds, median and maximum
//	W6  scale: one client, -waiters goroutines each waiting on a lock of its own (W6) or on one
//	    shared lock (W6s, -shared-waiters goroutines); RSS and goroutines while all wait, then
//	    the time to drain once the holder's session closes
//	R1  raw: the requests of a lock pair (create ephemeral-sequential, children, delete) made by
//	    bare go-zookeeper calls on 1 session, the listing pipelined behind the create: the
//	    ceiling for W1
//	R2  raw contended: the lock protocol by bare go-zookeeper calls, -sessions sessions on 1 path
//	    (the create with the listing pipelined as in R1, an exists watch on the node ahead, a
//	    listing again once it fires, the delete on release): the ceiling for W2
//	R3  raw on -sessions sessions and -paths paths: the ceiling for W3
//	G1  go-zookeeper's own lock recipe (zk.NewLock, Lock, Unlock), 1 session, 1 path,
//	    -iterations pairs; its ceiling is R1
//	RC  reconnect: a client through a zktest.Proxy, whose connections are cut -reconnects times;
//	    the time from the cut to the client's Reconnected state, median and maximum
//
// Each line gives ops/s, p50 and p99 latencies in milliseconds, the server packets received per
// operation (the delta of mntr's zk_packets_received, summed over the servers), the requests per
// operation the client counted itself, and the client process's CPU time (user and system) and
// heap allocations (count and bytes, from runtime.MemStats) per operation over the measured part.
// A text run ends with a line per workload giving its rate as a share of its raw ceiling's (W1 of
// R1, W2 of R2, W3 of R3, G1 of R1; n/a for the others).
//
// The server is -server (or $ZK_SERVERS); without either, zkbench starts a private standalone
// ZooKeeper through the zktest harness (tickTime 2s, so that a 30s session timeout is granted).
// The mntr four-letter word must be allowed (4lw.commands.whitelist) for the server counts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"time"
)

// implName names this implementation in results.
const implName = "gocurator"

// allWorkloads is every workload, in the order they run.
var allWorkloads = []string{"W1", "W2", "W3", "W4", "W5", "W6", "W6s", "G1", "R1", "R2", "R3", "RC"}

// recipeNames are the lock recipes -recipe accepts.
var recipeNames = []string{"mutex", "semaphore-mutex", "read", "write"}

// config is what the flags set.
type config struct {
	server         string
	root           string
	recipe         string
	workloads      []string
	iterations     int // W1, R1
	perSession     int // W2, W3, R3
	sessions       int // W2, W3, R3
	paths          int // W3, R3
	herd           []int
	failovers      int
	reconnects     int // RC
	waiters        int // W6
	sharedWaiters  int // W6s
	warmup         int
	sessionTimeout time.Duration
	timeout        time.Duration // per workload
	json           bool
	quiet          bool
	cpuProfile     string
	memProfile     string
	mutexProfile   string

	// compare mode
	compare bool
	rounds  int
	javaSrc string
	jvmArgs string
}

func defaultConfig() config {
	return config{
		recipe:         "mutex",
		workloads:      allWorkloads,
		iterations:     2000,
		perSession:     250,
		sessions:       8,
		paths:          8,
		herd:           []int{8, 16, 32},
		failovers:      10,
		reconnects:     20,
		waiters:        10000,
		sharedWaiters:  1000,
		warmup:         200,
		sessionTimeout: 30 * time.Second,
		timeout:        5 * time.Minute,
		rounds:         3,
		javaSrc:        "testdata/zkbench/ZkBench.java",
	}
}

const usage = `zkbench measures gocurator's recipes against a ZooKeeper server.

Usage:
  zkbench [flags]            run the workloads with gocurator, one line per workload
  zkbench -compare [flags]   run gocurator and Apache Curator (testdata/zkbench/ZkBench.java)
                             in alternation on one server and print a table of medians

Workloads: W1 uncontended, W2 contended, W3 independent, W4 herd, W5 failover,
W6 scale (own locks), W6s scale (shared lock), G1 go-zookeeper's lock recipe, R1, R2 and
R3 raw go-zookeeper ceilings (of W1, W2 and W3), RC reconnect.

Flags:
`

func main() {
	os.Exit(cliMain(os.Args[1:], os.Stdout, os.Stderr))
}

// cliMain parses args and runs; it returns the exit code.
func cliMain(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "zkbench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if cfg.compare {
		err = compare(ctx, cfg, stdout, stderr)
	} else {
		err = run(ctx, cfg, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, "zkbench:", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("zkbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	workloads := strings.Join(cfg.workloads, ",")
	herd := joinInts(cfg.herd)
	fs.StringVar(&cfg.server, "server", os.Getenv("ZK_SERVERS"), "ZooKeeper connect string `host:port,...` (default $ZK_SERVERS; if empty, start a private server)")
	fs.StringVar(&cfg.root, "root", "", "znode `path` to work under (default /zkbench/gocurator-<time>)")
	fs.StringVar(&cfg.recipe, "recipe", cfg.recipe, "lock `recipe`: "+strings.Join(recipeNames, ", "))
	fs.StringVar(&workloads, "workloads", workloads, "comma-separated `list` of workloads to run")
	fs.IntVar(&cfg.iterations, "iterations", cfg.iterations, "acquire+release `pairs` of W1, G1 and R1")
	fs.IntVar(&cfg.perSession, "per-session", cfg.perSession, "acquire+release `pairs` per session of W2, W3, R2 and R3")
	fs.IntVar(&cfg.sessions, "sessions", cfg.sessions, "`sessions` of W2, W3, R2 and R3")
	fs.IntVar(&cfg.paths, "paths", cfg.paths, "lock `paths` of W3 and R3")
	fs.StringVar(&herd, "herd", herd, "comma-separated queue `lengths` of W4")
	fs.IntVar(&cfg.failovers, "failovers", cfg.failovers, "`rounds` of W5")
	fs.IntVar(&cfg.reconnects, "reconnects", cfg.reconnects, "`rounds` of RC: connections cut, reconnects timed")
	fs.IntVar(&cfg.waiters, "waiters", cfg.waiters, "waiting `goroutines` of W6, each on a lock of its own")
	fs.IntVar(&cfg.sharedWaiters, "shared-waiters", cfg.sharedWaiters, "waiting `goroutines` of W6s, all on one lock")
	fs.IntVar(&cfg.warmup, "warmup", cfg.warmup, "unmeasured `pairs` before W1, G1 and R1")
	fs.DurationVar(&cfg.sessionTimeout, "session-timeout", cfg.sessionTimeout, "session `timeout` asked for")
	fs.DurationVar(&cfg.timeout, "timeout", cfg.timeout, "time `limit` of each workload")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object per workload instead of a text line")
	fs.BoolVar(&cfg.quiet, "q", false, "print no progress on stderr")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the workloads to `file`")
	fs.StringVar(&cfg.mutexProfile, "mutexprofile", "", "write a mutex contention profile of the workloads to `file`")
	fs.StringVar(&cfg.memProfile, "memprofile", "", "write a heap profile to `file` while the W6 (or W6s) waiters wait, or at the end")
	fs.BoolVar(&cfg.compare, "compare", false, "run gocurator and the Curator twin in alternation and print a table of medians")
	fs.IntVar(&cfg.rounds, "rounds", cfg.rounds, "with -compare: `rounds` of each implementation")
	fs.StringVar(&cfg.javaSrc, "java-src", cfg.javaSrc, "with -compare: the Curator twin's `source` file")
	fs.StringVar(&cfg.jvmArgs, "jvm-args", "", "with -compare: extra `options` for the twin's JVM, space-separated")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if cfg.workloads, err = parseWorkloads(workloads); err != nil {
		return cfg, err
	}
	if cfg.herd, err = parseInts(herd); err != nil {
		return cfg, fmt.Errorf("-herd: %w", err)
	}
	if !slices.Contains(recipeNames, cfg.recipe) {
		return cfg, fmt.Errorf("-recipe %q: want one of %s", cfg.recipe, strings.Join(recipeNames, ", "))
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"iterations", cfg.iterations}, {"per-session", cfg.perSession}, {"sessions", cfg.sessions},
		{"paths", cfg.paths}, {"failovers", cfg.failovers}, {"reconnects", cfg.reconnects}, {"waiters", cfg.waiters},
		{"shared-waiters", cfg.sharedWaiters}, {"rounds", cfg.rounds}} {
		if v.n < 1 {
			return cfg, fmt.Errorf("-%s %d: must be at least 1", v.name, v.n)
		}
	}
	if cfg.warmup < 0 {
		return cfg, fmt.Errorf("-warmup %d: must not be negative", cfg.warmup)
	}
	if cfg.sessionTimeout <= 0 || cfg.timeout <= 0 {
		return cfg, errors.New("-session-timeout and -timeout must be positive")
	}
	return cfg, nil
}

func parseWorkloads(s string) ([]string, error) {
	var out []string
	for _, w := range strings.Split(s, ",") {
		w = strings.TrimSpace(w)
		if w == "" {
			continue
		}
		i := slices.IndexFunc(allWorkloads, func(a string) bool { return strings.EqualFold(a, w) })
		if i < 0 {
			return nil, fmt.Errorf("-workloads: unknown workload %q (known: %s)", w, strings.Join(allWorkloads, ","))
		}
		if !slices.Contains(out, allWorkloads[i]) {
			out = append(out, allWorkloads[i])
		}
	}
	if len(out) == 0 {
		return nil, errors.New("-workloads: none given")
	}
	// Run in the canonical order.
	slices.SortFunc(out, func(a, b string) int {
		return slices.Index(allWorkloads, a) - slices.Index(allWorkloads, b)
	})
	return out, nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("no numbers given")
	}
	return out, nil
}

func joinInts(a []int) string {
	s := make([]string, len(a))
	for i, n := range a {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
