package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Result is what one workload measured. The Java twin (testdata/zkbench/ZkBench.java) prints the
// same fields, in the same text line and JSON object.
type Result struct {
	Workload string `json:"workload"` // W1, W2, W3, W4/<waiters>, W5, W6, W6s, G1, R1, R2, R3, RC
	Impl     string `json:"impl"`     // gocurator or curator
	Recipe   string `json:"recipe"`   // mutex, semaphore-mutex, read, write (latch for W5, raw for R)
	// Ops is how many operations the rates and the per-op counts are of: acquire+release pairs
	// (W1, W2, W3, W6, G1, R), hand-offs (W4), failovers (W5) or reconnects (RC).
	Ops       int     `json:"ops"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// P50Ms and P99Ms are latencies in milliseconds: of a pair (W1, W3, R), of the wait in an
	// acquire (W2, R2), of a hand-off (W4), of a failover (W5) or of a reconnect (RC); for W5 and
	// RC, P99Ms is the maximum.
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// ServerPerOp is the server's packets received per op (the delta of mntr's
	// zk_packets_received, summed over the servers), -1 if mntr could not be read.
	ServerPerOp float64 `json:"server_packets_per_op"`
	// ClientPerOp is the requests the client library sent per op, as counted by the client, -1
	// if not counted.
	ClientPerOp float64 `json:"client_requests_per_op"`
	// CPUUsPerOp is the client process's CPU time (user and system, every thread: in Java the JIT
	// and the garbage collector included) over the measured part, in microseconds per op; -1 if
	// unknown.
	CPUUsPerOp float64 `json:"cpu_us_per_op"`
	// AllocsPerOp and BytesPerOp are the heap allocations over the measured part per op: Go's
	// runtime.MemStats Mallocs and TotalAlloc deltas; in Java, the bytes allocated by the live
	// threads (allocations are not counted there: AllocsPerOp is -1). -1 if unknown.
	AllocsPerOp float64 `json:"allocs_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	// Extra holds the workload's own figures: overlaps (W2); waiters (W4, W6); rss_mb (while all
	// wait), rss_peak_mb (the process's peak so far), heap_mb, stack_mb, goroutines or threads,
	// queue_s and drain_s (W6); close_p50_ms and close_max_ms (W5).
	Extra map[string]float64 `json:"extra,omitempty"`
}

// extraOrder is the order extras are printed in; others follow sorted.
var extraOrder = []string{"overlaps", "waiters", "paths", "rss_mb", "rss_peak_mb", "heap_mb", "stack_mb", "goroutines", "threads",
	"queue_s", "drain_s", "close_p50_ms", "close_max_ms"}

// describe is a short description of each workload, for the text output.
func describe(workload string) string {
	switch {
	case workload == "W1":
		return "uncontended"
	case workload == "W2":
		return "contended"
	case workload == "W3":
		return "independent"
	case strings.HasPrefix(workload, "W4"):
		return "herd"
	case workload == "W5":
		return "failover"
	case workload == "W6":
		return "scale/own"
	case workload == "W6s":
		return "scale/shared"
	case workload == "G1":
		return "go-zk lock"
	case workload == "R1":
		return "raw/1 session"
	case workload == "R2":
		return "raw/contended"
	case workload == "R3":
		return "raw/sessions"
	case workload == "RC":
		return "reconnect"
	}
	return ""
}

// fmtFloat formats v with the given number of decimals, or "n/a" for a negative value.
func fmtFloat(v float64, decimals int) string {
	if v < 0 || math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

// TextLine is the result as one line of text: the workload, then key=value fields (unknown values
// as n/a), the workload's extras last.
func (r Result) TextLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s %-14s %-10s %-15s ops=%d time=%ss ops/s=%s p50=%sms p99=%sms srv_pkts/op=%s cli_req/op=%s cpu_us/op=%s allocs/op=%s bytes/op=%s",
		r.Workload, describe(r.Workload), r.Impl, r.Recipe, r.Ops, fmtFloat(r.Seconds, 3),
		fmtFloat(r.OpsPerSec, 1), fmtFloat(r.P50Ms, 3), fmtFloat(r.P99Ms, 3),
		fmtFloat(r.ServerPerOp, 2), fmtFloat(r.ClientPerOp, 2),
		fmtFloat(r.CPUUsPerOp, 1), fmtFloat(r.AllocsPerOp, 1), fmtFloat(r.BytesPerOp, 0))
	for _, k := range extraKeys(r.Extra) {
		fmt.Fprintf(&b, " %s=%s", k, strconv.FormatFloat(r.Extra[k], 'f', -1, 64))
	}
	return b.String()
}

