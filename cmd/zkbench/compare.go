package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gocurator/curator/internal/javart"
	"github.com/gocurator/curator/zktest"
)

// curatorImpl names the Java twin in results.
const curatorImpl = "curator"

// runLimit bounds one run of one implementation.
const runLimit = 20 * time.Minute

// compare runs this program and the Curator twin against one server, in alternation, cfg.rounds
// times each, and prints their results and a table of medians.
func compare(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	logf := func(format string, args ...any) {
		if !cfg.quiet {
			fmt.Fprintf(stderr, "zkbench: "+format+"\n", args...)
		}
	}
	dir, err := os.MkdirTemp("", "zkbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logf("compiling %s", cfg.javaSrc)
	twin, err := javart.Build(cfg.javaSrc, dir)
	if err != nil {
		return fmt.Errorf("building the Curator twin: %w\n%s", err, javart.InstallHint)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	connect := cfg.server
	serverNote := "given with -server"
	if connect == "" {
		logf("starting ZooKeeper")
		srv, err := zktest.StartServer(zktest.WithTickTime(2 * time.Second))
		if err != nil {
			return fmt.Errorf("starting a ZooKeeper server: %w", err)
		}
		defer srv.Close()
		connect = srv.ConnectString()
		serverNote = "started by zkbench through zktest (standalone, tickTime=2000, forceSync=no)"
		if srv.Root() != "" {
			cfg.root = srv.Root()
		}
	}
	if cfg.root == "" {
		cfg.root = fmt.Sprintf("/zkbench/compare-%d", time.Now().UnixNano())
	}
	jvmArgs := []string{"-Dorg.slf4j.simpleLogger.defaultLogLevel=error", "-Dorg.slf4j.simpleLogger.logFile=System.err"}
	jvmArgs = append(jvmArgs, strings.Fields(cfg.jvmArgs)...)

	results := map[string][]Result{}
	began := time.Now()
	for round := 1; round <= cfg.rounds; round++ {
		// Each implementation runs in turn, the first one alternating from round to round; the
		// scale workloads run in processes of their own, so that their RSS is theirs alone.
		order := []string{implName, curatorImpl}
		if round%2 == 0 {
			order = []string{curatorImpl, implName}
		}
		for g, group := range processGroups(cfg.workloads) {
			for _, impl := range order {
				gcfg := cfg
				gcfg.workloads = group
				args := childArgs(gcfg, fmt.Sprintf("%s/r%d-%d-%s", cfg.root, round, g, impl), connect)
				var cmd *exec.Cmd
				if impl == implName {
					cmd = exec.Command(self, args...)
				} else {
					cmd = twin.Command(jvmArgs, args...)
				}
				logf("round %d/%d: %s %s", round, cfg.rounds, impl, strings.Join(group, ","))
				t0 := time.Now()
				rs, err := runChild(ctx, cmd, fmt.Sprintf("[%s r%d] ", impl, round), stderr)
				for _, r := range rs {
					fmt.Fprintf(stdout, "r%d %s\n", round, r.TextLine())
				}
				if err != nil {
					return fmt.Errorf("round %d, %s: %w", round, impl, err)
				}
				logf("round %d/%d: %s done in %s", round, cfg.rounds, impl, time.Since(t0).Round(time.Second))
				results[impl] = append(results[impl], rs...)
			}
		}
	}
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "Medians of %d rounds per implementation, run in alternation against one server (%s) in %s.\n",
		cfg.rounds, serverNote, time.Since(began).Round(time.Second))
	fmt.Fprintf(stdout, "Recipe: %s. %s\n\n", cfg.recipe, machine(connect, twin))
	writeTable(stdout, results[implName], results[curatorImpl])
	return nil
}

// isolated are the workloads that run in a process of their own under -compare.
var isolated = []string{"W6", "W6s"}

// processGroups splits workloads into the sets that -compare runs in one process each: the
// isolated ones alone, the others together.
func processGroups(workloads []string) [][]string {
	var rest []string
	var groups [][]string
	for _, w := range workloads {
		if slices.Contains(isolated, w) {
			groups = append(groups, []string{w})
		} else {
			rest = append(rest, w)
		}
	}
	if len(rest) > 0 {
		groups = append([][]string{rest}, groups...)
	}
	return groups
}

// childArgs are the flags a child run gets: the same for both implementations.
func childArgs(cfg config, root, connect string) []string {
	return []string{
		"-server", connect,
		"-root", root,
		"-recipe", cfg.recipe,
		"-workloads", strings.Join(cfg.workloads, ","),
		"-iterations", strconv.Itoa(cfg.iterations),
		"-per-session", strconv.Itoa(cfg.perSession),
		"-sessions", strconv.Itoa(cfg.sessions),
		"-paths", strconv.Itoa(cfg.paths),
		"-herd", joinInts(cfg.herd),
		"-failovers", strconv.Itoa(cfg.failovers),
		"-reconnects", strconv.Itoa(cfg.reconnects),
		"-waiters", strconv.Itoa(cfg.waiters),
		"-shared-waiters", strconv.Itoa(cfg.sharedWaiters),
		"-warmup", strconv.Itoa(cfg.warmup),
		"-session-timeout", strconv.FormatInt(cfg.sessionTimeout.Milliseconds(), 10) + "ms",
		"-timeout", strconv.FormatInt(cfg.timeout.Milliseconds(), 10) + "ms",
		"-json",
	}
}

// runChild runs cmd, copies its stderr to stderr with prefix in front of each line, and returns
// the results it printed.
func runChild(ctx context.Context, cmd *exec.Cmd, prefix string, stderr io.Writer) ([]Result, error) {
	ctx, cancel := context.WithTimeout(ctx, runLimit)
	defer cancel()
	var out bytes.Buffer
	cmd.Stdout = &out
	pw := &prefixWriter{w: stderr, prefix: prefix}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		err = ctx.Err()
	}
	pw.flush()
	var rs []Result
	sc := bufio.NewScanner(&out)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		r, jerr := decodeResult([]byte(line))
		if jerr != nil {
			return rs, fmt.Errorf("bad result line %q: %w", line, jerr)
		}
		rs = append(rs, r)
	}
	return rs, err
}

