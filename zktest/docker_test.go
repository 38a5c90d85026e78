//go:build zktest_docker

package zktest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/zktest"
)

// useDocker makes the test run its servers on the Docker backend, and fails it (never skips
// it) if Docker cannot be used here.
func useDocker(t *testing.T) {
	t.Helper()
	t.Setenv("ZKTEST_BACKEND", zktest.BackendDocker)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("the Docker backend's tests need the docker command: %v", err)
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		t.Fatalf("the Docker backend's tests need a Docker daemon (make test-docker starts one): %v\n%s", err, out)
	}
}

// containersOf lists the names of the containers, running or stopped, that zktest labelled as
// serving addr.
func containersOf(t *testing.T, addr string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-a", "--filter", "label=org.gocurator.zktest.addr="+addr,
		"--format", "{{.Names}}").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

// TestDockerServer checks a standalone server of the Docker backend: it runs in a labelled
// container configured through the image's environment (tick time, every four-letter word),
// keeps its znodes across Stop and Restart and across Kill and Restart, and its container is
// gone after Close.
func TestDockerServer(t *testing.T) {
	useDocker(t)
	s, err := zktest.StartServer(zktest.WithTickTime(300 * time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.External() {
		t.Fatal("a Docker server says it is external")
	}
	ctrs := containersOf(t, s.Addr())
	if len(ctrs) != 1 {
		t.Fatalf("containers serving %s: %v; want one", s.Addr(), ctrs)
	}
	conf, err := s.FourLetter("conf")
	if err != nil || !strings.Contains(conf, "tickTime=300") {
		t.Fatalf("conf = %q, %v; want tickTime=300", conf, err)
	}
	if dump, err := s.FourLetter("dump"); err != nil || strings.Contains(dump, "not executed") {
		t.Fatalf("dump = %q, %v; want it allowed", dump, err)
	}

	c := connect(t, s.Addr())
	acl := zk.WorldACL(zk.PermAll)
	if _, err := c.Create("/kept", []byte("v"), 0, acl); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		down func() error
	}{
		{"stop", s.Stop},
		{"kill", s.Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.down(); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if reply, err := s.FourLetter("ruok"); err == nil {
				t.Fatalf("after %s the server answers ruok: %q", tc.name, reply)
			}
			if err := s.Restart(); err != nil {
				t.Fatalf("Restart after %s: %v", tc.name, err)
			}
			d := connect(t, s.Addr())
			if data, _, err := d.Get("/kept"); err != nil || string(data) != "v" {
				t.Fatalf("after %s and Restart, Get(/kept) = %q, %v; want the znode kept", tc.name, data, err)
			}
		})
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := exec.Command("docker", "inspect", ctrs[0]).Run(); err == nil {
		t.Errorf("container %s still exists after Close", ctrs[0])
	}
}

// TestDockerEnsembleKillAndExpiry checks an ensemble of the Docker backend under faults: killing
// the leader's container makes another member lead, the killed member rejoins as a follower
// when restarted, and a session expired through an EnsembleProxy loses its ephemeral node.
func TestDockerEnsembleKillAndExpiry(t *testing.T) {
	useDocker(t)
	e := zktest.StartEnsemble(t, 3)
	for i := range e.Size() {
		if n := len(containersOf(t, e.Addr(i))); n != 1 {
			t.Fatalf("member %d (%s) runs in %d containers; want 1", i, e.Addr(i), n)
		}
	}
	leader, err := e.Leader()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Kill(leader); err != nil {
		t.Fatalf("Kill(%d): %v", leader, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	next, err := e.WaitReady(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if next == leader {
		t.Fatalf("member %d still leads after being killed", leader)
	}
	if err := e.Restart(leader); err != nil {
		t.Fatalf("Restart(%d): %v", leader, err)
	}
	if mode, err := e.Mode(leader); err != nil || mode != "follower" {
		t.Fatalf("restarted member %d: mode %q, %v; want follower", leader, mode, err)
	}

	ep := e.Proxy(t)
	c := connectServers(t, ep.Servers())
	direct := connectServers(t, e.Servers())
	sid := c.SessionID()
	if _, err := c.Create("/mine", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	mark := c.mark()
	if err := ep.ExpireSession(ctx, sid); err != nil {
		t.Fatalf("ExpireSession: %v", err)
	}
	if _, err := direct.Sync("/"); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := direct.Exists("/mine"); err != nil || ok {
		t.Errorf("Exists(/mine) after ExpireSession = %v, %v; want false", ok, err)
	}
	c.waitFor(mark, zk.StateExpired)
}

// TestDockerTLSUnsupported checks that the Docker backend refuses WithTLS with an error that
// matches errors.ErrUnsupported and names the backend to use instead.
func TestDockerTLSUnsupported(t *testing.T) {
	useDocker(t)
	s, err := zktest.StartServer(zktest.WithTLS(zktest.TLSOptions{}))
	if err == nil {
		s.Close()
		t.Fatal("StartServer(WithTLS) on the Docker backend succeeded")
	}
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "ZKTEST_BACKEND=java") {
		t.Errorf("StartServer(WithTLS) = %v; want errors.ErrUnsupported naming ZKTEST_BACKEND=java", err)
	}
	if _, err := zktest.StartEnsembleServer(3, zktest.WithTLS(zktest.TLSOptions{})); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("StartEnsembleServer(WithTLS) = %v; want errors.ErrUnsupported", err)
	}
}

// panicHelperEnv makes TestDockerPanicHelper start a server and panic.
const panicHelperEnv = "ZKTEST_DOCKER_PANIC_HELPER"

// TestDockerPanicHelper is run by TestDockerContainerRemovedAfterPanic in a child test binary;
// run directly, it does nothing.
func TestDockerPanicHelper(t *testing.T) {
	if os.Getenv(panicHelperEnv) != "1" {
		return
	}
	s := zktest.Start(t)
	fmt.Println("serving", s.Addr())
	panic("a test panics while its server runs")
}

// TestDockerContainerRemovedAfterPanic checks that a test that panics leaves no container
// behind: the child test binary starts a server, panics, and exits, and no container labelled
// with its process remains.
func TestDockerContainerRemovedAfterPanic(t *testing.T) {
	useDocker(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestDockerPanicHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), panicHelperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "serving 127.0.0.1:") || !strings.Contains(string(out), "a test panics") {
		t.Fatalf("the helper did not start a server and panic (%v):\n%s", err, out)
	}
	left, err := exec.Command("docker", "ps", "-a", "--filter",
		"label=org.gocurator.zktest.pid="+strconv.Itoa(cmd.Process.Pid), "--format", "{{.Names}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	if names := strings.Fields(string(left)); len(names) > 0 {
		t.Errorf("containers left by the panicking test: %v", names)
		exec.Command("docker", append([]string{"rm", "-f", "-v"}, names...)...).Run()
	}
}
