//go:build unix

package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gocurator/curator/framework"
)

// cmdLine is what checkArgs makes of a command line.
type cmdLine struct {
	sub  string
	help bool // the subcommand's --help (or "zklock help")
	co   common
	pos  []string
	argv []string
	// run and leader
	wait  waitFlag
	grace time.Duration
	mode  lockMode
	once  bool
	// leader
	minHold time.Duration
	// status
	semaphore int
}

// checkArgs reads args as run does, up to the point where zklock would connect: the subcommand,
// then that subcommand's flag set (as cmdRun, cmdLeader and cmdStatus define it), parse and the
// checks, all of zklock's own code but for the flag definitions. A nil error means run would go
// on to connect.
func checkArgs(args []string) (cl cmdLine, err error) {
	if len(args) == 0 {
		return cl, errors.New("no subcommand")
	}
	cl.sub = args[0]
	switch cl.sub {
	case "help", "-h", "-help", "--help":
		cl.help = true
		return cl, nil
	case "run", "leader", "status":
	default:
		return cl, fmt.Errorf("unknown subcommand %q", args[0])
	}
	fs := newFlagSet(cl.sub)
	cl.co.register(fs)
	switch cl.sub {
	case "run":
		cl.co.registerPolicy(fs)
		cl.wait = waitFlag{d: -1}
		fs.Var(&cl.wait, "wait", "")
		fs.BoolVar(&cl.mode.read, "read", false, "")
		fs.BoolVar(&cl.mode.write, "write", false, "")
		fs.IntVar(&cl.mode.semaphore, "semaphore", 0, "")
		fs.DurationVar(&cl.grace, "grace", defaultGrace, "")
	case "leader":
		cl.co.registerPolicy(fs)
		cl.wait = waitFlag{d: -1}
		fs.Var(&cl.wait, "wait", "")
		fs.BoolVar(&cl.once, "once", false, "")
		fs.DurationVar(&cl.minHold, "min-hold", defaultMinHold, "")
		fs.DurationVar(&cl.grace, "grace", defaultGrace, "")
	case "status":
		var asJSON bool
		fs.BoolVar(&asJSON, "json", false, "")
		fs.IntVar(&cl.semaphore, "semaphore", 0, "")
	}
	pos, argv, dashes, err := parse(fs, args[1:])
	cl.pos, cl.argv = pos, argv
	if errors.Is(err, flag.ErrHelp) {
		cl.help = true
		return cl, nil
	}
	if err == nil {
		err = cl.co.check(fs)
	}
	if err != nil {
		return cl, err
	}
	switch cl.sub {
	case "run":
		if err := checkJob(pos, argv, dashes, cl.grace); err != nil {
			return cl, err
		}
		return cl, cl.mode.check(fs)
	case "leader":
		if err := checkJob(pos, argv, dashes, cl.grace); err != nil {
			return cl, err
		}
		return cl, checkOnce(fs, cl.once, &cl.wait, cl.minHold)
	}
	pos = append(pos, argv...)
	cl.pos = pos
	switch {
	case len(pos) != 1:
		return cl, errors.New("status takes one PATH")
	case cl.semaphore < 0:
		return cl, fmt.Errorf("--semaphore %d is negative", cl.semaphore)
	}
	return cl, checkPath(pos[0])
}

