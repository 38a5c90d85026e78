package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/gocurator/curator/recipes"
)

func cmdLeader(args []string, stderr io.Writer) int {
	jf := newJobFlags("leader")
	fs, co, wait, grace := jf.fs, &jf.co, &jf.wait, &jf.grace
	var (
		once    bool
		minHold time.Duration
	)
	fs.BoolVar(&once, "once", false, "")
	fs.DurationVar(&minHold, "min-hold", defaultMinHold, "")
	path, argv, code, done := jf.parse(args, func() error { return checkOnce(fs, once, wait, minHold) }, stderr)
	if done {
		return code
	}
	// keep is how long after taking leadership the leader keeps it: under --once with a minimum
	// hold, --min-hold + --wait (see checkOnce).
	var keep time.Duration
	if once && minHold > 0 {
		keep = minHold + wait.d
	}
	what := "leadership of " + path
	return withJobClient(co, stderr, func(e jobEnv) int {
		log, sigs, ctx, stopCancel, c := e.log, e.sigs, e.ctx, e.stopCancel, e.c
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
			j := &job{argv: argv, grace: *grace, sigs: sigs, log: log, what: what}
			return j.runUnder(ctx, c, path, lease, err, keep, stderr)
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
			since := time.Now()
			token, _ := recipes.LeadershipToken(lctx)
			session := c.SessionID()
			log.Debug("leading", zap.String("path", path), zap.Int64("token", token),
				zap.String("session", sessionHex(session)))
			j := &job{argv: argv, env: lockEnv(path, token, session), grace: *grace, sigs: sigs, log: log, what: what}
			code := j.supervise(lctx.Done(), func() error { return context.Cause(lctx) }, stderr)
			j.keepFor(since, keep, lctx.Done())
			result <- code
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
				return notLeading("did not become the leader of " + path + " within --wait")
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
	})
}

// defaultMinHold is the default of leader --min-hold.
const defaultMinHold = 10 * time.Second

// checkOnce validates --once, --wait and --min-hold of leader, and gives --wait its default under
// --once: 0. --min-hold is for --once only. Under --once with a --min-hold above 0, the leader
// keeps leadership until --min-hold + --wait after taking it: every host runs the same cron line,
// so they share --wait, and a host that asks within --min-hold of the leader taking leadership
// gives up before the leader lets go. --wait must then be a duration shorter than --min-hold, so
// that the leader's hold (under twice --min-hold) stays short of the next tick.
func checkOnce(fs *flag.FlagSet, once bool, wait *waitFlag, minHold time.Duration) error {
	minHoldSet := false
	fs.Visit(func(f *flag.Flag) { minHoldSet = minHoldSet || f.Name == "min-hold" })
	switch {
	case minHold < 0:
		return fmt.Errorf("--min-hold %v is negative", minHold)
	case minHoldSet && !once:
		return errors.New("--min-hold goes with --once")
	case !once:
		return nil
	}
	if !wait.set {
		wait.d = 0
	}
	if minHold > 0 && (wait.d < 0 || wait.d >= minHold) {
		return fmt.Errorf("--wait %v with --once must be shorter than --min-hold %v: the leader keeps leadership until --min-hold + --wait after taking it, which must end before the next tick", wait, minHold)
	}
	return nil
}

// keepFor keeps leadership, after the command has exited, until d has passed since it was taken at
// since (leader --once: d is --min-hold + --wait): the other hosts, whose cron fires a little later
// and who wait up to --wait, then find the election held and skip this tick. It returns early if
// leadership is lost (there is nothing left to keep) or zklock gets a signal.
func (j *job) keepFor(since time.Time, d time.Duration, lost <-chan struct{}) {
	rest := d - time.Since(since)
	if rest <= 0 {
		return
	}
	j.log.Debug("keeping leadership for the rest of --min-hold + --wait", zap.Duration("rest", rest))
	t := time.NewTimer(rest)
	defer t.Stop()
	select {
	case <-t.C:
	case <-lost:
	case sig := <-j.sigs.ch:
		j.log.Debug("a signal ends the minimum hold", zap.Stringer("signal", sig))
	}
}