// prefixWriter writes each line with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.buf = nil
	}
}

// machine describes the machine, the server and the runtimes, in one paragraph.
func machine(connect string, twin *javart.Program) string {
	var parts []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				parts = append(parts, "CPU: "+strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")))
				break
			}
		}
	}
	parts = append(parts, fmt.Sprintf("%d CPUs (GOMAXPROCS %d), %s/%s", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH))
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			parts = append(parts, "load average at the end "+strings.Join(f[:3], " "))
		}
	}
	parts = append(parts, runtime.Version())
	if out, err := exec.Command(twin.Java, "-version").CombinedOutput(); err == nil {
		parts = append(parts, firstLine(strings.TrimSpace(string(out))))
	}
	if reply, err := zktest.FourLetterWord(splitServers(connect)[0], "srvr", 5*time.Second); err == nil {
		if v, ok := strings.CutPrefix(firstLine(reply), "Zookeeper version: "); ok {
			v, _, _ = strings.Cut(v, ",")
			parts = append(parts, "ZooKeeper "+v)
		}
	}
	return strings.Join(parts, "; ") + "."
}

// metric is one row of the table.
type metric struct {
	name string
	// get reads the row's value from a result. It is nil for the row of the share of the raw
	// ceiling: each implementation's median rate of the workload as a percentage of its median
	// rate of the workload's ceiling (see ceilings), n/a where there is none.
	get    func(Result) float64
	digits int
	target string
	// check tells whether the target is met, given our median and Curator's; nil: no target.
	check func(ours, theirs float64) bool
}

func extra(key string) func(Result) float64 {
	return func(r Result) float64 {
		if v, ok := r.Extra[key]; ok {
			return v
		}
		return -1
	}
}

var (
	opsPerSec = func(r Result) float64 { return r.OpsPerSec }
	p50       = func(r Result) float64 { return r.P50Ms }
	p99       = func(r Result) float64 { return r.P99Ms }
	srvPerOp  = func(r Result) float64 { return r.ServerPerOp }
	cliPerOp  = func(r Result) float64 { return r.ClientPerOp }
	cpuPerOp  = func(r Result) float64 { return r.CPUUsPerOp }
	allocs    = func(r Result) float64 { return r.AllocsPerOp }
	bytesOp   = func(r Result) float64 { return r.BytesPerOp }
	atLeast   = func(x float64) func(o, t float64) bool { return func(o, t float64) bool { return o >= x*t } }
	noMore    = func(o, t float64) bool { return o <= t }
)

// costRows are the client's CPU and allocation rows of a workload whose ops are unit (pair,
// hand-off, ...).
func costRows(unit string) []metric {
	return []metric{
		{name: "client CPU µs/" + unit, get: cpuPerOp, digits: 1},
		{name: "allocs/" + unit, get: allocs, digits: 1},
		{name: "bytes/" + unit, get: bytesOp, digits: 0},
	}
}

