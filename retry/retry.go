// Package retry holds the policies that decide whether a ZooKeeper operation that failed for a
// connection-level reason is tried again, and after how long. The policies follow Apache Curator's
// (ExponentialBackoffRetry, BoundedExponentialBackoffRetry, RetryNTimes, RetryOneTime,
// RetryUntilElapsed, RetryForever); Do runs an operation under one of them.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-zookeeper/zk"
)

// Policy decides whether an operation that failed with a retryable error is tried again, and after
// how long. retries counts the retries already made (0 before the first retry); elapsed is the time
// since the first try.
type Policy interface {
	Next(retries int, elapsed time.Duration) (sleep time.Duration, ok bool)
}

// maxExponentialRetries caps the retry count of the exponential policies so that the shift that
// computes the sleep cannot overflow (Curator caps it at 29 for the same reason).
const maxExponentialRetries = 29

type exponential struct {
	base       time.Duration
	maxSleep   time.Duration // 0 means no cap
	maxRetries int
}

// ExponentialBackoff retries up to maxRetries times (at most 29), sleeping baseSleep times a random
// whole number between 1 and 2^(retries+1)-1, so the expected sleep doubles with each retry, as
// Curator's ExponentialBackoffRetry does.
func ExponentialBackoff(baseSleep time.Duration, maxRetries int) Policy {
	return exponential{base: baseSleep, maxRetries: min(maxRetries, maxExponentialRetries)}
}

// BoundedExponentialBackoff is ExponentialBackoff with each sleep capped at maxSleep.
func BoundedExponentialBackoff(baseSleep, maxSleep time.Duration, maxRetries int) Policy {
	return exponential{base: baseSleep, maxSleep: maxSleep, maxRetries: min(maxRetries, maxExponentialRetries)}
}

func (p exponential) Next(retries int, _ time.Duration) (time.Duration, bool) {
	if retries < 0 || retries >= p.maxRetries {
		return 0, false
	}
	factor := max(1, rand.Int64N(int64(1)<<(retries+1)))
	sleep := p.base * time.Duration(factor)
	if sleep/time.Duration(factor) != p.base { // overflow
		sleep = time.Duration(1<<63 - 1)
	}
	if p.maxSleep > 0 && sleep > p.maxSleep {
		sleep = p.maxSleep
	}
	return max(sleep, 0), true
}

type nTimes struct {
	n     int
	sleep time.Duration
}

// NTimes retries n times, sleeping the same time before each retry.
func NTimes(n int, sleep time.Duration) Policy { return nTimes{n: n, sleep: max(sleep, 0)} }

// OneTime retries once, after sleep.
func OneTime(sleep time.Duration) Policy { return NTimes(1, sleep) }

func (p nTimes) Next(retries int, _ time.Duration) (time.Duration, bool) {
	if retries < 0 || retries >= p.n {
		return 0, false
	}
	return p.sleep, true
}

type untilElapsed struct {
	maxElapsed, sleep time.Duration
}

// UntilElapsed retries, sleeping the same time before each retry, while less than maxElapsed has
// passed since the first try.
func UntilElapsed(maxElapsed, sleep time.Duration) Policy {
	return untilElapsed{maxElapsed: maxElapsed, sleep: max(sleep, 0)}
}

func (p untilElapsed) Next(_ int, elapsed time.Duration) (time.Duration, bool) {
	if elapsed >= p.maxElapsed {
		return 0, false
	}
	return p.sleep, true
}

type forever struct{ sleep time.Duration }

// Forever retries without limit, sleeping the same time before each retry. Only a context ends it.
func Forever(sleep time.Duration) Policy { return forever{sleep: max(sleep, 0)} }

func (p forever) Next(int, time.Duration) (time.Duration, bool) { return p.sleep, true }

// ErrRetriesExhausted is wrapped, together with the operation's last error, into the error that Do
// returns when the policy allows no further retry.
var ErrRetriesExhausted = errors.New("retry: retries exhausted")

// Do runs op, and again after the policy's sleep while op's error is retryable and the policy allows,
// until ctx is done. It returns op's last error (wrapped), or ctx's error.
//
// An error that is not retryable (see IsRetryable) is returned as it is, at once. When the policy
// gives up, the error wraps both ErrRetriesExhausted and op's last error. When ctx ends first, the
// error wraps ctx's error and, if op failed before, op's last error too.
func Do(ctx context.Context, p Policy, op func() error) error {
	return DoUntil(ctx, nil, p, op)
}

// ErrStopped is wrapped, together with the operation's last error, into the error that DoUntil
// returns when its stop channel closed first.
var ErrStopped = errors.New("retry: stopped")

