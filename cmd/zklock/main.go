// Command zklock runs a command under a ZooKeeper lock or leader election, for cron jobs and shell
// scripts, on the same znodes as Apache Curator's recipes (so Java services using Curator on the
// same path take part in the same lock).
//
//	zklock run    [flags] PATH -- COMMAND [ARGS...]   run COMMAND while holding the lock PATH
//	zklock leader [flags] PATH -- COMMAND [ARGS...]   run COMMAND while leading the election PATH
//	zklock status [flags] PATH                        show the holders and waiters of PATH
//
// Run "zklock help" for the flags, the environment and the exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/gocurator/curator/framework"
)

// Exit codes, after sysexits.h where one fits.
const (
	exitOK          = 0
	exitFailure     = 1   // ZooKeeper refused an operation, or another failure
	exitUsage       = 64  // EX_USAGE: bad flags or arguments
	exitUnavailable = 69  // EX_UNAVAILABLE: no ZooKeeper server could be reached
	exitLockLost    = 70  // the lock or leadership was lost while the command ran
	exitTempFail    = 75  // EX_TEMPFAIL: the lock was not had in time
	exitCannotExec  = 126 // the command could not be started
	exitNotFound    = 127 // the command was not found
)

// Defaults of the flags shared by every subcommand.
const (
	defaultServers        = "127.0.0.1:2181"
	defaultSessionTimeout = 15 * time.Second
	defaultConnectTimeout = 15 * time.Second
	defaultGrace          = 10 * time.Second
)

