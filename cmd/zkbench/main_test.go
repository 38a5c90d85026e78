package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/internal/javart"
	"github.com/gocurator/curator/internal/testkit/zkenv"
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
	zkenv.Main(m, zkenv.Server(&testServer, zktest.WithTickTime(2*time.Second)))
}

// tiny is a configuration that runs every workload in a moment.
func tiny(t *testing.T, recipe string, workloads ...string) config {
	t.Helper()
	cfg := defaultConfig()
	cfg.server = testServer.ConnectString()
	cfg.root = zkenv.Path(t, testServer.Root()+"/zkbench-test")
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
	cfg.reconnects = 2
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
		r, err := decodeResult([]byte(line))
		if err != nil {
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
		"G1": cfg.iterations, "R2": cfg.sessions * cfg.perSession, "RC": cfg.reconnects,
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
			// A reconnect makes no request of the client's own: only the server counts it.
			if r.ServerPerOp <= 0 || r.ClientPerOp <= 0 && !(name == "RC" && r.ClientPerOp == 0) {
				t.Errorf("%s %s: server packets/op %v, client requests/op %v: want both counted", impl, name, r.ServerPerOp, r.ClientPerOp)
			}
			checkCost(t, impl, r)
			if r.P50Ms < 0 || r.P99Ms <= 0 || r.P99Ms < r.P50Ms { // readers may all get in at once: p50 0
				t.Errorf("%s %s: p50 %v ms, p99 %v ms", impl, name, r.P50Ms, r.P99Ms)
			}
		}
	}
	if r, ok := rs[impl+" W2"]; ok && cfg.recipe != "read" && r.Extra["overlaps"] != 0 {
		t.Errorf("%s W2 %s: %v overlapping holds", impl, cfg.recipe, r.Extra["overlaps"])
	}
	if r, ok := rs[impl+" R2"]; ok && r.Extra["overlaps"] != 0 {
		t.Errorf("%s R2: %v overlapping holds", impl, r.Extra["overlaps"])
	}
	for _, name := range []string{"W6", "W6s"} {
		if r, ok := rs[impl+" "+name]; ok {
			if r.Extra["waiters"] != float64(r.Ops) || r.Extra["drain_s"] <= 0 {
				t.Errorf("%s %s: extras %v", impl, name, r.Extra)
			}
		}
	}
}

// checkCost checks a result's client cost per op: CPU time always; in Go allocations and bytes; in
// Java bytes, and allocations n/a (-1).
func checkCost(t *testing.T, impl string, r Result) {
	t.Helper()
	for _, c := range []struct {
		field string
		v     float64
		want  string // ">0" or "n/a"
	}{
		{"cpu_us_per_op", r.CPUUsPerOp, ">0"},
		{"bytes_per_op", r.BytesPerOp, ">0"},
		{"allocs_per_op", r.AllocsPerOp, map[string]string{implName: ">0", curatorImpl: "n/a"}[impl]},
	} {
		if c.want == ">0" && !(c.v > 0) || c.want == "n/a" && c.v != -1 {
			t.Errorf("%s %s: %s = %v, want %s", impl, r.Workload, c.field, c.v, c.want)
		}
	}
	// A pair costs the client well under a CPU second.
	if r.CPUUsPerOp > 1e6 && r.Workload != "RC" {
		t.Errorf("%s %s: cpu_us_per_op = %v: not per op", impl, r.Workload, r.CPUUsPerOp)
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
				for _, w := range []string{"W1", "R1", "G1"} {
					r := rs[implName+" "+w]
					if r.ClientPerOp < 3 || r.ClientPerOp > 3.2 || r.ServerPerOp < 3 || r.ServerPerOp > 3.2 {
						t.Errorf("%s: %v client requests and %v server packets per pair, want 3 and 3", w, r.ClientPerOp, r.ServerPerOp)
					}
				}
				// The contended protocol: create, listing, and for most pairs an exists watch and a
				// second listing, then the delete; the client's count (on the wire) is the server's.
				if r := rs[implName+" R2"]; r.ClientPerOp < 3 || r.ClientPerOp > 5.5 || r.ServerPerOp < r.ClientPerOp-0.2 || r.ServerPerOp > r.ClientPerOp+0.2 {
					t.Errorf("R2: %v client requests and %v server packets per pair, want 3 to 5.5, the same", r.ClientPerOp, r.ServerPerOp)
				}
				if r := rs[implName+" RC"]; r.P50Ms <= 0 || r.P99Ms < r.P50Ms || r.Extra["sessions_lost"] != 0 {
					t.Errorf("RC: p50 %v ms, max %v ms, extras %v: want reconnects timed within the session", r.P50Ms, r.P99Ms, r.Extra)
				}
			}
		})
	}
}

