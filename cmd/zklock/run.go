package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// signalError is the cause of a wait cancelled by a signal to zklock.
type signalError struct{ sig os.Signal }

func (e signalError) Error() string { return "interrupted by " + signalName(e.sig) }

// signals relays the signals zklock gets: while it waits for a lock they cancel the wait; while the
// command runs they are passed on to it.
type signals struct {
	ch chan os.Signal
}

func notifySignals() *signals {
	s := &signals{ch: make(chan os.Signal, 8)}
	signal.Notify(s.ch, forwarded...)
	return s
}

func (s *signals) stop() { signal.Stop(s.ch) }

// cancelOnSignal returns a context that is cancelled, with a signalError cause, at the first
// signal, until stop is called. A signal that arrives after stop stays queued for the command.
func (s *signals) cancelOnSignal(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case sig := <-s.ch:
			cancel(signalError{sig})
		case <-quit:
		}
	}()
	return ctx, func() {
		close(quit)
		<-done
		cancel(nil)
	}
}

// interruptedCode returns the exit code for a wait that ended because of err: 128+signal if a
// signal interrupted it, else 0 and false.
func interruptedCode(err error) (int, bool) {
	var se signalError
	if errors.As(err, &se) {
		return signalExitCode(se.sig), true
	}
	return 0, false
}

// job is a command to run while a lock or leadership is held.
type job struct {
	argv  []string
	env   []string
	grace time.Duration
	sigs  *signals
	log   *zap.Logger
	what  string // "lock /path" or "leadership of /path", for messages
}

// supervise runs the job's command until it exits, and returns zklock's exit code: the command's,
// or exitLockLost if lost is closed first, in which case the command is sent SIGTERM, then
// SIGKILL after the grace period. why tells why lost was closed.
func (j *job) supervise(lost <-chan struct{}, why func() error, stderr io.Writer) int {
	cmd := exec.Command(j.argv[0], j.argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(commandEnv(os.Environ()), j.env...)
	tty := interactive()
	cmd.SysProcAttr = procAttr(tty)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "zklock: %v\n", err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return exitNotFound
		}
		return exitCannotExec
	}
	j.log.Debug("command started", zap.Int("pid", cmd.Process.Pid), zap.Strings("argv", j.argv), zap.Bool("own_process_group", !tty))
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var (
		lostAt time.Time
		kill   <-chan time.Time
	)
	signalIt := func(sig os.Signal) {
		if err := signalCommand(cmd.Process, !tty, sig); err != nil {
			j.log.Debug("could not signal the command", zap.Stringer("signal", sig), zap.Error(err))
		}
	}
	for {
		select {
		case <-exited:
			code := waitStatusCode(cmd.ProcessState)
			if lostAt.IsZero() {
				select {
				case <-lost:
					// Lost as the command exited: its work may have overlapped another holder's.
					fmt.Fprintf(stderr, "zklock: the %s was lost (%v) as the command exited with %d\n", j.what, why(), code)
					return exitLockLost
				default:
				}
				j.log.Debug("command exited", zap.Int("code", code))
				return code
			}
			fmt.Fprintf(stderr, "zklock: the command ended with %d, %v after the %s was lost\n", code, time.Since(lostAt).Round(time.Millisecond), j.what)
			return exitLockLost
		case <-lost:
			lost = nil
			lostAt = time.Now()
			fmt.Fprintf(stderr, "zklock: the %s was lost (%v): sending the command SIGTERM, then SIGKILL in %v\n", j.what, why(), j.grace)
			signalIt(sigTERM)
			kill = time.After(j.grace)
		case <-kill:
			kill = nil
			fmt.Fprintf(stderr, "zklock: the command did not end within %v: sending SIGKILL\n", j.grace)
			signalIt(sigKILL)
		case sig := <-j.sigs.ch:
			if tty && fromTerminal(sig) {
				continue // the terminal sent it to the command too
			}
			j.log.Debug("passing a signal on to the command", zap.Stringer("signal", sig))
			signalIt(sig)
		}
	}
}

// lockEnv is the command's environment entries for a hold.
func lockEnv(path string, token, session int64) []string {
	return []string{
		"ZKLOCK_PATH=" + path,
		"ZKLOCK_TOKEN=" + strconv.FormatInt(token, 10),
		"ZKLOCK_SESSION=" + sessionHex(session),
	}
}

// lockMode is which lock run takes.
type lockMode struct {
	read, write bool
	semaphore   int
}

