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
	Workload string `json:"workload"` // W1, W2, W3, W4/<waiters>, W5, W6, W6s, R1, R3
	Impl     string `json:"impl"`     // gocurator or curator
	Recipe   string `json:"recipe"`   // mutex, semaphore-mutex, read, write (latch for W5, raw for R)
	// Ops is how many operations the rates and the per-op counts are of: acquire+release pairs
	// (W1, W2, W3, W6, R), hand-offs (W4) or failovers (W5).
	Ops       int     `json:"ops"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"ops_per_sec"`
	// P50Ms and P99Ms are latencies in milliseconds: of a pair (W1, W3, R), of the wait in an
	// acquire (W2), of a hand-off (W4), of a failover (W5; P99Ms is then the maximum).
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	// ServerPerOp is the server's packets received per op (the delta of mntr's
	// zk_packets_received, summed over the servers), -1 if mntr could not be read.
	ServerPerOp float64 `json:"server_packets_per_op"`
	// ClientPerOp is the requests the client library sent per op, as counted by the client, -1
	// if not counted.
	ClientPerOp float64 `json:"client_requests_per_op"`
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
	case workload == "R1":
		return "raw/1 session"
	case workload == "R3":
		return "raw/sessions"
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

// TextLine is the result as one line of text: the workload, then key=value fields.
func (r Result) TextLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s %-14s %-10s %-15s ops=%d time=%ss ops/s=%s p50=%sms p99=%sms srv_pkts/op=%s cli_req/op=%s",
		r.Workload, describe(r.Workload), r.Impl, r.Recipe, r.Ops, fmtFloat(r.Seconds, 3),
		fmtFloat(r.OpsPerSec, 1), fmtFloat(r.P50Ms, 3), fmtFloat(r.P99Ms, 3),
		fmtFloat(r.ServerPerOp, 2), fmtFloat(r.ClientPerOp, 2))
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

// newResult fills in the common fields of a result.
func newResult(workload, recipe string, ops int, elapsed time.Duration, lat latencies, srvDelta, cliDelta int64) Result {
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
	return r
}
