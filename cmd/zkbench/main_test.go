package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gocurator/curator/internal/javart"
	"github.com/gocurator/curator/zktest"
)

// childEnv makes the test binary act as zkbench itself, for the Go runs that -compare starts.
const childEnv = "ZKBENCH_TEST_CHILD"

// testServer is the ZooKeeper server the tests share, each under a root of its own.
var testServer *zktest.Server

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(cliMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	goleak.VerifyTestMain(withServer{m})
}

// withServer starts the shared server before the tests and stops it before goleak looks for
// leaks.
type withServer struct{ m *testing.M }

func (w withServer) Run() int {
	srv, err := zktest.StartServer(zktest.WithTickTime(2 * time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "zkbench tests need a ZooKeeper server:", err)
		return 1
	}
	testServer = srv
	code := w.m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping ZooKeeper:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// tiny is a configuration that runs every workload in a moment.
func tiny(t *testing.T, recipe string, workloads ...string) config {
	t.Helper()
	cfg := defaultConfig()
	cfg.server = testServer.ConnectString()
	cfg.root = fmt.Sprintf("%s/zkbench-test/%s-%d", testServer.Root(), strings.NewReplacer("/", "-").Replace(t.Name()), time.Now().UnixNano())
	cfg.recipe = recipe
	if len(workloads) > 0 {
		cfg.workloads = workloads
	}
	cfg.iterations = 20
	cfg.perSession = 5
	cfg.sessions = 3
	cfg.paths = 2
	cfg.herd = []int{2, 4}
	cfg.failovers = 2
	cfg.waiters = 40
	cfg.sharedWaiters = 10
	cfg.warmup = 2
	cfg.timeout = 20 * time.Second
	cfg.json = true
	cfg.quiet = true
	return cfg
}

// parseResults reads JSON result lines.
func parseResults(t *testing.T, out string) map[string]Result {
	t.Helper()
	rs := map[string]Result{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad result line %q: %v", line, err)
		}
		rs[r.Impl+" "+r.Workload] = r
	}
	return rs
}

// checkResults checks what every run of the workloads must show, whatever the machine's speed.
func checkResults(t *testing.T, rs map[string]Result, impl string, cfg config) {
	t.Helper()
	want := map[string]int{
		"W1": cfg.iterations, "W2": cfg.sessions * cfg.perSession, "W3": cfg.sessions * cfg.perSession,
		"W5": cfg.failovers, "W6": cfg.waiters, "W6s": cfg.sharedWaiters,
		"R1": cfg.iterations, "R3": cfg.sessions * cfg.perSession,
	}
	for _, n := range cfg.herd {
		want[fmt.Sprintf("W4/%d", n)] = n
	}
	for _, w := range cfg.workloads {
		var names []string
		if w == "W4" {
			for _, n := range cfg.herd {
				names = append(names, fmt.Sprintf("W4/%d", n))
			}
		} else {
			names = []string{w}
		}
		for _, name := range names {
			r, ok := rs[impl+" "+name]
			if !ok {
				t.Errorf("%s: no result for %s", impl, name)
				continue
			}
			if r.Ops != want[name] || r.OpsPerSec <= 0 || r.Seconds <= 0 {
				t.Errorf("%s %s: ops=%d (want %d), ops/s=%v, seconds=%v", impl, name, r.Ops, want[name], r.OpsPerSec, r.Seconds)
			}
			if r.ServerPerOp <= 0 || r.ClientPerOp <= 0 {
				t.Errorf("%s %s: server packets/op %v, client requests/op %v: want both counted", impl, name, r.ServerPerOp, r.ClientPerOp)
			}
			if r.P50Ms < 0 || r.P99Ms <= 0 || r.P99Ms < r.P50Ms { // readers may all get in at once: p50 0
				t.Errorf("%s %s: p50 %v ms, p99 %v ms", impl, name, r.P50Ms, r.P99Ms)
			}
		}
	}
	if r, ok := rs[impl+" W2"]; ok && cfg.recipe != "read" && r.Extra["overlaps"] != 0 {
		t.Errorf("%s W2 %s: %v overlapping holds", impl, cfg.recipe, r.Extra["overlaps"])
	}
	for _, name := range []string{"W6", "W6s"} {
		if r, ok := rs[impl+" "+name]; ok {
			if r.Extra["waiters"] != float64(r.Ops) || r.Extra["drain_s"] <= 0 {
				t.Errorf("%s %s: extras %v", impl, name, r.Extra)
			}
		}
	}
}

