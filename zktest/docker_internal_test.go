//go:build zktest_docker

package zktest

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestDockerImage checks which image the Docker backend runs: WithImage's, else ZKTEST_IMAGE's,
// else DefaultImage.
func TestDockerImage(t *testing.T) {
	tests := []struct {
		name   string
		env    string // ZKTEST_IMAGE
		option string // WithImage's argument, if not ""
		want   string
	}{
		{name: "default", want: DefaultImage},
		{name: "environment", env: "local/zk:1", want: "local/zk:1"},
		{name: "option wins", env: "local/zk:1", option: "zookeeper:3.8", want: "zookeeper:3.8"},
		{name: "blank option keeps the environment's", env: "local/zk:1", option: "  ", want: "local/zk:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ZKTEST_IMAGE", tc.env)
			var cfg config
			if tc.option != "" {
				WithImage(tc.option)(&cfg)
			}
			if got := dockerImage(cfg); got != tc.want {
				t.Errorf("dockerImage = %q; want %q", got, tc.want)
			}
		})
	}
}

// TestDockerSweepStaleContainers checks that the sweep removes the labelled containers of a
// process of this host and PID namespace that is gone, and keeps those of a live process, of
// another host, of another (or no recorded) PID namespace, and containers without zktest's label.
func TestDockerSweepStaleContainers(t *testing.T) {
	if err := dockerAvailable(); err != nil {
		t.Fatalf("the Docker backend's tests need a Docker daemon: %v", err)
	}
	img := dockerImage(config{})
	// The id of a process that has exited and been reaped.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := strconv.Itoa(gone.Process.Pid)
	host, _ := os.Hostname()
	livePID := strconv.Itoa(os.Getpid())

	ns := dockerLabelPIDNS + "=" + pidNamespace()
	tests := []struct {
		name   string
		labels []string
		swept  bool
	}{
		{"process gone", []string{dockerLabel + "=1", dockerLabelPID + "=" + deadPID, dockerLabelHost + "=" + host, ns}, true},
		{"process alive", []string{dockerLabel + "=1", dockerLabelPID + "=" + livePID, dockerLabelHost + "=" + host, ns}, false},
		{"other host", []string{dockerLabel + "=1", dockerLabelPID + "=" + deadPID, dockerLabelHost + "=elsewhere", ns}, false},
		// A process of another PID namespace (a test in a container of its own) may be alive
		// though its id is not one here.
		{"other PID namespace", []string{dockerLabel + "=1", dockerLabelPID + "=" + deadPID, dockerLabelHost + "=" + host, dockerLabelPIDNS + "=pid:[1]"}, false},
		{"no PID namespace", []string{dockerLabel + "=1", dockerLabelPID + "=" + deadPID, dockerLabelHost + "=" + host}, false},
		{"not zktest's", []string{"other.label=1", dockerLabelPID + "=" + deadPID, dockerLabelHost + "=" + host, ns}, false},
	}
	names := make([]string, len(tests))
	for i, tc := range tests {
		name := "zktest-sweep-test-" + livePID + "-" + strconv.Itoa(i)
		args := []string{"create", "--name", name, "--network", "host"}
		for _, l := range tc.labels {
			args = append(args, "--label", l)
		}
		if _, err := docker(dockerTimeout, append(args, img)...); err != nil {
			t.Fatal(err)
		}
		names[i] = name
		t.Cleanup(func() { docker(dockerTimeout, "rm", "-f", "-v", name) })
	}

	removed, err := sweepStaleContainers()
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		_, ierr := docker(dockerTimeout, "inspect", names[i])
		exists := ierr == nil
		if exists == tc.swept || slices.Contains(removed, names[i]) != tc.swept {
			t.Errorf("%s: container exists=%v, reported removed=%v; want swept=%v (removed: %s)",
				tc.name, exists, slices.Contains(removed, names[i]), tc.swept, strings.Join(removed, " "))
		}
	}
}
