package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gocurator/curator/recipes"
)

func cmdLeader(args []string, stderr io.Writer) int {
	const sub = "leader"
	fs := newFlagSet(sub)
	var co common
	if err := co.register(fs); err != nil {
		return usageError(stderr, sub, err)
	}
	co.registerPolicy(fs)
	var (
		wait  = waitFlag{d: -1}
		once  bool
		grace time.Duration
	)
	fs.Var(&wait, "wait", "")
	fs.BoolVar(&once, "once", false, "")
	fs.DurationVar(&grace, "grace", defaultGrace, "")
	pos, argv, dashes, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(os.Stdout, usageText)
		return exitOK
	}
	if err == nil {
		err = co.check()
	}
	if err == nil {
		err = checkJob(pos, argv, dashes, grace)
	}
	if err != nil {
		return usageError(stderr, sub, err)
	}
	if once && !wait.set {
		wait.d = 0
	}
	path := pos[0]
	what := "leadership of " + path
	log := newLogger(co.verbose, stderr)
	defer log.Sync()

	sigs := notifySignals()
	defer sigs.stop()
	ctx, stopCancel := sigs.cancelOnSignal(context.Background())
	c, code, ok := connectForJob(ctx, &co, log, stderr)
	if !ok {
		stopCancel()
		return code
	}
	defer c.Close()
	// notLeading is the exit code when leadership was not had in time.
	notLeading := func(msg string) int {
		if once {
			log.Debug("not the leader; exiting quietly", zap.String("path", path))
			return exitOK
		}
		fmt.Fprintf(stderr, "zklock: %s\n", msg)
		return exitTempFail
	}

	if wait.d == 0 {
		// Lead only if the election is free now: the election's nodes are a mutex's, so a
		// try-lock of that mutex is a try at leadership.
		lease, err := recipes.NewInterProcessMutex(c, path).TryAcquire(ctx)
		stopCancel()
		if errors.Is(err, recipes.ErrLocked) {
			return notLeading("another process leads " + path)
		}
		if err != nil {
			code, msg := acquireFailure(err, what)
			fmt.Fprintf(stderr, "zklock: %s\n", msg)
			return code
		}
		if code, ok := interruptedCode(context.Cause(ctx)); ok {
			// A signal came as leadership was granted: stop here.
			_ = lease.Release()
			fmt.Fprintf(stderr, "zklock: %v while waiting for the %s\n", context.Cause(ctx), what)
			return code
		}
		j := &job{argv: argv, env: lockEnv(path, lease.Token(), c.SessionID()), grace: grace, sigs: sigs, log: log, what: what}
		log.Debug("leading", zap.String("path", path), zap.Int64("token", lease.Token()),
			zap.String("session", sessionHex(c.SessionID())))
		code := j.supervise(lease.Done(), lease.Err, stderr)
		if err := lease.Release(); err != nil && !errors.Is(err, recipes.ErrLockLost) {
			fmt.Fprintf(stderr, "zklock: releasing the %s: %v\n", what, err)
		}
		return code
	}

	// The selector runs the command in its leadership function. Giving up (at --wait, or on a
	// signal) and starting to lead are decided under mu, so that a leadership that begins as
	// zklock gives up does not start the command.
	var (
		mu      sync.Mutex
		gaveUp  bool
		started = make(chan struct{})
		result  = make(chan int, 1)
	)
	sel := recipes.NewLeaderSelector(c, path, func(lctx context.Context) error {
		mu.Lock()
		if gaveUp {
			mu.Unlock()
			return nil
		}
		close(started)
		mu.Unlock()
		token, _ := recipes.LeadershipToken(lctx)
		session := c.SessionID()
		log.Debug("leading", zap.String("path", path), zap.Int64("token", token),
			zap.String("session", sessionHex(session)))
		j := &job{argv: argv, env: lockEnv(path, token, session), grace: grace, sigs: sigs, log: log, what: what}
		result <- j.supervise(lctx.Done(), func() error { return context.Cause(lctx) }, stderr)
		return nil
	}, recipes.WithSelectorID(co.id))
	if err := sel.Start(); err != nil {
		stopCancel()
		code, msg := acquireFailure(err, what)
		fmt.Fprintf(stderr, "zklock: %s\n", msg)
		return code
	}
	defer sel.Close()
	var timeout <-chan time.Time
	if wait.d > 0 {
		timeout = time.After(wait.d)
	}
	giveUp := func() bool {
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-started:
			return false // leading already: see the command through
		default:
			gaveUp = true
			return true
		}
	}
	select {
	case <-started:
	case <-timeout:
		if giveUp() {
			stopCancel()
			return notLeading("leadership of " + path + " was not had within --wait")
		}
	case <-ctx.Done():
		var se signalError
		errors.As(context.Cause(ctx), &se)
		if giveUp() {
			fmt.Fprintf(stderr, "zklock: %v while waiting for the %s\n", se, what)
			return signalExitCode(se.sig)
		}
		// Leadership came with the signal: the command has it to deal with.
		sigs.ch <- se.sig
	}
	stopCancel()
	return <-result
}