// acquire takes the lock of mode on path: waiting up to wait (forever if wait < 0; only if it is
// free now if wait == 0).
func (m lockMode) acquire(ctx context.Context, c *framework.Client, path string, wait time.Duration) (*recipes.Lease, error) {
	if wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, wait, errNotInTime)
		defer cancel()
	}
	try := wait == 0
	if m.semaphore > 0 {
		s := recipes.NewSemaphore(c, path, m.semaphore)
		acquire := s.Acquire
		if try {
			acquire = s.TryAcquire
		}
		leases, err := acquire(ctx, 1)
		if err != nil {
			return nil, err
		}
		return leases[0], nil
	}
	mutex := recipes.NewInterProcessMutex(c, path)
	switch {
	case m.read:
		mutex = recipes.NewReadWriteLock(c, path).ReadLock()
	case m.write:
		mutex = recipes.NewReadWriteLock(c, path).WriteLock()
	}
	if try {
		return mutex.TryAcquire(ctx)
	}
	return mutex.Acquire(ctx)
}

// errNotInTime is the cause of a wait that ran out of --wait.
var errNotInTime = errors.New("not had in time")

// acquireFailure returns the exit code and message for a failed acquire.
func acquireFailure(err error, what string) (int, string) {
	if code, ok := interruptedCode(err); ok {
		return code, fmt.Sprintf("%v while waiting for the %s", err, what)
	}
	switch {
	case errors.Is(err, recipes.ErrLocked):
		return exitTempFail, fmt.Sprintf("the %s is held by another process", what)
	case errors.Is(err, errNotInTime), errors.Is(err, context.DeadlineExceeded):
		return exitTempFail, fmt.Sprintf("did not get the %s within --wait", what)
	case errors.Is(err, framework.ErrInvalidArgument):
		return exitUsage, err.Error()
	case unreachable(err):
		return exitUnavailable, fmt.Sprintf("could not take the %s: no ZooKeeper server reachable: %v", what, err)
	}
	return exitFailure, fmt.Sprintf("could not take the %s: %v", what, err)
}

// unreachable reports whether err says that no ZooKeeper server could be reached, or that the
// connection to the one reached was lost: a cause that exits with exitUnavailable (69), which a
// wrapper may retry, and not with exitFailure. A name that does not resolve is one such cause:
// the client resolves the servers' names at each dial, and its errors wrap the lookup's.
func unreachable(err error) bool {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case err == nil:
		return false
	case errors.Is(err, zk.ErrNoServer), errors.Is(err, zk.ErrConnectionClosed),
		errors.Is(err, framework.ErrSuspended), errors.Is(err, framework.ErrSessionLost),
		errors.As(err, &dnsErr), errors.As(err, &opErr):
		return true
	}
	return false
}

func cmdRun(args []string, stderr io.Writer) int {
	jf := newJobFlags("run")
	var mode lockMode
	jf.fs.BoolVar(&mode.read, "read", false, "")
	jf.fs.BoolVar(&mode.write, "write", false, "")
	jf.fs.IntVar(&mode.semaphore, "semaphore", 0, "")
	path, argv, code, done := jf.parse(args, func() error { return mode.check(jf.fs) }, stderr)
	if done {
		return code
	}
	return withJobClient(&jf.co, stderr, func(e jobEnv) int {
		j := &job{argv: argv, grace: jf.grace, sigs: e.sigs, log: e.log, what: mode.name() + " " + path}
		lease, err := mode.acquire(e.ctx, e.c, path, jf.wait.d)
		e.stopCancel()
		return j.runUnder(e.ctx, e.c, path, lease, err, 0, stderr)
	})
}

// jobEnv is what run and leader work with once their arguments are checked.
type jobEnv struct {
	log  *zap.Logger
	sigs *signals
	// ctx ends on the first signal, until stopCancel is called (once the wait for the lock is
	// over: later signals go to the command).
	ctx        context.Context
	stopCancel func()
	c          *framework.Client // connected
}

// withJobClient makes a jobEnv for co (a logger, the signals, a client connected within
// --connect-timeout), runs body with it, and tears it down. It returns body's exit code, or, if the
// client did not connect, connectForJob's (body does not run then).
func withJobClient(co *common, stderr io.Writer, body func(jobEnv) int) int {
	log := newLogger(co.verbose, stderr)
	defer log.Sync()
	sigs := notifySignals()
	defer sigs.stop()
	ctx, stop := sigs.cancelOnSignal(context.Background())
	var once sync.Once
	stopCancel := func() { once.Do(stop) }
	defer stopCancel()
	c, code, ok := connectForJob(ctx, co, log, stderr)
	if !ok {
		return code
	}
	defer c.Close()
	return body(jobEnv{log: log, sigs: sigs, ctx: ctx, stopCancel: stopCancel, c: c})
}

