//go:build unix

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// args builds a zklock command line: the subcommand, the connection flags, then the rest.
func args(sub, servers string, rest ...string) []string {
	return append(append([]string{sub}, zkFlags(servers)...), rest...)
}

// waitFile waits until the file name in dir exists and is not empty, and returns its contents.
func waitFile(t testing.TB, dir, name string) string {
	t.Helper()
	var s string
	eventually(t, 15*time.Second, "file "+name, func() bool {
		s = readFile(t, filepath.Join(dir, name))
		return strings.TrimSpace(s) != ""
	})
	return strings.TrimSpace(s)
}

func touch(t testing.TB, dir, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitForRelease is a shell script for a command that records its start, holds until the file
// "release" exists, then removes it and records its end.
const waitForRelease = `echo "start $ZKLOCK_TOKEN" >> log; touch running
while [ ! -f release ]; do sleep 0.02; done
rm -f release running; echo "end $ZKLOCK_TOKEN" >> log`

// TestRunExclusion runs four zklock processes at once on one lock: their commands never overlap
// (each writes its start and end to one file), and the tokens they are given increase.
func TestRunExclusion(t *testing.T) {
	dir := t.TempDir()
	path := testPath(t, "lock")
	script := `echo "start $ZKLOCK_TOKEN $(date +%s%N)" >> log; sleep 0.1; echo "end $ZKLOCK_TOKEN $(date +%s%N)" >> log`
	const n = 4
	var ps []*proc
	for range n {
		ps = append(ps, start(t, dir, args("run", testServer.ConnectString(), path, "--", "sh", "-c", script)...))
	}
	for i, p := range ps {
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("zklock %d exited with %d: %s", i, code, p.stderr.String())
		}
	}
	log := lines(readFile(t, filepath.Join(dir, "log")))
	if len(log) != 2*n {
		t.Fatalf("log has %d lines, want %d:\n%s", len(log), 2*n, strings.Join(log, "\n"))
	}
	var lastToken, lastEnd int64
	for i := 0; i < len(log); i += 2 {
		s, e := strings.Fields(log[i]), strings.Fields(log[i+1])
		if len(s) != 3 || len(e) != 3 || s[0] != "start" || e[0] != "end" || s[1] != e[1] {
			t.Fatalf("commands overlapped: lines %d and %d are %q and %q", i, i+1, log[i], log[i+1])
		}
		token, err := strconv.ParseInt(s[1], 10, 64)
		if err != nil || token <= lastToken {
			t.Errorf("token %q of run %d is not above the previous %d", s[1], i/2, lastToken)
		}
		lastToken = token
		started, _ := strconv.ParseInt(s[2], 10, 64)
		ended, _ := strconv.ParseInt(e[2], 10, 64)
		if started < lastEnd {
			t.Errorf("run %d started at %d, before the previous ended at %d", i/2, started, lastEnd)
		}
		lastEnd = ended
	}
	if names := childNames(t, newClient(t), path); len(names) != 0 {
		t.Errorf("nodes left: %v", names)
	}
}