func TestWorkloads(t *testing.T) {
	for _, tc := range []struct {
		recipe    string
		workloads []string
	}{
		{"mutex", nil}, // every workload
		{"semaphore-mutex", []string{"W1", "W2", "W4", "W6s"}},
		{"read", []string{"W1", "W2", "W4", "W6s"}},
		{"write", []string{"W1", "W2", "W4", "W6s"}},
	} {
		t.Run(tc.recipe, func(t *testing.T) {
			cfg := tiny(t, tc.recipe, tc.workloads...)
			var out, errb bytes.Buffer
			if err := run(context.Background(), cfg, &out, &errb); err != nil {
				t.Fatalf("run: %v\n%s", err, errb.String())
			}
			rs := parseResults(t, out.String())
			checkResults(t, rs, implName, cfg)
			if tc.recipe == "mutex" {
				// The pipelined acquire: create and listing, then the delete; and a raw pair's three.
				// (A little more is allowed: the server may reap the empty lock parent between two
				// pairs, so that it is made again, and idle sessions ping.)
				for _, w := range []string{"W1", "R1"} {
					r := rs[implName+" "+w]
					if r.ClientPerOp < 3 || r.ClientPerOp > 3.2 || r.ServerPerOp < 3 || r.ServerPerOp > 3.2 {
						t.Errorf("%s: %v client requests and %v server packets per pair, want 3 and 3", w, r.ClientPerOp, r.ServerPerOp)
					}
				}
			}
		})
	}
}

func TestTextOutput(t *testing.T) {
	cfg := tiny(t, "mutex", "W1", "W4")
	cfg.json = false
	var out, errb bytes.Buffer
	if err := run(context.Background(), cfg, &out, &errb); err != nil {
		t.Fatalf("run: %v\n%s", err, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1+len(cfg.herd) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), 1+len(cfg.herd), out.String())
	}
	for _, l := range lines {
		for _, field := range []string{"ops/s=", "p50=", "p99=", "srv_pkts/op=", "cli_req/op="} {
			if !strings.Contains(l, field) {
				t.Errorf("line %q has no %s", l, field)
			}
		}
	}
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-workloads", "w1,R3,W4"}, true},
		{[]string{"-workloads", "W9"}, false},
		{[]string{"-recipe", "semaphore"}, false},
		{[]string{"-herd", "8,x"}, false},
		{[]string{"-sessions", "0"}, false},
		{[]string{"extra"}, false},
	} {
		_, err := parseFlags(tc.args, &bytes.Buffer{})
		if (err == nil) != tc.ok {
			t.Errorf("parseFlags(%q): err %v, want ok %v", tc.args, err, tc.ok)
		}
	}
	cfg, err := parseFlags([]string{"-workloads", "R3,w1,W4"}, &bytes.Buffer{})
	if err != nil || strings.Join(cfg.workloads, ",") != "W1,W4,R3" {
		t.Errorf("workloads %v, %v: want W1,W4,R3 in the canonical order", cfg.workloads, err)
	}
}

// TestCompare runs the Curator twin against the same server, if Java and Curator are installed, and
// checks that the table puts the two side by side.
func TestCompare(t *testing.T) {
	if os.Getenv("GOCURATOR_SKIP_JAVA") == "1" {
		t.Skip("GOCURATOR_SKIP_JAVA=1")
	}
	if _, err := javart.Find(); err != nil {
		t.Skipf("no Java twin: %v", err)
	}
	t.Setenv(childEnv, "1")                               // the Go runs are this test binary, acting as zkbench
	cfg := tiny(t, "mutex", "W1", "W2", "W4", "W5", "R1") // one process each: W6 and W6s would be more
	cfg.compare = true
	cfg.rounds = 1
	cfg.javaSrc = "../../testdata/zkbench/ZkBench.java"
	var out, errb bytes.Buffer
	if err := compare(context.Background(), cfg, &out, &errb); err != nil {
		t.Fatalf("compare: %v\n%s", err, errb.String())
	}
	text := out.String()
	var results []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "r1 ") {
			results = append(results, strings.TrimPrefix(l, "r1 "))
		}
	}
	for _, impl := range []string{implName, curatorImpl} {
		n := 0
		for _, r := range results {
			if strings.Contains(r, " "+impl+" ") {
				n++
			}
		}
		if want := len(cfg.workloads) - 1 + len(cfg.herd); n != want {
			t.Errorf("%s: %d result lines, want %d:\n%s", impl, n, want, text)
		}
	}
	for _, row := range []string{"| W1 uncontended | pairs/s |", "| W2 contended | overlaps | 0 | 0 |", "| W5 failover | failover p50 ms |"} {
		if !strings.Contains(text, row) {
			t.Errorf("table has no row %q:\n%s", row, text)
		}
	}
}
