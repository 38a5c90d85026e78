//go:build unix

package main

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
)

// TestLeaderOnceSkew starts three "leader --once" processes on one election, as three hosts' crons
// firing up to 2 s apart would: with --min-hold longer than that skew the command runs exactly once,
// and the leader keeps leadership for the minimum hold though its command is quick; with
// --min-hold 0 each process finds the election free after the one before it has left, and runs
// the command again.
func TestLeaderOnceSkew(t *testing.T) {
	for _, tc := range []struct {
		minHold string
		runs    int
	}{
		{"4s", 1},
		{"0", 3},
	} {
		t.Run("min-hold="+tc.minHold, func(t *testing.T) {
			dir := t.TempDir()
			path := testPath(t, "leader")
			var ps []*proc
			begin := time.Now()
			for _, skew := range []time.Duration{0, time.Second, 2 * time.Second} {
				time.Sleep(time.Until(begin.Add(skew))) // this host's cron fires
				ps = append(ps, start(t, dir, args("leader", testServer.ConnectString(),
					"--once", "--min-hold", tc.minHold, path, "--", "sh", "-c", "echo $$ >> ran")...))
			}
			for i, p := range ps {
				if code := p.wait(t, 20*time.Second); code != 0 || p.stderr.String() != "" {
					t.Errorf("process %d: exit %d, stderr %q", i, code, p.stderr.String())
				}
			}
			if ran := lines(readFile(t, filepath.Join(dir, "ran"))); len(ran) != tc.runs {
				t.Errorf("the command ran %d times, want %d", len(ran), tc.runs)
			}
		})
	}
}

// TestLeaderOnceMinHoldFlags checks the command lines of --min-hold that are refused.
func TestLeaderOnceMinHoldFlags(t *testing.T) {
	checkUsageErrors(t, t.TempDir(), []usageCase{
		{"without --once", onA("leader", "--min-hold", "5s"), "--min-hold goes with --once"},
		{"negative", onA("leader", "--once", "--min-hold", "-1s"), "--min-hold -1s is negative"},
		{"a wait as long as the hold", onA("leader", "--once", "--min-hold", "5s", "--wait", "5s"), "must be shorter than --min-hold"},
		{"waiting forever", onA("leader", "--once", "--wait", "forever"), "must be shorter than --min-hold 10s"},
	})
}

// onA is the command line of the subcommand sub with flags on the path /a and the command true.
func onA(sub string, flags ...string) []string {
	return append(append([]string{sub}, flags...), "/a", "--", "true")
}

// usageCase is a command line that zklock must refuse as a usage error, and a part of what it
// must say on stderr.
type usageCase struct {
	name string
	args []string
	want string
}

// checkUsageErrors runs zklock in dir with each case's command line, as a subtest of its name:
// each must exit exitUsage with the case's want in its stderr.
func checkUsageErrors(t *testing.T, dir string, cases []usageCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := zklock(t, dir, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
}

// silentServer returns the address of a listener that accepts connections and never answers, as a
// hung ZooKeeper server does (acceptingServer, whose channel it leaves unread).
func silentServer(t testing.TB) string {
	t.Helper()
	addr, _ := acceptingServer(t)
	return addr
}

// TestUnavailable checks that every way of not reaching the ensemble exits 69 within
// --connect-timeout (2 s here, kept to 2.3 s), naming the cause: a name that does not resolve, a
// port that refuses connections, and a server that accepts connections and never answers.
func TestUnavailable(t *testing.T) {
	const timeout, limit = 2 * time.Second, 2300 * time.Millisecond
	silent := silentServer(t)
	for _, tc := range []struct {
		name, servers string
		sub           []string
		want          string
	}{
		{"unresolvable name, run", "zklock-no-such-host.invalid:2181", []string{"run", "/a", "--", "touch", "ran"}, "no such host"},
		{"unresolvable name, leader --once", "zklock-no-such-host.invalid:2181", []string{"leader", "--once", "/a", "--", "touch", "ran"}, "no such host"},
		{"unresolvable name, status", "zklock-no-such-host.invalid:2181/app", []string{"status", "/a"}, "no such host"},
		{"refused, run", "127.0.0.1:1", []string{"run", "/a", "--", "touch", "ran"}, "connection refused"},
		{"silent server, run", silent, []string{"run", "/a", "--", "touch", "ran"}, "within 2s"},
		{"silent server, leader", silent, []string{"leader", "/a", "--", "touch", "ran"}, "within 2s"},
		{"silent server, status", silent, []string{"status", "/a"}, "within 2s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a := append([]string{tc.sub[0], "--servers", tc.servers, "--connect-timeout", timeout.String()}, tc.sub[1:]...)
			begin := time.Now()
			code, _, stderr := zklock(t, dir, a...)
			took := time.Since(begin)
			if code != exitUnavailable || !strings.Contains(stderr, "no ZooKeeper server reachable") || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d, naming %q", code, stderr, exitUnavailable, tc.want)
			}
			if took > limit {
				t.Errorf("--connect-timeout %v: zklock took %v, more than %v", timeout, took.Round(time.Millisecond), limit)
			}
			if fileExists(filepath.Join(dir, "ran")) {
				t.Error("the command ran")
			}
		})
	}
}