func TestTextOutput(t *testing.T) {
	cfg := tiny(t, "mutex", "W1", "W4", "R1")
	cfg.json = false
	var out, errb bytes.Buffer
	if err := run(context.Background(), cfg, &out, &errb); err != nil {
		t.Fatalf("run: %v\n%s", err, errb.String())
	}
	// The result lines, a blank line, then a ceiling line per workload but the raw ones.
	results, ceils, _ := strings.Cut(strings.TrimSpace(out.String()), "\n\n")
	lines := strings.Split(results, "\n")
	if len(lines) != 2+len(cfg.herd) {
		t.Fatalf("got %d result lines, want %d:\n%s", len(lines), 2+len(cfg.herd), out.String())
	}
	for _, l := range lines {
		for _, field := range []string{"ops/s=", "p50=", "p99=", "srv_pkts/op=", "cli_req/op=", "cpu_us/op=", "allocs/op=", "bytes/op="} {
			if !strings.Contains(l, field) {
				t.Errorf("line %q has no %s", l, field)
			}
		}
		if strings.Contains(l, "=n/a") {
			t.Errorf("line %q has an unknown value", l)
		}
	}
	clines := strings.Split(ceils, "\n")
	if len(clines) != 1+len(cfg.herd) || !strings.Contains(clines[0], "gocurator W1: ") || !strings.Contains(clines[0], "% of the raw ceiling R1 (") {
		t.Errorf("ceiling lines %q: want W1's share of R1, then n/a for each W4", clines)
	}
	for _, l := range clines[1:] {
		if !strings.Contains(l, "raw ceiling n/a") {
			t.Errorf("ceiling line %q: want n/a", l)
		}
	}
}

func TestCeilingLine(t *testing.T) {
	for _, tc := range []struct {
		impl, workload string
		lib, raw       float64
		want           string
	}{
		{"gocurator", "W1", 1133.7, 1223.6, "gocurator W1: 93% of the raw ceiling R1 (1133.7 pairs/s of 1223.6)."},
		{"Curator", "W2", 500, 1000, "Curator W2: 50% of the raw ceiling R2 (500.0 pairs/s of 1000.0)."},
		{"gocurator", "W3", 4000, 4000, "gocurator W3: 100% of the raw ceiling R3 (4000.0 pairs/s of 4000.0)."},
		{"gocurator", "G1", 900, 1000, "gocurator G1: 90% of the raw ceiling R1 (900.0 pairs/s of 1000.0)."},
		{"gocurator", "W1", 1000, 0, "gocurator W1: n/a of the raw ceiling R1 (not measured)."},
		{"gocurator", "W2", -1, 1000, "gocurator W2: n/a of the raw ceiling R2 (not measured)."},
		{"gocurator", "W4/8", 1000, 1000, "gocurator W4/8: raw ceiling n/a (none for this workload)."},
		{"gocurator", "RC", 1, 0, "gocurator RC: raw ceiling n/a (none for this workload)."},
		{"gocurator", "", 0, 0, "gocurator : raw ceiling n/a (none for this workload)."},
	} {
		if got := ceilingLine(tc.impl, tc.workload, tc.lib, tc.raw); got != tc.want {
			t.Errorf("ceilingLine(%q, %q, %v, %v) = %q, want %q", tc.impl, tc.workload, tc.lib, tc.raw, got, tc.want)
		}
	}
}