// FuzzArgs checks zklock's command line: argv (its elements separated by NUL bytes, which a real
// argv cannot hold) and ZK_SESSION_TIMEOUT, the one environment variable that is parsed.
//   - No panic.
//   - A command line that checkArgs refuses makes run exit with 64 (usage) after "zklock: ",
//     checkArgs's error and a pointer to the help on stderr, and nothing else: it neither
//     connects nor runs anything.
//     The help exits with 0.
//   - A command line that checkArgs accepts names a valid lock path other than "/", positive
//     timeouts, a command for run and leader, and servers that NewClient accepts or refuses with
//     ErrInvalidArgument (which connect reports as a usage error). run is not called on it: it
//     would connect. (So that a checkArgs that fell out of step with zklock's flags cannot make
//     run connect anywhere or start anything, ZK_SERVERS points at a closed port, and the
//     command after "--" of run and leader is replaced by "true" whenever run is called; status
//     runs no command, and takes what follows "--" as its PATH.)
func FuzzArgs(f *testing.F) {
	for _, args := range []string{
		"", "help", "--help", "-h", "bogus", "run", "leader", "status",
		"run\x00/l\x00--\x00true", "run\x00--wait\x000\x00/l\x00--\x00sh\x00-c\x00exit 3",
		"run\x00/l", "run\x00/l\x00true", "run\x00/l\x00/m\x00--\x00x", "run\x00--\x00x", "run\x00/\x00--\x00x",
		"run\x00l\x00--\x00x", "run\x00/l/\x00--\x00x", "run\x00/l\x00--", "run\x00-h", "run\x00--help\x00/l",
		"run\x00--read\x00--write\x00/l\x00--\x00x", "run\x00--semaphore\x000\x00/l\x00--\x00x",
		"run\x00--semaphore\x00-1\x00/l\x00--\x00x", "run\x00--semaphore=99999999999999999999\x00/l\x00--\x00x",
		"run\x00--semaphore=3\x00--read\x00/l\x00--\x00x", "run\x00--read=maybe\x00/l\x00--\x00x",
		"run\x00--wait\x00forever\x00/l\x00--\x00x", "run\x00--wait\x00inf\x00/l\x00--\x00x", "run\x00--wait\x00-1s\x00/l\x00--\x00x",
		"run\x00--wait\x00soon\x00/l\x00--\x00x", "run\x00--wait\x00--\x00x", "run\x00--wait", "run\x00--grace\x00-1s\x00/l\x00--\x00x",
		"run\x00--grace\x009999999999h\x00/l\x00--\x00x", "run\x00--session-timeout\x000\x00/l\x00--\x00x",
		"run\x00--connect-timeout\x00-5s\x00/l\x00--\x00x", "run\x00--servers=\x00/l\x00--\x00x", "run\x00--servers\x00 \x00/l\x00--\x00x",
		"run\x00--servers\x00zk1:2181,zk2:99999/app\x00/l\x00--\x00x", "run\x00--servers\x00[::1]\x00/l\x00--\x00x",
		"run\x00--auth\x00digest\x00/l\x00--\x00x", "run\x00--auth\x00digest:u:p\x00/l\x00--\x00x",
		"run\x00--auth-file\x00/nonexistent\x00/l\x00--\x00x", "run\x00--acl\x00creator\x00/l\x00--\x00x",
		"run\x00--acl\x00everyone\x00/l\x00--\x00x", "run\x00--tls\x00/l\x00--\x00x", "run\x00--tls-cert\x00/x\x00/l\x00--\x00x",
		"run\x00--tls-ca\x00/nonexistent\x00/l\x00--\x00x",
		"run\x00--error-policy\x00session\x00/l\x00--\x00x", "run\x00--error-policy\x00strict\x00/l\x00--\x00x",
		"run\x00--namespace\x00/\x00/l\x00--\x00x", "run\x00--namespace\x00a/../b\x00/l\x00--\x00x",
		"run\x00-v\x00--id\x00\x00/l\x00--\x00x", "run\x00/l\x00-v\x00--\x00x", "run\x00/l\x00--\x00--\x00--",
		"run\x00---wait=0\x00/l\x00--\x00x", "run\x00-\x00--\x00x", "run\x00/a\x00b\x00/c\x00--\x00x",
		"run\x00/a\xffb\x00--\x00x", "run\x00/a\x01b\x00--\x00x", "run\x00/😀\x00--\x00x", "run\x00/a/../b\x00--\x00x",
		"leader\x00/l\x00--\x00x", "leader\x00--once\x00/l\x00--\x00x", "leader\x00--once=false\x00--wait\x005s\x00/l\x00--\x00x",
		"leader\x00--read\x00/l\x00--\x00x", "leader\x00--once\x00--min-hold\x002s\x00--wait\x002s\x00/l\x00--\x00x",
		"leader\x00--min-hold\x002s\x00/l\x00--\x00x", "leader\x00--once\x00--min-hold=-1s\x00/l\x00--\x00x", "leader\x00/l", "leader\x00--help",
		"status\x00/l", "status\x00--json\x00/l", "status\x00--semaphore\x003\x00/l", "status\x00--semaphore\x00-3\x00/l",
		"status\x00/l\x00/m", "status\x00/l\x00--", "status\x00/l\x00--\x00x", "status\x00--\x00", "status\x00--\x00/l", "status\x00--\x00l", "status\x00", "status\x00/", "status\x00--wait\x000\x00/l",
	} {
		f.Add(args, "")
	}
	for _, timeout := range []string{"5s", "0", "-1s", "soon", "1e9h", "9223372036s"} {
		f.Add("run\x00/l\x00--\x00x", timeout)
		f.Add("status\x00/l", timeout)
	}
	f.Fuzz(func(t *testing.T, joined, sessionTimeout string) {
		// Set for each input and restored after it, not for the whole target: zktest.StartServer
		// reads ZK_SERVERS too, in the TestMain of each fuzzing worker this process starts.
		t.Setenv("ZK_SERVERS", "127.0.0.1:1")
		t.Setenv("ZK_NAMESPACE", "")
		for _, v := range []string{"ZK_AUTH", "ZK_AUTH_FILE", "ZK_TLS", "ZK_TLS_CA", "ZK_TLS_CERT", "ZK_TLS_KEY", "ZK_ACL"} {
			t.Setenv(v, "")
		}
		if strings.ContainsRune(sessionTimeout, 0) {
			sessionTimeout = "" // an environment variable cannot hold a NUL
		}
		t.Setenv("ZK_SESSION_TIMEOUT", sessionTimeout)
		var args []string
		if joined != "" {
			args = strings.Split(joined, "\x00")
		}
		cl, err := checkArgs(args)
		if err == nil && !cl.help {
			checkAccepted(t, args, cl)
			return
		}

		safe := args
		if i := indexOf(args, "--"); cl.sub != "status" && i >= 0 && i+1 < len(args) {
			safe = append(append([]string{}, args[:i+1]...), "true")
		}
		var stdout, stderr bytes.Buffer
		code := runQuietly(safe, &stdout, &stderr)
		if cl.help {
			if code != exitOK || stderr.Len() > 0 {
				t.Fatalf("zklock %q (help) exited with %d, stderr %q; want 0 and nothing on stderr", safe, code, stderr.String())
			}
			return
		}
		if code != exitUsage {
			t.Fatalf("zklock %q exited with %d, want %d (usage); checkArgs said %v; stderr %q", safe, code, exitUsage, err, stderr.String())
		}
		if len(args) == 0 {
			if stderr.String() != usageText {
				t.Fatalf("zklock without arguments wrote %q, want the usage text", stderr.String())
			}
			return
		}
		// The message may span lines (argv can hold newlines), so compare the whole of stderr.
		pointer := "Run 'zklock " + cl.sub + " --help' for usage.\n"
		if cl.sub != "run" && cl.sub != "leader" && cl.sub != "status" {
			pointer = "Run 'zklock help' for usage.\n"
		}
		if want := "zklock: " + err.Error() + "\n" + pointer; stderr.String() != want {
			t.Fatalf("zklock %q wrote %q on stderr, want %q", safe, stderr.String(), want)
		}
		if stdout.Len() > 0 {
			t.Fatalf("zklock %q wrote %q on stdout for a usage error", safe, stdout.String())
		}
	})
}

