package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/gocurator/curator/zktest"
)

var testServer *zktest.Server

func TestMain(m *testing.M) {
	srv, err := zktest.StartServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "these tests need a ZooKeeper server:", err)
		os.Exit(1)
	}
	testServer = srv
	code := m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping ZooKeeper:", err)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// The example runs its pool against a real server, and one scrape of /metrics shows the client's
// and the locks' series, with every job counted once.
func TestServesMetrics(t *testing.T) {
	const workers, jobs = 4, 3
	cfg := config{
		servers: testServer.ConnectString(), addr: "127.0.0.1:0", root: testServer.Root() + "/metrics-example",
		workers: workers, locks: 2, hold: 10 * time.Millisecond, wait: 5 * time.Second, jobs: jobs,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addrs, done, ran := make(chan string, 1), make(chan struct{}), make(chan error, 1)
	go func() { ran <- run(ctx, cfg, func(a string) { addrs <- a }, func() { close(done) }) }()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-ran:
		t.Fatalf("run: %v", err)
	}
	select {
	case <-done:
	case err := <-ran:
		t.Fatalf("run: %v", err)
	}

	fams := scrape(t, "http://"+addr+"/metrics")
	sum := func(name string, match map[string]string) (float64, int) {
		var total float64
		var n int
	metrics:
		for _, m := range fams[name].GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue metrics
				}
			}
			n++
			switch {
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				total += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
		return total, n
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64 // -1: any value, as long as the series exists
	}{
		{"go_goroutines", nil, -1},
		{"gocurator_client_state", map[string]string{"state": "connected"}, 1},
		{"gocurator_sessions_total", map[string]string{"event": "opened"}, 1},
		{"gocurator_acquires_total", map[string]string{"recipe": "mutex"}, workers * jobs},
		{"gocurator_acquire_wait_seconds", map[string]string{"recipe": "mutex"}, workers * jobs},
		{"gocurator_waiters", map[string]string{"recipe": "mutex"}, 0},
		{"gocurator_holds", map[string]string{"recipe": "mutex"}, 0},
		{"gocurator_requests_total", map[string]string{"op": "create", "outcome": "ok"}, -1},
		{"gocurator_leader", map[string]string{"recipe": "leader-latch"}, 1},
	}
	for _, tt := range tests {
		got, n := sum(tt.name, tt.labels)
		switch {
		case n == 0:
			t.Errorf("no series %s %v", tt.name, tt.labels)
		case tt.want >= 0 && got != tt.want:
			t.Errorf("%s %v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}

	cancel()
	if err := <-ran; !errors.Is(err, context.Canceled) {
		t.Errorf("run returned %v after its context was canceled", err)
	}
}

func TestBadSettings(t *testing.T) {
	good := config{servers: "127.0.0.1:1", addr: "127.0.0.1:0", root: "/x", workers: 1, locks: 1, hold: time.Second, wait: time.Second}
	tests := []struct {
		name    string
		change  func(*config)
		mention string
	}{
		{"no servers", func(c *config) { c.servers = "" }, "-zk"},
		{"relative root", func(c *config) { c.root = "x" }, `"x"`},
		{"root is /", func(c *config) { c.root = "/" }, `"/"`},
		{"no workers", func(c *config) { c.workers = 0 }, "-workers 0"},
		{"no locks", func(c *config) { c.locks = -1 }, "-locks -1"},
		{"no hold", func(c *config) { c.hold = 0 }, "-hold 0s"},
		{"no wait", func(c *config) { c.wait = -time.Second }, "-wait -1s"},
		{"negative jobs", func(c *config) { c.jobs = -2 }, "-jobs -2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			err := run(context.Background(), cfg, nil, nil)
			if !errors.Is(err, errBadFlag) || !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("run = %v, want an error wrapping errBadFlag naming %s", err, tt.mention)
			}
		})
	}
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}