func TestMeterFill(t *testing.T) {
	measured := newMeter()
	measured.start()
	sink := make([][]byte, 0, 100)
	for range 100 {
		sink = append(sink, make([]byte, 1024))
	}
	measured.stop()
	_ = sink
	stopOnly := newMeter()
	stopOnly.stop()
	for _, tc := range []struct {
		name       string
		m          *meter
		ops        int
		wantKnown  bool
		minAllocs  float64
		minBytesOp float64
	}{
		{"nil meter", nil, 10, false, 0, 0},
		{"nothing measured", newMeter(), 10, false, 0, 0},
		{"stop without start", stopOnly, 10, false, 0, 0},
		{"no ops", measured, 0, false, 0, 0},
		{"100 allocations of 1 KiB", measured, 1, true, 100, 100 * 1024},
		{"per op", measured, 100, true, 1, 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Result{Ops: tc.ops}
			tc.m.fill(&r)
			if !tc.wantKnown {
				if r.CPUUsPerOp != -1 || r.AllocsPerOp != -1 || r.BytesPerOp != -1 {
					t.Errorf("cpu %v, allocs %v, bytes %v per op: want all -1", r.CPUUsPerOp, r.AllocsPerOp, r.BytesPerOp)
				}
				return
			}
			if r.CPUUsPerOp < 0 || r.AllocsPerOp < tc.minAllocs || r.BytesPerOp < tc.minBytesOp {
				t.Errorf("cpu %v, allocs %v, bytes %v per op: want cpu known, at least %v allocs and %v bytes",
					r.CPUUsPerOp, r.AllocsPerOp, r.BytesPerOp, tc.minAllocs, tc.minBytesOp)
			}
		})
	}
}

func TestDecodeResult(t *testing.T) {
	for _, tc := range []struct {
		line                  string
		cpu, allocs, bytesPer float64
	}{
		{`{"workload":"W1","impl":"curator","ops":1}`, -1, -1, -1}, // an older twin: unknown, not 0
		{`{"workload":"W1","ops":1,"cpu_us_per_op":12.5,"allocs_per_op":-1,"bytes_per_op":2048}`, 12.5, -1, 2048},
		{`{"workload":"W1","ops":1,"cpu_us_per_op":80,"allocs_per_op":90,"bytes_per_op":4800}`, 80, 90, 4800},
	} {
		r, err := decodeResult([]byte(tc.line))
		if err != nil || r.CPUUsPerOp != tc.cpu || r.AllocsPerOp != tc.allocs || r.BytesPerOp != tc.bytesPer {
			t.Errorf("decodeResult(%s) = cpu %v allocs %v bytes %v, %v; want %v %v %v", tc.line,
				r.CPUUsPerOp, r.AllocsPerOp, r.BytesPerOp, err, tc.cpu, tc.allocs, tc.bytesPer)
		}
	}
	if _, err := decodeResult([]byte("{")); err == nil {
		t.Error("decodeResult of a broken line: no error")
	}
}