// TestUnreachable checks which errors count as not reaching the ensemble (exit 69) and which do not.
func TestUnreachable(t *testing.T) {
	dnsErr := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "zk1", IsNotFound: true}}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"no server", fmt.Errorf("create: %w (no server reachable: %w)", zk.ErrNoServer, dnsErr), true},
		{"a lookup failure", fmt.Errorf("dial: %w", dnsErr), true},
		{"connection closed", fmt.Errorf("get: %w", zk.ErrConnectionClosed), true},
		{"suspended", fmt.Errorf("lock: %w", framework.ErrSuspended), true},
		{"session lost", fmt.Errorf("lock: %w", framework.ErrSessionLost), true},
		{"no auth", fmt.Errorf("create: %w", zk.ErrNoAuth), false},
		{"other", errors.New("boom"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := unreachable(tc.err); got != tc.want {
				t.Errorf("unreachable(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if !tc.want {
				return
			}
			if code, _ := acquireFailure(tc.err, "lock /a"); code != exitUnavailable {
				t.Errorf("acquireFailure(%v) exits %d, want %d", tc.err, code, exitUnavailable)
			}
		})
	}
}

// flagToken matches a flag as a message spells it: one or two dashes, then a name.
var flagToken = regexp.MustCompile(`(?:^|[\s"'(])(--?[a-z][a-z0-9-]*)`)

// TestFlagErrorsMatchHelp checks that the error of a bad flag names the flag as --help does: every
// flag an error names is spelled as in the help (--wait, not -wait), an unknown flag is named
// --name whatever the dashes it was given with, and the exit code is 64.
func TestFlagErrorsMatchHelp(t *testing.T) {
	dir := t.TempDir()
	code, help, _ := zklock(t, dir, "help")
	if code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"run", "--bogus", "/a", "--", "true"}, "unknown flag --bogus"},
		{"unknown flag with one dash", []string{"run", "-bogus", "/a", "--", "true"}, "unknown flag --bogus"},
		{"unknown flag with a value", []string{"status", "--bogus=1", "/a"}, "unknown flag --bogus"},
		{"unknown one-letter flag", []string{"leader", "-x", "/a", "--", "true"}, "unknown flag -x"},
		{"bad duration", []string{"run", "--wait", "soon", "/a", "--", "true"}, `--wait "soon": not a duration`},
		{"bad duration with one dash", []string{"run", "-grace=5", "/a", "--", "true"}, `--grace "5": not a duration`},
		{"missing value", []string{"run", "/a", "--wait", "--", "true"}, "flag --wait needs a value"},
		{"bad number", []string{"status", "--semaphore", "x", "/a"}, `--semaphore "x": not a whole number`},
		{"bad boolean", []string{"leader", "--once=maybe", "/a", "--", "true"}, `--once "maybe": neither true nor false`},
		{"flag of another subcommand", []string{"leader", "--read", "/a", "--", "true"}, "unknown flag --read"},
		{"three dashes", []string{"run", "---wait=0", "/a", "--", "true"}, `"---wait=0" is not a flag (did you mean --wait=0?)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := zklock(t, dir, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, exitUsage, tc.want)
			}
			for _, m := range flagToken.FindAllStringSubmatch(stderr, -1) {
				flag := m[1]
				if flag == "--bogus" || flag == "-x" || flag == "--" {
					continue
				}
				if !regexp.MustCompile(`(^|[\s,(])` + regexp.QuoteMeta(flag) + `\b`).MatchString(help) {
					t.Errorf("stderr %q names %s, which the help does not spell so", stderr, flag)
				}
			}
		})
	}
}

// TestMessages checks the wording of the messages of a wait that did not end in a hold.
func TestMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"interrupted", signalError{syscall.SIGINT}, "interrupted by SIGINT while waiting for the lock /a"},
		{"not in time", fmt.Errorf("acquire: %w", errNotInTime), "did not get the lock /a within --wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, msg := acquireFailure(tc.err, "lock /a"); msg != tc.want {
				t.Errorf("message %q, want %q", msg, tc.want)
			}
		})
	}
}