const usageText = `zklock runs a command under a ZooKeeper lock or leader election, on the same
znodes as Apache Curator's recipes: Java services using Curator on the same path
take part in the same lock.

Usage:
  zklock run    [flags] PATH -- COMMAND [ARGS...]
  zklock leader [flags] PATH -- COMMAND [ARGS...]
  zklock status [flags] [--] PATH
  zklock help

run     Takes the lock PATH (a mutex, unless --read, --write or --semaphore N),
        runs COMMAND, and releases the lock when COMMAND exits.
leader  Joins the leader election PATH and runs COMMAND only while leading.
status  Shows the holders and waiters of PATH: their node names, ids, sessions
        and ages.

While COMMAND runs, zklock passes on the signals it gets (INT, TERM, HUP, QUIT,
USR1, USR2; in an interactive terminal the keyboard's signals reach COMMAND
directly). If the lock or leadership is lost meanwhile (the connection to
ZooKeeper was suspended or the session expired, see --error-policy), zklock
sends COMMAND SIGTERM, then SIGKILL after --grace, and exits with 70. COMMAND
runs in a process group of its own when zklock is not in a terminal's
foreground, so the signals reach the processes it starts too.

COMMAND's environment has:
  ZKLOCK_PATH     the lock or election path
  ZKLOCK_TOKEN    the fencing token: a number above the token of every hold of
                  PATH that ended before this one was granted. For a mutex, the
                  write lock or leadership it strictly increases from one holder
                  to the next: hand it to what you write to, and have it reject
                  older tokens. Readers (--read) and semaphore leases
                  (--semaphore N > 1) overlap legitimately: see README.md
  ZKLOCK_SESSION  the ZooKeeper session id holding the lock, in hex (0x...)

Flags of every subcommand (environment variable in brackets):
  --servers HOST:PORT,...   ZooKeeper servers, with an optional /chroot suffix
                            [ZK_SERVERS] (default ` + defaultServers + `)
  --session-timeout D       ZooKeeper session timeout [ZK_SESSION_TIMEOUT]
                            (default 15s): how long after zklock dies or is cut
                            off from ZooKeeper others may take the lock
  --connect-timeout D       how long to try to reach a server before giving up (from zklock's start)
                            with exit code 69 (default 15s)
  --namespace NS            put every path under /NS [ZK_NAMESPACE]
  --auth-file FILE          authenticate with the credentials in FILE, one line
                            SCHEME:CREDENTIALS, e.g. digest:user:password
                            [ZK_AUTH_FILE]; or put that line in ZK_AUTH.
                            Never on the command line, where ps shows it
  --acl open|creator|creator-read   the ACL of the nodes zklock makes [ZK_ACL]:
                            open to all (default), only the credentials'
                            owner, or that owner and anyone reading
  --tls                     connect over TLS, trusting the system's CAs [ZK_TLS]
  --tls-ca FILE             connect over TLS, trusting the CA certificates in
                            the PEM FILE [ZK_TLS_CA]
  --tls-cert FILE, --tls-key FILE   the client certificate and key (PEM) for
                            mutual TLS [ZK_TLS_CERT, ZK_TLS_KEY]
  --id ID                   the participant id written to the lock node
                            (default HOSTNAME:PID)
  -v                        log ZooKeeper activity (and the session id) to stderr
  -h, --help                print this help

Flags of run:
  --wait D          give up after waiting D for the lock (exit code 75);
                    0 takes the lock only if it is free now (default: wait
                    for as long as it takes)
  --read            take the read lock of a read-write lock (Curator's
                    InterProcessReadWriteLock): many readers, or one writer
  --write           take the write lock of a read-write lock
  --semaphore N     take one of N leases of a semaphore (Curator's
                    InterProcessSemaphoreV2)
  --grace D         after the lock is lost, how long COMMAND has between
                    SIGTERM and SIGKILL (default 10s)
  --error-policy P  standard: the lock counts as lost as soon as the connection
                    is suspended (the default, as Curator's); session: only when
                    the session has expired

Flags of leader:
  --once            for cron: run COMMAND if this process leads within --wait,
                    else exit 0 quietly (--wait defaults to 0: run only if no
                    one leads or waits now); the leader keeps leadership until
                    --min-hold + --wait after taking it, so that once per tick
                    holds across hosts
  --min-hold D      with --once: after COMMAND exits, keep leadership until
                    D + --wait has passed since it was taken (default 10s; 0:
                    let go at once, whatever --wait). See "leader --once" below
  --wait D          give up after waiting D for leadership (exit code 75, or 0
                    with --once, where D must be shorter than --min-hold and
                    the same on every host); 0 leads only if the election is
                    free now (default: wait for as long as it takes, or 0 with
                    --once)
  --grace D, --error-policy P   as for run

leader --once, run from cron on several hosts at the same minute, with the
same --min-hold and --wait on every host:
  The leader keeps leadership until --min-hold + --wait after taking it, even
  when COMMAND exits sooner: a host that asks within --min-hold of the leader
  taking it waits at most --wait, and so gives up before the leader lets go.
  Guaranteed: COMMAND runs once per tick, on the first host to lead, and the
  others exit 0 without running it, when every host's zklock asks for
  leadership within --min-hold of the leader taking it (clock skew, cron's
  delay and connecting to ZooKeeper included), the ticks are more than
  --min-hold + --wait apart, and the leader lives and stays connected until
  --min-hold + --wait after taking leadership.
  Not guaranteed: a host that asks later than --min-hold after the leader took
  leadership (clock skew or a delay beyond --min-hold) may find the election
  free and run COMMAND a second time in that tick. If the leader loses
  leadership (its connection is suspended or its session expires) during the
  keep time after COMMAND exited, it stops keeping it then, and a host still
  waiting may lead and run COMMAND a second time. A leader that dies, or loses
  its connection, while COMMAND runs leaves the tick without a complete run:
  the others have exited, and none of them runs COMMAND in its place (its
  leadership lasts until its session expires, up to --session-timeout). A
  --min-hold + --wait longer than the interval between ticks makes the next
  tick find the election held, and skip.

Flags of status:
  --json            print JSON instead of a table (see below)
  --semaphore N     PATH is a semaphore of N leases: tell holders from waiters

` + statusJSONHelp + `
Durations are written as 1500ms, 30s, 5m, ...

Exit codes:
  0      success (run, leader: COMMAND exited with 0; leader --once: also when
         another process leads)
  N      run, leader: COMMAND's own exit code; 128+S if it was killed by signal S
  1      ZooKeeper refused an operation (no auth, say), or another failure
  64     usage: bad flags, arguments or path
  69     no ZooKeeper server could be reached within --connect-timeout
  70     the lock or leadership was lost while COMMAND ran (COMMAND was
         terminated)
  75     the lock (or leadership) was not had within --wait
  126    COMMAND could not be started
  127    COMMAND was not found
  130, 143, ...  zklock was interrupted by a signal (128+signal) while
         connecting, waiting for the lock, or (status) reading it

Examples:
  # A cron job that must never run twice at once across hosts; skip this run
  # if the previous one still holds the lock.
  zklock run --servers zk1:2181,zk2:2181 --wait 0 /locks/billing -- ./bill.sh

  # Wait up to five minutes for the lock, then run.
  zklock run --wait 5m /locks/reindex -- make reindex

  # At most three concurrent backups across the fleet.
  zklock run --semaphore 3 /semaphores/backup -- backup.sh /data

  # Every host runs this from cron at the same minute; one of them runs the
  # job (their clocks must agree within --min-hold, 10s by default).
  zklock leader --once /leaders/report -- ./report.sh
  zklock leader --once --min-hold 30s /leaders/report -- ./report.sh

  # A singleton daemon: run it on every host under a service manager that
  # restarts zklock; one host runs it at a time.
  zklock leader /leaders/scheduler -- ./scheduler

  # Who holds the lock?
  zklock status /locks/billing
  zklock status --json /locks/billing
`

