package zktest_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/gocurator/curator/zktest"
)

// helperEnv selects a helper main when the test binary runs as a child.
const helperEnv = "ZKTEST_HELPER"

// tickerMain prints 0, 1, 2... one a line, every 10ms, for a minute.
func tickerMain() {
	for i := range 6000 {
		fmt.Println(i)
		time.Sleep(10 * time.Millisecond)
	}
}

func startTicker(t *testing.T) *zktest.Process {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=ticker")
	return zktest.StartProcess(t, cmd)
}

// next receives the next line as a number, within d.
func next(t *testing.T, pr *zktest.Process, d time.Duration) (int, bool) {
	t.Helper()
	select {
	case line, ok := <-pr.Lines():
		if !ok {
			t.Fatal("Lines closed")
		}
		n, err := strconv.Atoi(line)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		return n, true
	case <-time.After(d):
		return 0, false
	}
}

func TestProcessPauseResume(t *testing.T) {
	t.Parallel()
	pr := startTicker(t)
	for want := range 5 {
		if n, ok := next(t, pr, 10*time.Second); !ok || n != want {
			t.Fatalf("line %d, %v; want %d", n, ok, want)
		}
	}
	if err := pr.Pause(); err != nil {
		t.Fatal(err)
	}
	// Lines written before the pause may still be on their way.
	last := 4
	for {
		n, ok := next(t, pr, 300*time.Millisecond)
		if !ok {
			break
		}
		if n != last+1 {
			t.Fatalf("line %d after %d", n, last)
		}
		last = n
		if last > 100 {
			t.Fatal("the process goes on printing while paused")
		}
	}
	if n, ok := next(t, pr, 500*time.Millisecond); ok {
		t.Fatalf("line %d while paused", n)
	}
	if err := pr.Resume(); err != nil {
		t.Fatal(err)
	}
	if n, ok := next(t, pr, 5*time.Second); !ok || n != last+1 {
		t.Fatalf("after Resume: line %d, %v; want %d", n, ok, last+1)
	}
	// A paused process is stopped too.
	if err := pr.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := pr.Stop(); err != nil {
		t.Errorf("Stop = %v", err)
	}
	for range pr.Lines() {
	}
	select {
	case <-pr.Exited():
	default:
		t.Error("Exited not closed after Stop")
	}
	if err := pr.Resume(); err == nil {
		t.Error("Resume after Stop succeeded; want an error")
	}
}

// TestProcessStoppedByCleanup leaves a process running, and paused, to the
// test's cleanup; goleak checks that nothing is left.
func TestProcessStoppedByCleanup(t *testing.T) {
	t.Parallel()
	var pr *zktest.Process
	t.Run("child", func(t *testing.T) {
		pr = startTicker(t)
		if _, ok := next(t, pr, 10*time.Second); !ok {
			t.Fatal("no line")
		}
		if err := pr.Pause(); err != nil {
			t.Fatal(err)
		}
	})
	select {
	case <-pr.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("the process outlived its test")
	}
}

// TestProcessStopKillsGrandchildren checks that Stop ends a child that started a process of its own
// holding its standard output (as "go run" does), at once.
func TestProcessStopKillsGrandchildren(t *testing.T) {
	pr := zktest.StartProcess(t, exec.Command("sh", "-c", "sleep 1000 & echo ready; wait"))
	select {
	case l := <-pr.Lines():
		if l != "ready" {
			t.Fatalf("first line %q, want ready", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no line from the child")
	}
	stopped := make(chan struct{})
	go func() {
		pr.Stop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(3 * time.Second):
		t.Fatal("Stop has not returned 3s after killing a child with a grandchild")
	}
}
