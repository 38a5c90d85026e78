//go:build unix

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/internal/testkit/zkenv"
	"github.com/gocurator/curator/zktest"
)

var (
	// testServer is the ZooKeeper server that every test shares, each under paths of its own.
	testServer *zktest.Server
	// binary is zklock, built once for the tests as a static binary.
	binary string
)

func TestMain(m *testing.M) {
	zkenv.Main(m, buildBinary, zkenv.Server(&testServer))
}

// buildBinary is a zkenv.Step that builds zklock into binary, in a directory it removes after the
// tests.
func buildBinary() (func() error, error) {
	dir, err := os.MkdirTemp("", "zklock-test-")
	if err != nil {
		return nil, err
	}
	undo := func() error { return os.RemoveAll(dir) }
	binary = filepath.Join(dir, "zklock")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		undo()
		return nil, fmt.Errorf("building zklock: %v\n%s", err, out)
	}
	return undo, nil
}

// testPath returns a path of the test's own under the server's root (zkenv.Path).
func testPath(t testing.TB, name string) string {
	t.Helper()
	return zkenv.Path(t, testServer.Root()+"/zklock", name)
}

// newClient returns a connected client of the test server, closed at the test's end
// (testkit.Connect). opts come after the defaults.
func newClient(t testing.TB, opts ...framework.Option) *framework.Client {
	t.Helper()
	opts = append([]framework.Option{framework.WithSessionTimeout(1500 * time.Millisecond)}, opts...)
	return testkit.Connect(t, testServer.ConnectString(), opts...)
}

// testContext returns a context that ends with the test, or after d.
func testContext(t testing.TB, d time.Duration) context.Context {
	return zkenv.Context(t, d)
}

// eventually polls cond every 10ms until it is true, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	zkenv.Eventually(t, d, 10*time.Millisecond, what, cond)
}

// childNames lists the names under path (nil if it does not exist).
func childNames(t testing.TB, c *framework.Client, path string) []string {
	t.Helper()
	return testkit.Children(t, c, path)
}

// syncBuffer is a bytes.Buffer safe for a process's output and the test reading it at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// proc is a running zklock.
type proc struct {
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{}
	code   int
}

// zkFlags are the connection flags every test invocation gets.
func zkFlags(servers string) []string {
	return []string{"--servers", servers, "--session-timeout", "1500ms", "--connect-timeout", "10s"}
}

// start starts zklock with args in dir, with none of the ZK_* variables of the test's environment
// (zktest's ZK_SERVERS, say). It is killed at the test's end if it still runs.
func start(t testing.TB, dir string, args ...string) *proc {
	t.Helper()
	return startEnv(t, dir, nil, args...)
}

// startEnv is start with env added to the environment.
func startEnv(t testing.TB, dir string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	p.cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ZK_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits up to d for zklock to exit, and returns its exit code.
func (p *proc) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		t.Fatalf("zklock %q still runs after %v\nstderr: %s", p.cmd.Args[1:], d, p.stderr.String())
		return -1
	}
}

// exited reports whether zklock has exited.
func (p *proc) exited() bool {
	return zkenv.IsClosed(p.done)
}

// zklock runs zklock with args in dir and returns its exit code, stdout and stderr.
func zklock(t testing.TB, dir string, args ...string) (int, string, string) {
	t.Helper()
	p := start(t, dir, args...)
	code := p.wait(t, 30*time.Second)
	return code, p.stdout.String(), p.stderr.String()
}

// readFile returns the contents of a file, "" if it does not exist.
func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func TestBinaryIsStatic(t *testing.T) {
	out, err := exec.Command("go", "version", "-m", binary).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "CGO_ENABLED=0") {
		t.Errorf("zklock was not built with CGO_ENABLED=0:\n%s", out)
	}
}