// checkAccepted checks a command line checkArgs accepted.
func checkAccepted(t *testing.T, args []string, cl cmdLine) {
	t.Helper()
	if len(cl.pos) != 1 || framework.ValidatePath(cl.pos[0]) != nil || cl.pos[0] == "/" {
		t.Fatalf("zklock %q accepted with lock path(s) %q: want one valid path other than /", args, cl.pos)
	}
	if cl.co.sessionTimeout <= 0 || cl.co.connectTimeout <= 0 || strings.TrimSpace(cl.co.servers) == "" {
		t.Fatalf("zklock %q accepted with session timeout %v, connect timeout %v, servers %q", args, cl.co.sessionTimeout, cl.co.connectTimeout, cl.co.servers)
	}
	if cl.sub != "status" && (len(cl.argv) == 0 || cl.grace < 0) {
		t.Fatalf("zklock %q accepted with command %q and grace %v", args, cl.argv, cl.grace)
	}
	if cl.sub == "status" && cl.semaphore < 0 {
		t.Fatalf("zklock %q accepted with --semaphore %d", args, cl.semaphore)
	}
	if cl.sub == "run" && cl.mode.semaphore < 0 {
		t.Fatalf("zklock %q accepted with --semaphore %d", args, cl.mode.semaphore)
	}
	// connect's NewClient (with connect's options): a refusal must be a usage error.
	if _, err := framework.NewClient(cl.co.servers, cl.co.clientOptions(zap.NewNop())...); err != nil && !errors.Is(err, framework.ErrInvalidArgument) {
		t.Fatalf("zklock %q: NewClient refuses the flags with %v, which connect would not report as a usage error", args, err)
	}
}

// runQuietly calls run with os.Stdout sent to /dev/null: run's and leader's --help print there.
func runQuietly(args []string, stdout, stderr *bytes.Buffer) int {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err == nil {
		saved := os.Stdout
		os.Stdout = devNull
		defer func() {
			os.Stdout = saved
			devNull.Close()
		}()
	}
	return run(args, stdout, stderr)
}

func indexOf(s []string, v string) int {
	for i, e := range s {
		if e == v {
			return i
		}
	}
	return -1
}