// heldLock takes a new lock path with a new client and returns them with the lease, which the
// caller releases.
func heldLock(t *testing.T) (*framework.Client, string, *recipes.Lease) {
	t.Helper()
	path := testPath(t, "lock")
	c := newClient(t)
	held, err := recipes.NewInterProcessMutex(c, path).Acquire(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return c, path, held
}

// TestRunWait checks --wait: 0 gives up at once while the lock is held, a duration gives up after
// it, both with exit code 75 and without running the command or leaving a node.
func TestRunWait(t *testing.T) {
	dir := t.TempDir()
	c, path, held := heldLock(t)
	for _, wait := range []string{"0", "400ms"} {
		begin := time.Now()
		code, _, stderr := zklock(t, dir, args("run", testServer.ConnectString(), "--wait", wait, path, "--", "touch", "ran")...)
		if code != exitTempFail {
			t.Errorf("--wait %s while held: exit %d, want %d; stderr: %s", wait, code, exitTempFail, stderr)
		}
		if wait != "0" && time.Since(begin) < 400*time.Millisecond {
			t.Errorf("--wait %s gave up after %v", wait, time.Since(begin))
		}
		if !strings.Contains(stderr, "lock "+path) {
			t.Errorf("stderr %q does not name the lock", stderr)
		}
		if fileExists(filepath.Join(dir, "ran")) {
			t.Fatal("the command ran without the lock")
		}
		if names := childNames(t, c, path); len(names) != 1 {
			t.Errorf("nodes after giving up: %v, want the holder's only", names)
		}
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := zklock(t, dir, args("run", testServer.ConnectString(), "--wait", "0", path, "--", "touch", "ran")...); code != 0 {
		t.Fatalf("--wait 0 on a free lock: exit %d: %s", code, stderr)
	}
	if !fileExists(filepath.Join(dir, "ran")) {
		t.Error("the command did not run")
	}
}

func fileExists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "plain"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		argv []string
		want int
	}{
		{"success", []string{"true"}, 0},
		{"own exit code", []string{"sh", "-c", "exit 3"}, 3},
		{"exit code 75 of the command itself", []string{"sh", "-c", "exit 75"}, 75},
		{"killed by a signal", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
		{"not found", []string{"no-such-command-for-zklock"}, exitNotFound},
		{"not executable", []string{"./plain"}, exitCannotExec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := testPath(t, "lock")
			code, _, stderr := zklock(t, dir, args("run", testServer.ConnectString(), append([]string{path, "--"}, tc.argv...)...)...)
			if code != tc.want {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.want, stderr)
			}
		})
	}
}

// TestRunLockLost expires zklock's session under a running command: the command is sent SIGTERM
// (and SIGKILL after --grace if it ignores it), and zklock exits with 70.
func TestRunLockLost(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		killed bool
	}{
		{"terminated", `echo $$ > pid; echo $ZKLOCK_SESSION > session; exec sleep 60`, false},
		{"killed after the grace period", `trap "" TERM; echo $$ > pid; echo $ZKLOCK_SESSION > session; while :; do sleep 0.05; done`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := testPath(t, "lock")
			proxy := testServer.Proxy(t)
			p := start(t, dir, args("run", proxy.Addr(), "--grace", "1s", "-v", path, "--", "sh", "-c", tc.script)...)
			sid, err := strconv.ParseUint(strings.TrimPrefix(waitFile(t, dir, "session"), "0x"), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(waitFile(t, dir, "pid"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(p.stderr.String(), fmt.Sprintf("0x%x", sid)) {
				t.Errorf("-v does not print the session id 0x%x:\n%s", sid, p.stderr.String())
			}
			// Another process waits for the lock meanwhile; it gets it once the session is gone.
			next := start(t, dir, args("run", testServer.ConnectString(), path, "--", "touch", "next")...)
			if err := proxy.ExpireSession(testContext(t, 30*time.Second), testServer, int64(sid)); err != nil {
				t.Fatal(err)
			}
			if code := p.wait(t, 20*time.Second); code != exitLockLost {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitLockLost, p.stderr.String())
			}
			stderr := p.stderr.String()
			if !strings.Contains(stderr, "lost") {
				t.Errorf("stderr does not say the lock was lost: %s", stderr)
			}
			if got := strings.Contains(stderr, "sending SIGKILL"); got != tc.killed {
				t.Errorf("SIGKILL sent: %v, want %v; stderr: %s", got, tc.killed, stderr)
			}
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("the command (pid %d) still runs: %v", pid, err)
			}
			if code := next.wait(t, 20*time.Second); code != 0 || !fileExists(filepath.Join(dir, "next")) {
				t.Errorf("the next process: exit %d: %s", code, next.stderr.String())
			}
		})
	}
}