// started is when zklock started: --connect-timeout counts from then.
var started = time.Now()

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs zklock with args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "leader":
		return cmdLeader(args[1:], stderr)
	case "status":
		return cmdStatus(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	return usageError(stderr, "", fmt.Errorf("unknown subcommand %q", args[0]))
}

// usageError reports a usage error and returns exitUsage.
func usageError(stderr io.Writer, sub string, err error) int {
	fmt.Fprintf(stderr, "zklock: %v\n", err)
	if sub != "" {
		fmt.Fprintf(stderr, "Run 'zklock %s --help' for usage.\n", sub)
	} else {
		fmt.Fprintln(stderr, "Run 'zklock help' for usage.")
	}
	return exitUsage
}

// common holds the flags of every subcommand.
type common struct {
	servers        string
	sessionTimeout time.Duration
	connectTimeout time.Duration
	namespace      string
	security
	id          string
	verbose     bool
	errorPolicy string
	envErrs     []envError // set by register, reported by check
}

// envError is an environment variable that could not be read as the default of flag.
type envError struct {
	flag string // the flag's name, without dashes
	err  error
}

// register defines the common flags on fs, with defaults from the environment. An environment
// variable that cannot be read is not an error here: check reports it, and only if its flag was
// not given (the flag overrides it), so that --help and a command line that sets the flag work.
func (co *common) register(fs *flag.FlagSet) {
	servers := envOr("ZK_SERVERS", defaultServers)
	timeout := defaultSessionTimeout
	if s := os.Getenv("ZK_SESSION_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			co.envErrs = append(co.envErrs, envError{"session-timeout", fmt.Errorf("ZK_SESSION_TIMEOUT=%q: %v", s, err)})
		} else {
			timeout = d
		}
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	fs.StringVar(&co.servers, "servers", servers, "")
	fs.DurationVar(&co.sessionTimeout, "session-timeout", timeout, "")
	fs.DurationVar(&co.connectTimeout, "connect-timeout", defaultConnectTimeout, "")
	fs.StringVar(&co.namespace, "namespace", os.Getenv("ZK_NAMESPACE"), "")
	fs.StringVar(&co.id, "id", host+":"+strconv.Itoa(os.Getpid()), "")
	fs.BoolVar(&co.verbose, "v", false, "")
	if err := co.security.register(fs); err != nil {
		co.envErrs = append(co.envErrs, envError{"tls", err})
	}
}

// registerPolicy defines --error-policy.
func (co *common) registerPolicy(fs *flag.FlagSet) {
	fs.StringVar(&co.errorPolicy, "error-policy", "standard", "")
}