// jobFlags are the flags that run and leader share: the common ones, --wait and --grace.
type jobFlags struct {
	sub   string
	fs    *flag.FlagSet
	co    common
	wait  waitFlag
	grace time.Duration
}

// newJobFlags returns the shared flags of subcommand sub, registered on a new flag set, to which
// the subcommand adds its own.
func newJobFlags(sub string) *jobFlags {
	jf := &jobFlags{sub: sub, fs: newFlagSet(sub), wait: waitFlag{d: -1}}
	jf.co.register(jf.fs)
	jf.co.registerPolicy(jf.fs)
	jf.fs.Var(&jf.wait, "wait", "")
	jf.fs.DurationVar(&jf.grace, "grace", defaultGrace, "")
	return jf
}

// parse parses the arguments of run or leader: the flags, the lock path, and the command after
// --, and checks them, then check (the subcommand's own checks). It returns the path and the
// command, or done with zklock's exit code when there is nothing to run: --help (the usage is
// printed) or a usage error (the error is).
func (jf *jobFlags) parse(args []string, check func() error, stderr io.Writer) (path string, argv []string, code int, done bool) {
	pos, argv, dashes, err := parse(jf.fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(os.Stdout, usageText)
		return "", nil, exitOK, true
	}
	if err == nil {
		err = jf.co.check(jf.fs)
	}
	if err == nil {
		err = checkJob(pos, argv, dashes, jf.grace)
	}
	if err == nil {
		err = check()
	}
	if err != nil {
		return "", nil, usageError(stderr, jf.sub, err), true
	}
	return pos[0], argv, exitOK, false
}

// runUnder runs the job's command under lease (a lock, or leadership through a lock) on path, which
// an acquire that ctx ended (on a signal) returned with err, keeps the lease for the rest of keep
// after it began, and releases it. It returns zklock's exit code: the acquire's failure, a signal's
// that came as the lease was granted (the command does not run then), or the command's (see
// job.supervise).
func (j *job) runUnder(ctx context.Context, c *framework.Client, path string, lease *recipes.Lease, err error,
	keep time.Duration, stderr io.Writer) int {
	if err != nil {
		code, msg := acquireFailure(err, j.what)
		fmt.Fprintf(stderr, "zklock: %s\n", msg)
		return code
	}
	if code, ok := interruptedCode(context.Cause(ctx)); ok {
		// A signal came as the lease was granted: stop here.
		_ = lease.Release()
		fmt.Fprintf(stderr, "zklock: %v while waiting for the %s\n", context.Cause(ctx), j.what)
		return code
	}
	since, session := time.Now(), c.SessionID()
	j.log.Debug("holding the "+j.what, zap.String("node", lease.Node()),
		zap.Int64("token", lease.Token()), zap.String("session", sessionHex(session)))
	j.env = lockEnv(path, lease.Token(), session)
	code := j.supervise(lease.Done(), lease.Err, stderr)
	j.keepFor(since, keep, lease.Done())
	if err := lease.Release(); err != nil && !errors.Is(err, recipes.ErrLockLost) {
		fmt.Fprintf(stderr, "zklock: releasing the %s: %v\n", j.what, err)
	}
	return code
}

// checkJob validates the positional arguments of run and leader.
func checkJob(pos, argv []string, dashes bool, grace time.Duration) error {
	switch {
	case len(pos) == 0:
		return errors.New("missing the lock PATH")
	case len(pos) > 1:
		if !dashes {
			return fmt.Errorf("missing '--' between PATH and the command (got %q)", pos)
		}
		return fmt.Errorf("unexpected arguments before '--': %q", pos[1:])
	case !dashes || len(argv) == 0:
		return errors.New("missing the command after '--'")
	case grace < 0:
		return fmt.Errorf("--grace %v is negative", grace)
	}
	return checkPath(pos[0])
}

func (m lockMode) check(fs *flag.FlagSet) error {
	semaphore := false
	fs.Visit(func(f *flag.Flag) { semaphore = semaphore || f.Name == "semaphore" })
	n := 0
	for _, on := range []bool{m.read, m.write, semaphore} {
		if on {
			n++
		}
	}
	switch {
	case n > 1:
		return errors.New("--read, --write and --semaphore exclude each other")
	case semaphore && m.semaphore < 1:
		return fmt.Errorf("--semaphore %d: the number of leases must be 1 or more", m.semaphore)
	}
	return nil
}

func (m lockMode) name() string {
	switch {
	case m.read:
		return "read lock"
	case m.write:
		return "write lock"
	case m.semaphore > 0:
		return fmt.Sprintf("semaphore (%d leases)", m.semaphore)
	}
	return "lock"
}