func TestTableRows(t *testing.T) {
	res := func(impl, wl string, opsPerSec, cpu, allocs float64) Result {
		return Result{Workload: wl, Impl: impl, Recipe: "mutex", Ops: 10, OpsPerSec: opsPerSec, P50Ms: 1, P99Ms: 2,
			ServerPerOp: 3, ClientPerOp: 3, CPUUsPerOp: cpu, AllocsPerOp: allocs, BytesPerOp: 4800}
	}
	ours := []Result{res(implName, "W1", 900, 114, 90), res(implName, "W2", 600, 200, 150), res(implName, "G1", 800, 90, 50),
		res(implName, "R1", 1000, 82, 49), res(implName, "R2", 800, 150, 100), res(implName, "RC", 1, 3000, 130), res(implName, "W4/8", 100, 50, 40)}
	theirs := []Result{res(curatorImpl, "W1", 600, 300, -1), res(curatorImpl, "W2", 300, 400, -1), res(curatorImpl, "R1", 800, 200, -1),
		res(curatorImpl, "R2", 600, 250, -1)}
	var out bytes.Buffer
	writeTable(&out, ours, theirs)
	text := out.String()
	for _, row := range []string{
		"| W1 uncontended | % of raw ceiling R1 | 90 | 75 | 1.20x |",
		"| W1 uncontended | client CPU µs/pair | 114.0 | 300.0 | 0.38x |",
		"| W1 uncontended | allocs/pair | 90.0 | n/a | n/a |",
		"| W1 uncontended | bytes/pair | 4800 | 4800 | 1.00x |",
		"| W2 contended | % of raw ceiling R2 | 75 | 50 | 1.50x |",
		"| W2 contended | client CPU µs/pair | 200.0 | 400.0 | 0.50x |",
		"| G1 go-zk lock | pairs/s | 800.0 | n/a | n/a |",
		"| G1 go-zk lock | % of raw ceiling R1 | 80 | n/a | n/a |",
		"| G1 go-zk lock | client CPU µs/pair | 90.0 | n/a | n/a |",
		"| R1 raw/1 session | client CPU µs/pair | 82.0 | 200.0 |",
		"| R2 raw/contended | hand-offs/s | 800.0 | 600.0 |",
		"| RC reconnect | reconnect p50 ms | 1.0 | n/a | n/a |",
		"| RC reconnect | reconnect max ms | 2.0 | n/a | n/a |",
		"| RC reconnect | % of raw ceiling | n/a | n/a | n/a |",
		"| W4/8 herd | % of raw ceiling | n/a | n/a | n/a |",
		"gocurator W1: 90% of the raw ceiling R1 (900.0 pairs/s of 1000.0).",
		"Curator W1: 75% of the raw ceiling R1 (600.0 pairs/s of 800.0).",
		"gocurator W2: 75% of the raw ceiling R2 (600.0 pairs/s of 800.0).",
		"Curator W2: 50% of the raw ceiling R2 (300.0 pairs/s of 600.0).",
		"gocurator G1: 80% of the raw ceiling R1 (800.0 pairs/s of 1000.0).",
	} {
		if !strings.Contains(text, row) {
			t.Errorf("table has no %q:\n%s", row, text)
		}
	}
	if strings.Contains(text, "Curator G1") {
		t.Errorf("a ceiling line for Curator's G1, which has no twin:\n%s", text)
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
		{[]string{"-workloads", "G1,R2,RC"}, true},
		{[]string{"-reconnects", "0"}, false},
		{[]string{"-reconnects", "x"}, false},
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
	t.Setenv(childEnv, "1")                                                 // the Go runs are this test binary, acting as zkbench
	cfg := tiny(t, "mutex", "W1", "W2", "W4", "W5", "G1", "R1", "R2", "RC") // one process each: W6 and W6s would be more
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
		want := len(cfg.workloads) - 1 + len(cfg.herd)
		if impl == curatorImpl {
			want -= 2 // no twin of G1 and RC
		}
		if n != want {
			t.Errorf("%s: %d result lines, want %d:\n%s", impl, n, want, text)
		}
	}
	// Both report the client's CPU and bytes per op; only Go counts allocations.
	for _, l := range results {
		for _, field := range []string{"cpu_us/op=n/a", "bytes/op=n/a"} {
			if strings.Contains(l, field) {
				t.Errorf("result line %q: %s", l, field)
			}
		}
		if java := strings.Contains(l, " "+curatorImpl+" "); java != strings.Contains(l, "allocs/op=n/a") {
			t.Errorf("result line %q: allocs/op must be n/a for Curator and only for Curator", l)
		}
	}
	for _, row := range []string{"| W1 uncontended | pairs/s |", "| W2 contended | overlaps | 0 | 0 |", "| W5 failover | failover p50 ms |",
		"| W1 uncontended | client CPU µs/pair |", "| W1 uncontended | % of raw ceiling R1 |", "| W2 contended | % of raw ceiling R2 |",
		"| R2 raw/contended | overlaps | 0 | 0 |", "| G1 go-zk lock | pairs/s |", "| RC reconnect | reconnect p50 ms |",
		"\ngocurator W1: ", "\nCurator W1: ", "\ngocurator W2: ", "\nCurator W2: ", "% of the raw ceiling R2 (", "\ngocurator G1: "} {
		if !strings.Contains(text, row) {
			t.Errorf("table has no row %q:\n%s", row, text)
		}
	}
}