// TestRunSignals checks that a signal to zklock reaches the command (whose exit code zklock
// returns), and that a signal while zklock waits for the lock ends the wait without a trace.
func TestRunSignals(t *testing.T) {
	t.Run("passed on to the command", func(t *testing.T) {
		dir := t.TempDir()
		script := `trap 'echo TERM > got; exit 7' TERM; echo ready > ready; while :; do sleep 0.02; done`
		p := start(t, dir, args("run", testServer.ConnectString(), testPath(t, "lock"), "--", "sh", "-c", script)...)
		waitFile(t, dir, "ready")
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 10*time.Second); code != 7 {
			t.Errorf("exit %d, want the command's 7; stderr: %s", code, p.stderr.String())
		}
		if got := waitFile(t, dir, "got"); got != "TERM" {
			t.Errorf("the command got %q", got)
		}
	})
	t.Run("while waiting for the lock", func(t *testing.T) {
		dir := t.TempDir()
		c, path, held := heldLock(t)
		defer held.Release()
		p := start(t, dir, args("run", testServer.ConnectString(), path, "--", "touch", "ran")...)
		eventually(t, 10*time.Second, "zklock's waiting node", func() bool { return len(childNames(t, c, path)) == 2 })
		if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t, 10*time.Second); code != 128+int(syscall.SIGINT) {
			t.Errorf("exit %d, want %d; stderr: %s", code, 128+int(syscall.SIGINT), p.stderr.String())
		}
		if names := childNames(t, c, path); len(names) != 1 {
			t.Errorf("nodes after the interrupted wait: %v", names)
		}
		if fileExists(filepath.Join(dir, "ran")) {
			t.Error("the command ran")
		}
	})
}

// TestRunLockKinds checks --read, --write and --semaphore against locks held with the library:
// what excludes what, and the nodes zklock makes.
func TestRunLockKinds(t *testing.T) {
	c := newClient(t)
	for _, tc := range []struct {
		name string
		hold func(path string) (release func())
		flag []string
		want int
		node string // a part of the name of zklock's node, when it gets the lock
	}{
		{"read while read held", func(p string) func() { return holdLock(t, recipes.NewReadWriteLock(c, p).ReadLock()) }, []string{"--read"}, 0, "__READ__"},
		{"write while read held", func(p string) func() { return holdLock(t, recipes.NewReadWriteLock(c, p).ReadLock()) }, []string{"--write"}, exitTempFail, ""},
		{"read while write held", func(p string) func() { return holdLock(t, recipes.NewReadWriteLock(c, p).WriteLock()) }, []string{"--read"}, exitTempFail, ""},
		{"write, free", func(string) func() { return func() {} }, []string{"--write"}, 0, "__WRIT__"},
		{"semaphore with a lease free", func(p string) func() { return holdLeases(t, recipes.NewSemaphore(c, p, 2), 1) }, []string{"--semaphore", "2"}, 0, "leases/"},
		{"semaphore full", func(p string) func() { return holdLeases(t, recipes.NewSemaphore(c, p, 2), 2) }, []string{"--semaphore", "2"}, exitTempFail, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := testPath(t, "lock")
			release := tc.hold(path)
			defer release()
			rest := append(slices.Clone(tc.flag), "--wait", "0", path, "--", "sh", "-c", waitForRelease)
			p := start(t, dir, args("run", testServer.ConnectString(), rest...)...)
			if tc.want != 0 {
				if code := p.wait(t, 10*time.Second); code != tc.want {
					t.Errorf("exit %d, want %d; stderr: %s", code, tc.want, p.stderr.String())
				}
				return
			}
			eventually(t, 10*time.Second, "the command to run", func() bool {
				return fileExists(filepath.Join(dir, "running")) || p.exited()
			})
			nodes := allNodes(t, c, path)
			if !slices.ContainsFunc(nodes, func(n string) bool { return strings.Contains(n, tc.node) }) {
				t.Errorf("nodes %v: none is a %s node", nodes, tc.node)
			}
			touch(t, dir, "release")
			if code := p.wait(t, 10*time.Second); code != 0 {
				t.Errorf("exit %d; stderr: %s", code, p.stderr.String())
			}
		})
	}
}