// extraKeys returns the keys of extra in print order.
func extraKeys(extra map[string]float64) []string {
	var keys []string
	for _, k := range extraOrder {
		if _, ok := extra[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range extra {
		if !slices.Contains(extraOrder, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(keys, rest...)
}

// printer writes results as text lines or JSON lines.
type printer struct {
	w    io.Writer
	json bool
}

func (p printer) print(r Result) error {
	if p.json {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(p.w, r.TextLine())
	return err
}

// ms converts a duration to milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// round rounds v to the given number of decimals, for tidy JSON.
func round(v float64, decimals int) float64 {
	if v < 0 {
		return v
	}
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}

// percentile returns the p-th percentile (0 < p <= 1) of sorted by the nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// latencies collects durations and summarises them.
type latencies []time.Duration

func (l latencies) p50p99() (p50, p99 float64) {
	s := slices.Clone(l)
	slices.Sort(s)
	return round(ms(percentile(s, 0.50)), 3), round(ms(percentile(s, 0.99)), 3)
}

// perOp is delta/ops, or -1 if delta is unknown (negative) or there were no ops.
func perOp(delta int64, ops int) float64 {
	if delta < 0 || ops <= 0 {
		return -1
	}
	return round(float64(delta)/float64(ops), 3)
}

// decodeResult reads one JSON result line. The CPU and allocation figures of a line that has none
// (from an older twin) are unknown (-1), not 0.
func decodeResult(line []byte) (Result, error) {
	r := Result{CPUUsPerOp: -1, AllocsPerOp: -1, BytesPerOp: -1}
	err := json.Unmarshal(line, &r)
	return r, err
}

// newResult fills in the common fields of a result; m (which may be nil: unknown) gives the CPU
// and allocation figures.
func newResult(workload, recipe string, ops int, elapsed time.Duration, lat latencies, srvDelta, cliDelta int64, m *meter) Result {
	r := Result{
		Workload:    workload,
		Impl:        implName,
		Recipe:      recipe,
		Ops:         ops,
		Seconds:     round(elapsed.Seconds(), 3),
		ServerPerOp: perOp(srvDelta, ops),
		ClientPerOp: perOp(cliDelta, ops),
	}
	if elapsed > 0 {
		r.OpsPerSec = round(float64(ops)/elapsed.Seconds(), 1)
	}
	if len(lat) > 0 {
		r.P50Ms, r.P99Ms = lat.p50p99()
	}
	m.fill(&r)
	return r
}

// ceilings maps each workload that has a raw-protocol ceiling to the raw workload that makes the
// same requests with bare client calls. Workloads not in it have no ceiling.
var ceilings = map[string]string{"W1": "R1", "W2": "R2", "W3": "R3", "G1": "R1"}

// hasCeilingLine tells whether a workload gets a line about its raw ceiling: every workload but the
// raw ones themselves.
func hasCeilingLine(workload string) bool {
	return !strings.HasPrefix(workload, "R") || workload == "RC"
}

// ceilingLine says how close impl's median rate of workload (lib, ops/s) comes to that of its raw
// ceiling (raw, ops/s), as "gocurator W1: 93% of the raw ceiling R1 (1133.7 pairs/s of 1223.6).";
// for a workload without a ceiling, or whose ceiling or own rate is unknown (not positive), it
// says n/a.
func ceilingLine(impl, workload string, lib, raw float64) string {
	ceil, ok := ceilings[workload]
	switch {
	case !ok:
		return fmt.Sprintf("%s %s: raw ceiling n/a (none for this workload).", impl, workload)
	case lib <= 0 || raw <= 0:
		return fmt.Sprintf("%s %s: n/a of the raw ceiling %s (not measured).", impl, workload, ceil)
	}
	return fmt.Sprintf("%s %s: %.0f%% of the raw ceiling %s (%s pairs/s of %s).", impl, workload,
		100*lib/raw, ceil, fmtFloat(lib, 1), fmtFloat(raw, 1))
}

// writeCeilings prints, after a blank line, a ceiling line for each of rs's workloads that is not
// a raw one (see ceilingLine), in the order of rs.
func writeCeilings(w io.Writer, impl string, rs []Result) error {
	rate := map[string]float64{}
	var order []string
	for _, r := range rs {
		rate[r.Workload] = r.OpsPerSec
		if hasCeilingLine(r.Workload) {
			order = append(order, r.Workload)
		}
	}
	if len(order) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	for _, wl := range order {
		if _, err := fmt.Fprintln(w, ceilingLine(impl, wl, rate[wl], rate[ceilings[wl]])); err != nil {
			return err
		}
	}
	return nil
}
