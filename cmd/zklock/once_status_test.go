//go:build unix

package main

import (
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestLeaderOnceWaitWithinMinHold checks that under "leader --once --min-hold 4s --wait 3s" (the
// same cron line on two hosts) a host that asks for leadership within --min-hold of the leader
// taking it does not run the command: the leader keeps leadership until --min-hold + --wait (7 s)
// after taking it, and the second host, asking 2.5 s in, gives up at 5.5 s and exits 0.
func TestLeaderOnceWaitWithinMinHold(t *testing.T) {
	dir := t.TempDir()
	path := testPath(t, "leader")
	line := func() []string {
		return args("leader", testServer.ConnectString(), "--once", "--min-hold", "4s", "--wait", "3s",
			path, "--", "sh", "-c", "echo $$ >> ran")
	}
	first := start(t, dir, line()...)
	waitFile(t, dir, "ran") // the first host leads and has run the command
	// The second host's cron fires 2.5 s after the first's: the skew under test, not a wait for
	// an event.
	time.Sleep(2500 * time.Millisecond)
	second := start(t, dir, line()...)
	for i, p := range []*proc{first, second} {
		if code := p.wait(t, 20*time.Second); code != 0 {
			t.Errorf("process %d: exit %d, stderr %q", i, code, p.stderr.String())
		}
	}
	if ran := lines(readFile(t, filepath.Join(dir, "ran"))); len(ran) != 1 {
		t.Errorf("the command ran %d times in one tick, want 1 (the second host asked within --min-hold)", len(ran))
	}
}

// acceptingServer returns the address of a listener that accepts connections and never answers (a
// hung ZooKeeper server), and a channel closed when it has accepted its first connection.
func acceptingServer(t testing.TB) (string, <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted, done := make(chan struct{}), make(chan struct{})
	var (
		once  sync.Once
		conns []net.Conn
	)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			once.Do(func() { close(accepted) })
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String(), accepted
}

// TestStatusInterruptedExitCode checks that status, like run, exits with 128+signal (130 for
// SIGINT) when a signal interrupts it while it connects.
func TestStatusInterruptedExitCode(t *testing.T) {
	for _, sub := range [][]string{
		{"run", "/a", "--", "true"},
		{"status", "/a"},
	} {
		t.Run(sub[0], func(t *testing.T) {
			server, accepted := acceptingServer(t)
			p := start(t, t.TempDir(), append([]string{sub[0], "--servers", server, "--connect-timeout", "20s"}, sub[1:]...)...)
			select {
			case <-accepted: // zklock is connecting, its signal handling set up
			case <-p.done:
				t.Fatalf("%s exited with %d before connecting; stderr %q", sub[0], p.code, p.stderr.String())
			case <-time.After(10 * time.Second):
				t.Fatal("zklock did not connect to the server")
			}
			if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 10*time.Second); code != 130 {
				t.Errorf("%s interrupted by SIGINT while connecting: exit %d, want 130; stderr %q", sub[0], code, strings.TrimSpace(p.stderr.String()))
			}
		})
	}
}

// TestFlagEnvAndDashDash checks command lines read GNU-style: "status -- PATH" takes PATH after
// "--" as the path; an environment default that cannot be read (ZK_SESSION_TIMEOUT, ZK_TLS) is a
// usage error only when its flag is not given, and never for --help. The servers do not answer
// (127.0.0.1:1), so a command line that is accepted ends with 69, one refused with 64.
func TestFlagEnvAndDashDash(t *testing.T) {
	status := []string{"status", "--servers", "127.0.0.1:1", "--connect-timeout", "300ms"}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want int
	}{
		{"status -- PATH", nil, append(status, "--", "/a"), exitUnavailable},
		{"status PATH -- PATH", nil, append(status, "/a", "--", "/b"), exitUsage},
		{"--session-timeout overrides a bad ZK_SESSION_TIMEOUT", []string{"ZK_SESSION_TIMEOUT=15"}, append(status, "--session-timeout", "15s", "/a"), exitUnavailable},
		{"a bad ZK_SESSION_TIMEOUT without --session-timeout", []string{"ZK_SESSION_TIMEOUT=15"}, append(status, "/a"), exitUsage},
		{"--tls=false overrides a bad ZK_TLS", []string{"ZK_TLS=maybe"}, append(status, "--tls=false", "/a"), exitUnavailable},
		{"--help with a bad ZK_SESSION_TIMEOUT", []string{"ZK_SESSION_TIMEOUT=15"}, []string{"run", "--help"}, exitOK},
		{"--help with a bad ZK_TLS", []string{"ZK_TLS=maybe"}, []string{"leader", "--help"}, exitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startEnv(t, t.TempDir(), tc.env, tc.args...)
			if code := p.wait(t, 20*time.Second); code != tc.want {
				t.Errorf("exit %d, want %d: %q", code, tc.want, strings.TrimSpace(p.stderr.String()))
			}
		})
	}
}
