//go:build !linux

package main

// rssMB returns -1, -1: the resident set size is read on Linux only.
func rssMB() (rss, peak float64) { return -1, -1 }
