// Package gocron makes several github.com/go-co-op/gocron/v2 schedulers, in separate processes,
// run each job once per tick between them, with ZooKeeper: either only the leader of a
// recipes.LeaderLatch runs jobs (Elector, for gocron.WithDistributedElector), or each run takes a
// recipes.InterProcessMutex named after the job (Locker, for gocron.WithDistributedLocker or
// gocron.WithDistributedJobLocker).
//
// The Elector is the simpler and the safer of the two: one scheduler runs every job, and the others
// take over when it goes away. The Locker spreads the runs over the schedulers, but a scheduler
// whose clock runs late can find the lock free again after a fast run elsewhere and run the same
// tick a second time; MinHold closes that gap.
//
// A job run under the Elector is started only while the latch leads, but gocron asks the Elector
// once, before the run: a run that outlasts leadership goes on unless the job watches its
// leadership context. Wrap the job with Elector.Job, or take Elector.LeadershipContext at its start.
//
// This package's name is its directory's, the same as gocron's own (github.com/go-co-op/gocron/v2):
// a file that uses both imports one of them under another name.
package gocron

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-co-op/gocron/v2"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// Elector is a gocron.Elector backed by a LeaderLatch: the scheduler runs its jobs only while the
// latch leads.
type Elector struct {
	latch *recipes.LeaderLatch
}

var _ gocron.Elector = (*Elector)(nil)

// NewElector returns an Elector that consults latch, which the caller starts and closes.
func NewElector(latch *recipes.LeaderLatch) *Elector {
	return &Elector{latch: latch}
}

// IsLeader returns nil if the latch leads now, and an error wrapping recipes.ErrNotLeader if not.
// gocron calls it before every run, so it never blocks: it reads the latch's local state, which
// turns false the moment the connection state puts leadership in doubt (at Suspended under the
// client's StandardErrorPolicy).
func (e *Elector) IsLeader(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !e.latch.HasLeadership() {
		return fmt.Errorf("%w: %s", recipes.ErrNotLeader, e.latch.Path())
	}
	return nil
}

// LeadershipContext returns the context of the latch's current term of leadership, for a job to
// run under: it is cancelled, with a cause wrapping recipes.ErrNotLeader (see
// recipes.LeaderLatch.LeadershipContext), the moment leadership ends: the connection is suspended
// (under the client's StandardErrorPolicy), the session is lost, another participant comes first,
// or the latch is closed. If the latch does not lead now, the context is cancelled already. gocron
// gives a job no such context, so a job that may run longer than leadership lasts takes this one
// when it starts and stops when it is done:
//
//	gocron.NewTask(func() {
//		ctx := elector.LeadershipContext()
//		for batch := range batches {
//			if ctx.Err() != nil {
//				return // no longer the leader: another scheduler runs the next tick
//			}
//			process(ctx, batch)
//		}
//	})
func (e *Elector) LeadershipContext() context.Context {
	return e.latch.LeadershipContext()
}

// Job returns a task function for gocron.NewTask that runs fn with a context that ends when either
// leadership ends (the cause wraps recipes.ErrNotLeader, as for LeadershipContext) or gocron
// cancels the context it passes the job (the scheduler shuts down, the job is removed). It takes
// the leadership context when the run starts, so a run that starts as leadership ends gets a
// context that is cancelled already. A nil fn is a run that does nothing.
func (e *Elector) Job(fn func(ctx context.Context)) func(context.Context) {
	return func(parent context.Context) {
		if fn == nil {
			return
		}
		lead := e.LeadershipContext()
		ctx, cancel := context.WithCancelCause(parent)
		defer cancel(nil)
		stop := context.AfterFunc(lead, func() { cancel(context.Cause(lead)) })
		defer stop()
		fn(ctx)
	}
}

// Locker is a gocron.Locker that holds an InterProcessMutex per job for the job's run: the mutex
// at <basePath>/<key>, where the key (the job's name) is escaped into one znode name. Lock only
// takes a mutex that is free now, so the other schedulers skip the tick instead of running the job
// after it in turn.
type Locker struct {
	c       *framework.Client
	base    string
	minHold time.Duration
	err     error
}

var _ gocron.Locker = (*Locker)(nil)

// LockerOption configures a Locker.
type LockerOption func(*Locker)

// MinHold keeps each job's mutex held until at least d after it was taken, even if the run ends
// sooner (ShedLock's lockAtLeastFor): a scheduler whose tick comes a little later than the others'
// then still finds the mutex held, and skips the tick. Choose d longer than the clock skew between
// the schedulers and shorter than the job's interval. The default, 0, releases as soon as the run
// ends.
func MinHold(d time.Duration) LockerOption {
	return func(l *Locker) {
		if d < 0 {
			l.err = errors.Join(l.err, fmt.Errorf("%w: MinHold %v is negative", recipes.ErrInvalidArgument, d))
			return
		}
		l.minHold = d
	}
}

// NewLocker returns a Locker that keeps its mutexes under basePath. A bad basePath or option is
// reported by Lock.
func NewLocker(c *framework.Client, basePath string, opts ...LockerOption) *Locker {
	l := &Locker{c: c, base: basePath}
	if err := framework.ValidatePath(basePath); err != nil {
		l.err = err
	}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Lock takes the mutex of key if it is free now. It returns an error wrapping recipes.ErrLocked if
// another scheduler holds it, which makes gocron skip this run.
func (l *Locker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	if l.err != nil {
		return nil, fmt.Errorf("gocron: lock %q: %w", key, l.err)
	}
	name, err := EscapeKey(key)
	if err != nil {
		return nil, err
	}
	lease, err := recipes.NewInterProcessMutex(l.c, framework.JoinPath(l.base, name)).TryAcquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("gocron: lock %q: %w", key, err)
	}
	return &lock{lease: lease, until: time.Now().Add(l.minHold)}, nil
}

// lock is a held job mutex.
type lock struct {
	lease *recipes.Lease
	until time.Time // release no sooner than this

	once sync.Once
}

// Unlock releases the mutex: at once, or, with MinHold, in the background once the minimum hold
// is over (it returns at once then, since gocron calls it on the job's goroutine).
func (l *lock) Unlock(context.Context) error {
	var err error
	l.once.Do(func() {
		if wait := time.Until(l.until); wait > 0 {
			time.AfterFunc(wait, func() { _ = l.lease.Release() })
			return
		}
		err = l.lease.Release()
	})
	return err
}

// EscapeKey turns a job's name into one znode name, reversibly: bytes other than ASCII letters,
// digits, '-', '_' and '.' become %XX, as in a URL, so "github.com/org/pkg.job" becomes
// "github.com%2Forg%2Fpkg.job"; the names "." and ".." (which ZooKeeper refuses) have their dots
// escaped too. An empty key is an error.
func EscapeKey(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("gocron: %w: empty lock key", recipes.ErrInvalidArgument)
	}
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || (c == '.' && key != "." && key != "..") {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String(), nil
}