// ceilingRow is the row of the share of the raw ceiling of workload.
func ceilingRow(workload string) metric {
	name := "% of raw ceiling"
	if c, ok := ceilings[workload]; ok {
		name += " " + c
	}
	return metric{name: name, digits: 0} // get nil: the share of the ceiling
}

// metrics returns the rows of a workload run with recipe.
func metrics(workload, recipe string) []metric {
	switch {
	case workload == "W1":
		return []metric{
			{"pairs/s", opsPerSec, 1, ">= 1.5x", atLeast(1.5)},
			{"pair p50 ms", p50, 3, "", nil},
			{"pair p99 ms", p99, 3, "", nil},
			{"server packets/pair", srvPerOp, 2, "", nil},
			{"client requests/pair", cliPerOp, 2, "", nil},
			ceilingRow(workload),
			costRows("pair")[0], costRows("pair")[1], costRows("pair")[2],
		}
	case workload == "G1":
		return append([]metric{
			{"pairs/s", opsPerSec, 1, "", nil},
			{"pair p50 ms", p50, 3, "", nil},
			{"pair p99 ms", p99, 3, "", nil},
			{"server packets/pair", srvPerOp, 2, "", nil},
			{"client requests/pair", cliPerOp, 2, "", nil},
			ceilingRow(workload),
		}, costRows("pair")...)
	case workload == "W2":
		return []metric{
			{"hand-offs/s", opsPerSec, 1, ">= 1.3x", atLeast(1.3)},
			{"wait p50 ms", p50, 3, "", nil},
			{"wait p99 ms", p99, 3, "", nil},
			overlapsMetric(recipe),
			{"server packets/pair", srvPerOp, 2, "", nil},
			ceilingRow(workload),
			costRows("pair")[0], costRows("pair")[1], costRows("pair")[2],
		}
	case workload == "W3":
		return []metric{
			{"pairs/s", opsPerSec, 1, ">= 1.4x", atLeast(1.4)},
			{"pair p50 ms", p50, 3, "", nil},
			{"pair p99 ms", p99, 3, "", nil},
			{"server packets/pair", srvPerOp, 2, "", nil},
			ceilingRow(workload),
			costRows("pair")[0], costRows("pair")[1], costRows("pair")[2],
		}
	case strings.HasPrefix(workload, "W4"):
		return []metric{
			{"server packets/hand-off", srvPerOp, 3, "<= Curator", noMore},
			{"client requests/hand-off", cliPerOp, 3, "", nil},
			{"hand-offs/s", opsPerSec, 1, "", nil},
			{"hand-off p50 ms", p50, 3, "", nil},
			{name: "client CPU µs/hand-off", get: cpuPerOp, digits: 1},
			ceilingRow(workload),
		}
	case workload == "W5":
		return []metric{
			{"failover p50 ms", p50, 1, "<= Curator", noMore},
			{"failover max ms", p99, 1, "", nil},
			{"close max ms", extra("close_max_ms"), 1, "", nil},
			{"server packets/failover", srvPerOp, 1, "", nil},
			{name: "client CPU µs/failover", get: cpuPerOp, digits: 1},
			ceilingRow(workload),
		}
	case workload == "W6" || workload == "W6s":
		return []metric{
			{"RSS MB while all wait", extra("rss_mb"), 1, "< 200 MB", func(o, t float64) bool { return o >= 0 && o < 200 }},
			{"peak RSS MB", extra("rss_peak_mb"), 1, "", nil},
			{"goroutines / threads", func(r Result) float64 {
				if v, ok := r.Extra["goroutines"]; ok {
					return v
				}
				return extra("threads")(r)
			}, 0, "", nil},
			{"queue s", extra("queue_s"), 2, "", nil},
			{"drain s", extra("drain_s"), 2, "", nil},
			{"server packets/waiter (drain)", srvPerOp, 2, "", nil},
			{name: "client CPU µs/waiter (drain)", get: cpuPerOp, digits: 1},
			ceilingRow(workload),
		}
	case workload == "RC":
		return []metric{
			{"reconnect p50 ms", p50, 1, "", nil},
			{"reconnect max ms", p99, 1, "", nil},
			{"server packets/reconnect", srvPerOp, 1, "", nil},
			{name: "client CPU µs/reconnect", get: cpuPerOp, digits: 1},
			ceilingRow(workload),
		}
	case workload == "R2":
		return append([]metric{
			{"hand-offs/s", opsPerSec, 1, "", nil},
			{"wait p50 ms", p50, 3, "", nil},
			{"wait p99 ms", p99, 3, "", nil},
			overlapsMetric(recipe),
			{"server packets/pair", srvPerOp, 2, "", nil},
			{"client requests/pair", cliPerOp, 2, "", nil},
		}, costRows("pair")...)
	case strings.HasPrefix(workload, "R"):
		return append([]metric{
			{"pairs/s", opsPerSec, 1, "", nil},
			{"pair p50 ms", p50, 3, "", nil},
			{"server packets/pair", srvPerOp, 2, "", nil},
		}, costRows("pair")...)
	}
	return []metric{{"ops/s", opsPerSec, 1, "", nil}}
}