// holdLock acquires l and returns its release.
func holdLock(t testing.TB, l recipes.Locker) func() {
	t.Helper()
	lease, err := l.Acquire(testContext(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return func() { lease.Release() }
}

// holdLeases acquires n leases of s and returns their release.
func holdLeases(t testing.TB, s *recipes.Semaphore, n int) func() {
	t.Helper()
	leases, err := s.Acquire(testContext(t, 10*time.Second), n)
	if err != nil {
		t.Fatal(err)
	}
	return func() {
		for _, l := range leases {
			l.Release()
		}
	}
}

// allNodes lists the nodes under path, one level of children deep, as paths relative to path.
func allNodes(t testing.TB, c *framework.Client, path string) []string {
	t.Helper()
	var out []string
	for _, n := range childNames(t, c, path) {
		out = append(out, n)
		for _, m := range childNames(t, c, framework.JoinPath(path, n)) {
			out = append(out, n+"/"+m)
		}
	}
	return out
}

// TestLeaderOnce has three processes ask for leadership at once, for cron: exactly one runs the
// command, and the others exit 0 quietly (at once, or after --wait).
func TestLeaderOnce(t *testing.T) {
	for _, wait := range []string{"", "500ms"} {
		t.Run("wait="+wait, func(t *testing.T) {
			dir := t.TempDir()
			path := testPath(t, "leader")
			flags := []string{"--once", "--min-hold", "1s"}
			if wait != "" {
				flags = append(flags, "--wait", wait)
			}
			script := `echo $$ >> ran; while [ ! -f release ]; do sleep 0.02; done`
			var ps []*proc
			for range 3 {
				ps = append(ps, start(t, dir, args("leader", testServer.ConnectString(), append(flags, path, "--", "sh", "-c", script)...)...))
			}
			var gaveUp []*proc
			eventually(t, 15*time.Second, "two processes to give up", func() bool {
				gaveUp = slices.DeleteFunc(slices.Clone(ps), func(p *proc) bool { return !p.exited() })
				return len(gaveUp) == 2
			})
			for _, p := range gaveUp {
				if p.code != 0 || p.stderr.String() != "" || p.stdout.String() != "" {
					t.Errorf("a process that did not lead: exit %d, stdout %q, stderr %q", p.code, p.stdout.String(), p.stderr.String())
				}
			}
			// The leader's command may not have started yet when the others have given up.
			eventually(t, 15*time.Second, "the leader's command to start", func() bool {
				return len(lines(readFile(t, filepath.Join(dir, "ran")))) > 0
			})
			if ran := lines(readFile(t, filepath.Join(dir, "ran"))); len(ran) != 1 {
				t.Fatalf("the command ran %d times, want once", len(ran))
			}
			touch(t, dir, "release")
			for _, p := range ps {
				if code := p.wait(t, 10*time.Second); code != 0 {
					t.Errorf("exit %d: %s", code, p.stderr.String())
				}
			}
			if ran := lines(readFile(t, filepath.Join(dir, "ran"))); len(ran) != 1 {
				t.Errorf("the command ran %d times, want once", len(ran))
			}
		})
	}
}

// TestLeaderInTurn checks zklock leader without --once: the second process waits while the first
// leads and runs its command when the first is done; --wait gives up with 75.
func TestLeaderInTurn(t *testing.T) {
	dir := t.TempDir()
	path := testPath(t, "leader")
	c := newClient(t)
	first := start(t, dir, args("leader", testServer.ConnectString(), "--id", "first", path, "--", "sh", "-c", waitForRelease)...)
	waitFile(t, dir, "log")
	second := start(t, dir, args("leader", testServer.ConnectString(), "--id", "second", path, "--", "sh", "-c", waitForRelease)...)
	eventually(t, 10*time.Second, "the second's node", func() bool { return len(childNames(t, c, path)) == 2 })
	code, _, stderr := zklock(t, dir, args("leader", testServer.ConnectString(), "--wait", "300ms", path, "--", "touch", "third")...)
	if code != exitTempFail || fileExists(filepath.Join(dir, "third")) {
		t.Errorf("--wait 300ms while another leads: exit %d, stderr %q", code, stderr)
	}
	touch(t, dir, "release")
	if code := first.wait(t, 10*time.Second); code != 0 {
		t.Errorf("first: exit %d: %s", code, first.stderr.String())
	}
	eventually(t, 10*time.Second, "the second to lead", func() bool { return len(lines(readFile(t, filepath.Join(dir, "log")))) == 3 })
	touch(t, dir, "release")
	if code := second.wait(t, 10*time.Second); code != 0 {
		t.Errorf("second: exit %d: %s", code, second.stderr.String())
	}
	log := lines(readFile(t, filepath.Join(dir, "log")))
	if len(log) != 4 || !strings.HasPrefix(log[0], "start") || !strings.HasPrefix(log[1], "end") || !strings.HasPrefix(log[2], "start") {
		t.Fatalf("log %q: the leaders' commands overlapped", log)
	}
	t1, _ := strconv.ParseInt(strings.Fields(log[0])[1], 10, 64)
	t2, _ := strconv.ParseInt(strings.Fields(log[2])[1], 10, 64)
	if t1 <= 0 || t2 <= t1 {
		t.Errorf("tokens %d then %d, want increasing", t1, t2)
	}
}

// TestLeaderLost expires the leader's session under its command: the command is terminated and
// zklock exits 70.
func TestLeaderLost(t *testing.T) {
	dir := t.TempDir()
	path := testPath(t, "leader")
	proxy := testServer.Proxy(t)
	script := `echo $$ > pid; echo $ZKLOCK_SESSION > session; exec sleep 60`
	p := start(t, dir, args("leader", proxy.Addr(), "--grace", "1s", path, "--", "sh", "-c", script)...)
	sid, err := strconv.ParseUint(strings.TrimPrefix(waitFile(t, dir, "session"), "0x"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(waitFile(t, dir, "pid"))
	if err := proxy.ExpireSession(testContext(t, 30*time.Second), testServer, int64(sid)); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 20*time.Second); code != exitLockLost {
		t.Errorf("exit %d, want %d; stderr: %s", code, exitLockLost, p.stderr.String())
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the command (pid %d) still runs: %v", pid, err)
	}
}

// TestStatus checks that status lists what ParticipantNodes lists, with roles, ids, sessions and
// ages, for each kind of lock.
func TestStatus(t *testing.T) {
	dir := t.TempDir()
	servers := testServer.ConnectString()
	t.Run("mutex", func(t *testing.T) {
		path := testPath(t, "lock")
		c := newClient(t, framework.WithDefaultData([]byte("holder-id")))
		m := recipes.NewInterProcessMutex(c, path)
		held, err := m.Acquire(testContext(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		waiter := start(t, dir, args("run", servers, "--id", "waiter-id", path, "--", "true")...)
		eventually(t, 10*time.Second, "the waiter's node", func() bool { return len(childNames(t, c, path)) == 2 })
		nodes, err := m.ParticipantNodes(testContext(t, 10*time.Second))
		if err != nil {
			t.Fatal(err)
		}

		code, out, stderr := zklock(t, dir, args("status", servers, "--json", path)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var r report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v in %s", err, out)
		}
		var got []string
		for _, p := range r.Participants {
			got = append(got, p.Node)
		}
		if !slices.Equal(got, nodes) {
			t.Errorf("status nodes %v, ParticipantNodes %v", got, nodes)
		}
		if r.Kind != "mutex" || r.Holders != 1 || r.Waiters != 1 || len(r.Participants) != 2 {
			t.Fatalf("report %+v", r)
		}
		h, w := r.Participants[0], r.Participants[1]
		if h.Role != "holder" || h.ID != "holder-id" || h.Session != sessionHex(c.SessionID()) || h.Node != held.Node() {
			t.Errorf("holder %+v", h)
		}
		if w.Role != "waiter" || w.ID != "waiter-id" || w.Session == h.Session {
			t.Errorf("waiter %+v", w)
		}
		for _, p := range r.Participants {
			if p.AgeSeconds < -1 || p.AgeSeconds > 60 || p.Created.IsZero() {
				t.Errorf("age %v, created %v", p.AgeSeconds, p.Created)
			}
		}

		code, out, _ = zklock(t, dir, args("status", servers, path)...)
		for _, want := range []string{path + ": mutex, 1 holder, 1 waiter", "ROLE", `"holder-id"`, `"waiter-id"`, h.Name, w.Name} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("status output lacks %q (exit %d):\n%s", want, code, out)
			}
		}
		if err := held.Release(); err != nil {
			t.Fatal(err)
		}
		if code := waiter.wait(t, 10*time.Second); code != 0 {
			t.Errorf("waiter: exit %d", code)
		}
	})
	t.Run("missing path", func(t *testing.T) {
		path := testPath(t, "none")
		code, out, _ := zklock(t, dir, args("status", servers, path)...)
		if code != 0 || !strings.Contains(out, "no holders or waiters") {
			t.Errorf("exit %d, output %q", code, out)
		}
	})
	t.Run("other kinds", func(t *testing.T) {
		c := newClient(t)
		ctx := testContext(t, 10*time.Second)
		rwPath, semPath, latchPath := testPath(t, "rw"), testPath(t, "sem"), testPath(t, "latch")
		defer holdLock(t, recipes.NewReadWriteLock(c, rwPath).WriteLock())()
		defer holdLeases(t, recipes.NewSemaphore(c, semPath, 2), 2)()
		latch := recipes.NewLeaderLatch(c, latchPath, recipes.WithParticipantID("latch-id"))
		if err := latch.Start(); err != nil {
			t.Fatal(err)
		}
		defer latch.Close()
		if err := latch.Await(ctx); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			path, flag string
			kind       string
			roles      []string
		}{
			{rwPath, "", "read-write lock", []string{"holder"}},
			{semPath, "--semaphore=2", "semaphore", []string{"holder", "holder"}},
			{semPath, "", "semaphore", []string{"holder", "holder"}},
			{latchPath, "", "leader latch", []string{"leader"}},
		} {
			a := []string{"--json", tc.path}
			if tc.flag != "" {
				a = append([]string{tc.flag}, a...)
			}
			code, out, stderr := zklock(t, dir, args("status", servers, a...)...)
			var r report
			if err := json.Unmarshal([]byte(out), &r); code != 0 || err != nil {
				t.Fatalf("status %s: exit %d, %v: %s", tc.path, code, err, stderr)
			}
			var roles []string
			for _, p := range r.Participants {
				roles = append(roles, p.Role)
			}
			if r.Kind != tc.kind || !slices.Equal(roles, tc.roles) {
				t.Errorf("status %s %s: kind %q roles %v, want %q %v", tc.flag, tc.path, r.Kind, roles, tc.kind, tc.roles)
			}
		}
	})
}

// TestUsage checks the exit codes and messages of bad command lines, of help, and of a server that
// cannot be reached; and that ZK_SERVERS works in place of --servers.
func TestUsage(t *testing.T) {
	dir := t.TempDir()
	checkUsageErrors(t, dir, []usageCase{
		{"no arguments", nil, "Usage:"},
		{"unknown subcommand", []string{"lock"}, `unknown subcommand "lock"`},
		{"no path", []string{"run"}, "missing the lock PATH"},
		{"no command", []string{"run", "/a"}, "missing the command"},
		{"no dashes", []string{"run", "/a", "true"}, "missing '--'"},
		{"relative path", []string{"run", "a", "--", "true"}, `path "a" is not absolute`},
		{"root path", []string{"status", "/"}, `"/" cannot be a lock path`},
		{"bad flag", onA("run", "--bogus"), "unknown flag --bogus"},
		{"bad wait", onA("run", "--wait", "soon"), `"soon"`},
		{"read and write", onA("run", "--read", "--write"), "exclude each other"},
		{"no leases", onA("run", "--semaphore", "0"), "--semaphore 0"},
		{"bad session timeout", onA("run", "--session-timeout", "-1s"), "--session-timeout"},
		{"bad error policy", onA("leader", "--error-policy", "lax"), `"lax"`},
		{"bad servers", onA("run", "--servers", "host:port:x"), "host:port:x"},
		{"empty servers", onA("run", "--servers", ""), "ZK_SERVERS"},
		{"credentials on the command line", onA("run", "--auth", "digest:u:p"), "--auth-file FILE or ZK_AUTH"},
		{"creator ACL without credentials", onA("run", "--acl", "creator"), "needs credentials"},
		{"bad ACL", onA("run", "--acl", "all"), `"all"`},
		{"certificate without key", onA("run", "--tls-cert", "c.pem"), "go together"},
		{"missing CA file", onA("run", "--tls-ca", "/nonexistent/ca.pem"), "--tls-ca"},
		{"credentials from a device", onA("run", "--auth-file", "/dev/zero"), "not a regular file"},
		{"CA from a directory", onA("run", "--tls-ca", "/"), "not a regular file"},
		{"status with a command", onA("status"), "one PATH"},
	})
	for _, a := range [][]string{{"help"}, {"--help"}, {"run", "--help"}, {"status", "-h"}} {
		code, out, _ := zklock(t, dir, a...)
		for _, want := range []string{"Exit codes:", "Examples:", "ZK_SERVERS", "--semaphore N"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("%q: exit %d, output lacks %q", a, code, want)
			}
		}
	}
	t.Run("no server", func(t *testing.T) {
		begin := time.Now()
		code, _, stderr := zklock(t, dir, "run", "--servers", "127.0.0.1:1", "--connect-timeout", "500ms", "/a", "--", "touch", "ran")
		if code != exitUnavailable || !strings.Contains(stderr, "no ZooKeeper server reachable at 127.0.0.1:1") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if fileExists(filepath.Join(dir, "ran")) || time.Since(begin) > 10*time.Second {
			t.Errorf("the command ran, or zklock took %v", time.Since(begin))
		}
	})
	t.Run("ZK_SERVERS", func(t *testing.T) {
		p := startEnv(t, dir, []string{"ZK_SERVERS=" + testServer.ConnectString()}, "status", "--json", testPath(t, "x"))
		if code := p.wait(t, 30*time.Second); code != 0 || !strings.Contains(p.stdout.String(), `"kind": "none"`) {
			t.Errorf("with ZK_SERVERS: exit %d, output %q, stderr %q", code, p.stdout.String(), p.stderr.String())
		}
	})
}

// TestRunErrorPolicy drops zklock's connection (its session survives) under a running command:
// under the standard policy the lock counts as lost (exit 70), under the session policy the
// command goes on.
func TestRunErrorPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy string
		want   int
	}{
		{"standard", exitLockLost},
		{"session", 0},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			dir := t.TempDir()
			proxy := testServer.Proxy(t)
			p := start(t, dir, args("run", proxy.Addr(), "--error-policy", tc.policy, "--grace", "1s", testPath(t, "lock"), "--", "sh", "-c", waitForRelease)...)
			waitFile(t, dir, "log")
			proxy.CloseConnections()
			if tc.want == exitLockLost {
				if code := p.wait(t, 15*time.Second); code != tc.want {
					t.Errorf("exit %d, want %d; stderr: %s", code, tc.want, p.stderr.String())
				}
				return
			}
			time.Sleep(time.Second) // the client reconnects meanwhile; the command must go on
			if p.exited() {
				t.Fatalf("zklock exited with %d after a connection drop: %s", p.code, p.stderr.String())
			}
			touch(t, dir, "release")
			if code := p.wait(t, 10*time.Second); code != 0 {
				t.Errorf("exit %d: %s", code, p.stderr.String())
			}
		})
	}
}

// TestLeaderInterruptedWhileWaiting checks that a signal ends a wait for leadership (through the
// selector, with --wait) with 128+signal, leaving no node.
func TestLeaderInterruptedWhileWaiting(t *testing.T) {
	dir := t.TempDir()
	path := testPath(t, "leader")
	c := newClient(t)
	held := holdLock(t, recipes.NewInterProcessMutex(c, path))
	defer held()
	p := start(t, dir, args("leader", testServer.ConnectString(), "--wait", "1m", path, "--", "touch", "ran")...)
	eventually(t, 10*time.Second, "zklock's node", func() bool { return len(childNames(t, c, path)) == 2 })
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d, want %d; stderr: %s", code, 128+int(syscall.SIGTERM), p.stderr.String())
	}
	if names := childNames(t, c, path); len(names) != 1 || fileExists(filepath.Join(dir, "ran")) {
		t.Errorf("nodes after the interrupted wait: %v (or the command ran)", names)
	}
}