// check validates the common flags of fs, parsed by parse: first the environment variables that
// register could not read, each only if its flag was not given on the command line.
func (co *common) check(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, e := range co.envErrs {
		if !given[e.flag] {
			return e.err
		}
	}
	switch {
	case strings.TrimSpace(co.servers) == "":
		return errors.New("no ZooKeeper servers: set --servers or ZK_SERVERS")
	case co.sessionTimeout <= 0:
		return fmt.Errorf("--session-timeout %v is not positive", co.sessionTimeout)
	case co.connectTimeout <= 0:
		return fmt.Errorf("--connect-timeout %v is not positive", co.connectTimeout)
	}
	switch co.errorPolicy {
	case "", "standard", "session":
	default:
		return fmt.Errorf("--error-policy %q is neither standard nor session", co.errorPolicy)
	}
	return co.security.check()
}

// clientOptions returns the options of the client that connect makes.
func (co *common) clientOptions(log *zap.Logger) []framework.Option {
	opts := []framework.Option{
		framework.WithSessionTimeout(co.sessionTimeout),
		framework.WithConnectionTimeout(co.connectTimeout),
		framework.WithLogger(log),
		framework.WithDefaultData([]byte(co.id)),
	}
	if co.namespace != "" {
		opts = append(opts, framework.WithNamespace(co.namespace))
	}
	if co.errorPolicy == "session" {
		opts = append(opts, framework.WithErrorPolicy(framework.SessionErrorPolicy))
	}
	return append(opts, co.security.options()...)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// newFlagSet returns a flag set for subcommand sub. parse, not the flag set, reads the command line
// and words the errors; the flag set only holds the flags and their values.
func newFlagSet(sub string) *flag.FlagSet {
	fs := flag.NewFlagSet("zklock "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// errUsage is matched (errors.Is) by every error parse returns for a bad flag.
var errUsage = errors.New("bad flag")

// flagError is an error of parse: its message, matching errUsage.
type flagError string

func (e flagError) Error() string        { return string(e) }
func (e flagError) Is(target error) bool { return target == errUsage }

func flagErrorf(format string, args ...any) error { return flagError(fmt.Sprintf(format, args...)) }

// flagName spells the flag name as the help does: "-v" for a one-letter name, "--name" for the
// others.
func flagName(name string) string {
	if len([]rune(name)) == 1 {
		return "-" + name
	}
	return "--" + name
}

// parse parses args GNU-style: flags (--name VALUE, --name=VALUE, --bool, and -v for the one-letter
// flag; a single dash before a long name is taken too) interspersed with positional arguments, up
// to the first "--"; what follows "--" is the command (found reports whether there was a "--").
// -h, -help and --help return flag.ErrHelp. Its errors name each flag as the help does (--wait,
// -v) and wrap errUsage.
func parse(fs *flag.FlagSet, args []string) (positional, command []string, found bool, err error) {
	before := args
	if i := slices.Index(args, "--"); i >= 0 {
		before, command, found = args[:i], args[i+1:], true
	}
	for i := 0; i < len(before); i++ {
		arg := before[i]
		if len(arg) < 2 || arg[0] != '-' {
			positional = append(positional, arg)
			continue
		}
		spec := strings.TrimPrefix(arg[1:], "-")
		name, value, hasValue := strings.Cut(spec, "=")
		if name == "" || name[0] == '-' {
			if bare := strings.TrimLeft(arg, "-"); bare != "" && bare[0] != '=' {
				n, v := bare, ""
				if i := strings.IndexByte(bare, '='); i >= 0 {
					n, v = bare[:i], bare[i:]
				}
				return nil, nil, false, flagErrorf("%q is not a flag (did you mean %s%s?)", arg, flagName(n), v)
			}
			return nil, nil, false, flagErrorf("%q is not a flag", arg)
		}
		if name == "h" || name == "help" {
			return nil, nil, false, flag.ErrHelp
		}
		f := fs.Lookup(name)
		if f == nil {
			return nil, nil, false, flagErrorf("unknown flag %s", flagName(name))
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() && !hasValue {
			value = "true"
		} else if !hasValue {
			if i+1 == len(before) {
				return nil, nil, false, flagErrorf("flag %s needs a value", flagName(name))
			}
			i++
			value = before[i]
		}
		if err := fs.Set(name, value); err != nil {
			if errors.Is(err, errAuthFlag) {
				// Not the value: it holds credentials.
				return nil, nil, false, flagErrorf("%s: %v", flagName(name), err)
			}
			return nil, nil, false, flagErrorf("%s %q: %s", flagName(name), value, setError(f, err))
		}
	}
	return positional, command, found, nil
}

// setError words the error of flag f's Set: the flag package's own values fail with a bare "parse
// error" or "value out of range", which setError replaces by what the value should be.
func setError(f *flag.Flag, err error) string {
	msg := err.Error()
	if strings.HasSuffix(msg, "value out of range") {
		return "out of range"
	}
	if !strings.HasSuffix(msg, "parse error") {
		return msg
	}
	g, _ := f.Value.(flag.Getter)
	if g == nil {
		return "not a valid value"
	}
	switch g.Get().(type) {
	case time.Duration:
		return "not a duration (such as 1500ms, 30s or 5m)"
	case int:
		return "not a whole number"
	case bool:
		return "neither true nor false"
	}
	return "not a valid value"
}

// waitFlag is a duration flag that also takes "forever", its default.
type waitFlag struct {
	d   time.Duration // < 0: forever
	set bool
}

func (w *waitFlag) String() string {
	if w == nil || w.d < 0 {
		return "forever"
	}
	return w.d.String()
}

func (w *waitFlag) Set(s string) error {
	w.set = true
	if s == "forever" || s == "inf" {
		w.d = -1
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New(`not a duration (such as 30s or 5m) or "forever"`)
	}
	if d < 0 {
		return errors.New("negative (0 takes the lock only if it is free now)")
	}
	w.d = d
	return nil
}

// newLogger returns the logger for -v (debug to stderr) or one that discards everything.
func newLogger(verbose bool, stderr io.Writer) *zap.Logger {
	if !verbose {
		return zap.NewNop()
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = "T"
	enc.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(stderr)), zapcore.DebugLevel)
	return zap.New(core).Named("zklock")
}

// connect makes a client from the common flags and waits until it is connected. On failure it
// returns the exit code to use: exitUsage for bad flags, exitUnavailable when no server answered.
// connectForJob is connect for the subcommands that run a job. When it fails, ok is false and code
// is the exit code to end with: the signal's if a signal interrupted the connect (nothing is
// printed then), else connect's, with the error printed on stderr.
func connectForJob(ctx context.Context, co *common, log *zap.Logger, stderr io.Writer) (c *framework.Client, code int, ok bool) {
	c, code, err := connect(ctx, co, log)
	if err == nil {
		return c, code, true
	}
	if code, ok := interruptedCode(context.Cause(ctx)); ok {
		return nil, code, false
	}
	fmt.Fprintf(stderr, "zklock: %v\n", err)
	return nil, code, false
}

func connect(ctx context.Context, co *common, log *zap.Logger) (*framework.Client, int, error) {
	c, err := framework.NewClient(co.servers, co.clientOptions(log)...)
	if err != nil {
		return nil, exitUsage, err
	}
	if err := c.Start(); err != nil {
		return nil, exitFailure, err
	}
	cctx, cancel := context.WithDeadline(ctx, started.Add(co.connectTimeout))
	defer cancel()
	if err := c.BlockUntilConnected(cctx); err != nil {
		c.Close()
		if ctx.Err() != nil {
			return nil, exitFailure, context.Cause(ctx)
		}
		return nil, exitUnavailable, fmt.Errorf("no ZooKeeper server reachable at %s within %v: %w", co.servers, co.connectTimeout, err)
	}
	log.Debug("connected to ZooKeeper", zap.String("servers", co.servers),
		zap.String("session", sessionHex(c.SessionID())), zap.Duration("session_timeout", c.SessionTimeout()))
	return c, exitOK, nil
}

// sessionHex formats a ZooKeeper session id as ZooKeeper's tools do: 0x and lowercase hex.
func sessionHex(id int64) string { return fmt.Sprintf("0x%x", uint64(id)) }

// checkPath validates a lock path given on the command line.
func checkPath(p string) error {
	if err := framework.ValidatePath(p); err != nil {
		return fmt.Errorf("bad path: %w", err)
	}
	if p == "/" {
		return fmt.Errorf("bad path: %q cannot be a lock path", p)
	}
	return nil
}