// DoUntil is Do that also stops, at once and the sleep between two tries included, when stop (if
// not nil) is closed: a client's Close, say. Its error then wraps ErrStopped and op's last error,
// and not ctx's error, since ctx did not end.
func DoUntil(ctx context.Context, stop <-chan struct{}, p Policy, op func() error) error {
	if p == nil {
		p = NTimes(0, 0)
	}
	start := time.Now()
	// The first try is made here, outside backoff's loop: most operations succeed (or fail for
	// good) at once, and this way they pay for none of the loop's allocations and stack.
	var first error // the first try's retryable error, for the loop to start from
	if ctx.Err() == nil {
		err := op()
		if err == nil {
			return nil
		}
		if !IsRetryable(err) {
			return err
		}
		first = err
	}
	return doLoop(ctx, stop, p, op, start, first)
}

// doLoop is DoUntil after its first try (made at start; first is its retryable error, or nil if
// ctx had ended before it). It is a function of its own so that the first try, the one nearly
// every operation ends with, runs in DoUntil's small frame.
//
//go:noinline
func doLoop(ctx context.Context, stop <-chan struct{}, p Policy, op func() error, start time.Time, first error) error {
	if stopped(stop) {
		return stoppedError(first)
	}
	// Only an operation that failed once pays for watching stop: a context that it cancels.
	lctx := ctx
	if stop != nil {
		var cancel context.CancelFunc
		lctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-stop:
				cancel()
			case <-lctx.Done():
			}
		}()
	}
	b := &policyBackOff{policy: p, start: start}
	var (
		last      error // op's last retryable error
		permanent bool  // the loop ended with an error that is returned as it is
	)
	err := backoff.Retry(func() error {
		if first != nil {
			// The loop's own first try is the one made above.
			last, first = first, nil
			return last
		}
		if lctx.Err() != nil {
			permanent = true
			if stopped(stop) && ctx.Err() == nil {
				return backoff.Permanent(stoppedError(last))
			}
			return backoff.Permanent(ctxError(ctx, last))
		}
		err := op()
		if err == nil {
			return nil
		}
		if !IsRetryable(err) {
			permanent = true
			return backoff.Permanent(err)
		}
		last = err
		return err
	}, backoff.WithContext(b, lctx))
	// Errors are told apart by these flags, not by ==, which panics on uncomparable error values.
	switch {
	case err == nil:
		return nil
	case permanent:
		return err
	case b.exhausted && lctx.Err() == nil:
		return fmt.Errorf("%w after %d retries: %w", ErrRetriesExhausted, b.retries, last)
	case ctx.Err() == nil && stopped(stop):
		return stoppedError(last)
	default: // the context ended while sleeping, or as the policy was asked
		return ctxError(ctx, last)
	}
}

// stopped reports whether stop is closed.
func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// stoppedError is DoUntil's error when stop closed, after last (if not nil) failed.
func stoppedError(last error) error {
	if last == nil {
		return ErrStopped
	}
	return fmt.Errorf("%w (last error: %w)", ErrStopped, last)
}

func ctxError(ctx context.Context, last error) error {
	cause := ctx.Err()
	if c := context.Cause(ctx); c != nil && !errors.Is(c, cause) {
		// A cause of the caller's own: wrap it, and ctx.Err() too, so that both match.
		cause = fmt.Errorf("%w: %w", cause, c)
	}
	if last == nil {
		return cause
	}
	return fmt.Errorf("%w (last error: %w)", cause, last)
}

// policyBackOff adapts a Policy to backoff.BackOff so that backoff's loop does the sleeping.
type policyBackOff struct {
	policy    Policy
	start     time.Time
	retries   int
	exhausted bool
}

func (b *policyBackOff) NextBackOff() time.Duration {
	sleep, ok := b.policy.Next(b.retries, time.Since(b.start))
	if !ok {
		b.exhausted = true
		return backoff.Stop
	}
	b.retries++
	return sleep
}

// Reset is called by backoff's loop as it starts; the elapsed time still counts from Do's first
// try.
func (b *policyBackOff) Reset() { b.retries, b.exhausted = 0, false }

// IsRetryable reports whether err is a ZooKeeper connection-level error worth retrying
// (connection loss, operation timeout, session moved), not a logical one (no node, node exists,
// bad version, session expired, no auth).
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	for _, r := range retryable {
		if errors.Is(err, r) {
			return true
		}
	}
	return isOperationTimeout(err)
}

var retryable = []error{
	zk.ErrConnectionClosed, // connection loss: the request may or may not have been applied
	zk.ErrNoServer,         // one pass over all servers failed
	zk.ErrSessionMoved,
}

// isOperationTimeout matches the server's OPERATIONTIMEOUT (-7), for which go-zookeeper has no
// exported error value: it reports the code in a plain error's text.
func isOperationTimeout(err error) bool {
	return strings.Contains(err.Error(), "unknown error: -7")
}
