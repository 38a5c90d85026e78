package main

import (
	"os"
	"strconv"
	"strings"
)

// rssMB returns the resident set size of this process and its peak so far (VmRSS and VmHWM), in
// MiB, or -1 for what cannot be read.
func rssMB() (rss, peak float64) {
	rss, peak = -1, -1
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return rss, peak
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss = kB(v)
		} else if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			peak = kB(v)
		}
	}
	return rss, peak
}

// kB parses a /proc/self/status value such as "  1234 kB" into MiB, -1 if it cannot.
func kB(v string) float64 {
	n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
	if err != nil {
		return -1
	}
	return n / 1024
}