// overlapsMetric is W2's overlaps row: none allowed, except for readers, which share the lock.
func overlapsMetric(recipe string) metric {
	if recipe == "read" {
		return metric{"overlaps (readers share)", extra("overlaps"), 0, "", nil}
	}
	return metric{"overlaps", extra("overlaps"), 0, "0", func(o, t float64) bool { return o == 0 }}
}

// median returns the median of the values of rs (the mean of the middle two for an even count),
// ignoring negative (unknown) values; -1 if none is known.
func median(rs []Result, get func(Result) float64) float64 {
	var v []float64
	for _, r := range rs {
		if x := get(r); x >= 0 {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return -1
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// byWorkload groups results by workload, in the order the workloads first appear.
func byWorkload(rs []Result) (order []string, groups map[string][]Result) {
	groups = map[string][]Result{}
	for _, r := range rs {
		if _, ok := groups[r.Workload]; !ok {
			order = append(order, r.Workload)
		}
		groups[r.Workload] = append(groups[r.Workload], r)
	}
	return order, groups
}

// writeTable prints the medians of both implementations side by side as a Markdown table, with
// the ratio ours/Curator and each target's outcome.
func writeTable(w io.Writer, ours, theirs []Result) {
	order, og := byWorkload(ours)
	torder, tg := byWorkload(theirs)
	for _, wl := range torder {
		if !slices.Contains(order, wl) {
			order = append(order, wl)
		}
	}
	fmt.Fprintln(w, "| workload | metric | gocurator | Curator 5.4 | ours/Curator | target | met |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---|---|")
	for _, wl := range order {
		recipe := ""
		if rs := append(og[wl], tg[wl]...); len(rs) > 0 {
			recipe = rs[0].Recipe
		}
		for _, m := range metrics(wl, recipe) {
			var o, t float64
			if m.get == nil {
				o, t = ceilingPct(og, wl), ceilingPct(tg, wl)
			} else {
				o, t = median(og[wl], m.get), median(tg[wl], m.get)
			}
			ratio := "n/a"
			if o >= 0 && t > 0 {
				ratio = strconv.FormatFloat(o/t, 'f', 2, 64) + "x"
			}
			met := ""
			if m.check != nil && o >= 0 {
				if m.check(o, t) {
					met = "yes"
				} else {
					met = "**no**"
				}
			}
			fmt.Fprintf(w, "| %s %s | %s | %s | %s | %s | %s | %s |\n", wl, describe(wl), m.name,
				fmtFloat(o, m.digits), fmtFloat(t, m.digits), ratio, m.target, met)
		}
	}
	// The raw ceilings, of the workloads that have one and ran.
	fmt.Fprintln(w)
	for _, wl := range []string{"W1", "W2", "W3", "G1"} {
		for _, impl := range []struct {
			name string
			g    map[string][]Result
		}{{implName, og}, {"Curator", tg}} {
			if len(impl.g[wl]) > 0 {
				fmt.Fprintln(w, ceilingLine(impl.name, wl, median(impl.g[wl], opsPerSec), median(impl.g[ceilings[wl]], opsPerSec)))
			}
		}
	}
}

// ceilingPct is the median rate of workload in g as a percentage of the median rate of its raw
// ceiling in g; -1 (n/a) if the workload has no ceiling or either rate is unknown.
func ceilingPct(g map[string][]Result, workload string) float64 {
	ceil, ok := ceilings[workload]
	if !ok {
		return -1
	}
	lib, raw := median(g[workload], opsPerSec), median(g[ceil], opsPerSec)
	if lib <= 0 || raw <= 0 {
		return -1
	}
	return 100 * lib / raw
}
