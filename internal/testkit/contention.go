package testkit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/go-zookeeper/zk"
)

// Hold is one hold of the lock under contention.
type Hold struct {
	// Token is the hold's fencing token; 0 means the hold has none, and Contention.Run leaves it
	// out of the check of the tokens.
	Token int64
	// Release lets the lock go. A nil Release means the round held nothing exclusively (see
	// Contender.Acquire).
	Release func() error
}

// Lease is what a lease of the recipes offers a contention run: its fencing token and its
// release. (testkit cannot import recipes, whose own tests import testkit.)
type Lease interface {
	Token() int64
	Release() error
}

// Exclusive adapts the Acquire of a lock whose lease carries a fencing token (a mutex, a
// semaphore mutex, a write lock) to Contender.Acquire: every round takes the lock once and
// records the lease's token. A nil acquire gives a nil func, which Contention.Run reports.
func Exclusive[L Lease](acquire func(context.Context) (L, error)) func(context.Context, int) (Hold, error) {
	if acquire == nil {
		return nil
	}
	return func(ctx context.Context, _ int) (Hold, error) {
		l, err := acquire(ctx)
		if err != nil {
			return Hold{}, err
		}
		return Hold{Token: l.Token(), Release: l.Release}, nil
	}
}

// WithoutToken returns acquire with the fencing tokens of its holds dropped (Token 0): for a lock
// whose tokens a run does not check in order. A nil acquire gives a nil func, which
// Contention.Run reports.
func WithoutToken(acquire func(context.Context, int) (Hold, error)) func(context.Context, int) (Hold, error) {
	if acquire == nil {
		return nil
	}
	return func(ctx context.Context, r int) (Hold, error) {
		h, err := acquire(ctx, r)
		h.Token = 0
		return h, err
	}
}

// Contender is one session of a contention run.
type Contender struct {
	// Name prefixes the contender's errors.
	Name string
	// Acquire takes the lock for round r (counted from 0). A Hold with a nil Release and a nil
	// error means round r held nothing exclusively: Acquire did the whole round itself (a reader
	// of a read-write lock does), and Run neither runs Inside for it nor counts it as a hold.
	Acquire func(ctx context.Context, round int) (Hold, error)
	// Inside is the work of one hold, run while the lock is held: typically a read-pause-write of
	// a counter with the version read. It returns the counter's value it wrote, or 0 where it
	// does not know it. An error matching zk.ErrBadVersion means another holder wrote in
	// between: two holders at once.
	Inside func(ctx context.Context) (int64, error)
}

// Held is the record of one hold of a contention run.
type Held struct {
	Contender int   // the index of the holder in Contention.Contenders
	Token     int64 // the hold's fencing token (0: none)
	Value     int64 // the value Inside wrote (0: not known)
}

// Contention is a run in which every contender takes one lock Rounds times, all contenders at
// once, doing Inside while it holds the lock.
type Contention struct {
	Rounds     int
	Contenders []Contender
	// Counter, when not nil, reads the counter that the holds incremented, after the run.
	Counter func(t testing.TB) int64
}

// Run runs the contention and checks it, failing t (never stopping it) with:
//   - every error of an Acquire, an Inside or a Release, prefixed with the contender's name (a
//     contender stops at an Acquire or Release error, and goes on after an Inside error);
//   - a Counter value other than the number of exclusive holds;
//   - a hold whose known Value is not its place in the order of the holds (1, 2, 3...);
//   - a hold whose Token (when not 0) is not above the previous hold's that has one.
//
// It returns the exclusive holds in the order in which they were recorded, which is the order of
// the holds when the lock excludes: each is recorded after Inside, before its release. A zero or
// negative Rounds, or no contenders, makes a run of no holds; a Contender with a nil Acquire or
// Inside fails t.
func (k Contention) Run(t testing.TB, ctx context.Context) []Held {
	t.Helper()
	var (
		mu       sync.Mutex
		holds    []Held
		problems []string
		wg       sync.WaitGroup
	)
	problem := func(who, what string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(err, zk.ErrBadVersion) {
			what = "two holders at once"
		}
		problems = append(problems, fmt.Sprintf("%s: %s: %v", who, what, err))
	}
	for i, c := range k.Contenders {
		if c.Acquire == nil || c.Inside == nil {
			t.Errorf("contender %d (%q): nil Acquire or Inside", i, c.Name)
			continue
		}
		wg.Go(func() {
			for r := range k.Rounds {
				h, err := c.Acquire(ctx, r)
				if err != nil {
					problem(c.Name, "acquire", err)
					return
				}
				if h.Release == nil {
					continue
				}
				v, err := c.Inside(ctx)
				if err != nil {
					problem(c.Name, "inside", err)
				}
				mu.Lock()
				holds = append(holds, Held{Contender: i, Token: h.Token, Value: v})
				mu.Unlock()
				if err := h.Release(); err != nil {
					problem(c.Name, "release", err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	if k.Counter != nil {
		if got := k.Counter(t); got != int64(len(holds)) {
			t.Errorf("counter = %d after %d holds", got, len(holds))
		}
	}
	name := func(h Held) string { return k.Contenders[h.Contender].Name }
	var last *Held
	for i, h := range holds {
		if h.Value != 0 && h.Value != int64(i+1) {
			t.Errorf("hold %d (%s) wrote %d", i+1, name(h), h.Value)
		}
		if h.Token == 0 {
			continue
		}
		if last != nil && h.Token <= last.Token {
			t.Errorf("hold %d (%s) has fencing token %#x, not above the previous token %#x (%s)", i+1, name(h), h.Token, last.Token, name(*last))
		}
		last = &holds[i]
	}
	return holds
}
