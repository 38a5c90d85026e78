package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// samples is how many times a jittered sleep is drawn per retry count.
const samples = 300

func TestExponentialBackoff(t *testing.T) {
	tests := []struct {
		name        string
		base        time.Duration
		maxRetries  int
		wantRetries int // retries allowed: Next(r) is ok for r < wantRetries
	}{
		{"three retries", 10 * time.Millisecond, 3, 3},
		{"one retry", time.Second, 1, 1},
		{"no retries", time.Second, 0, 0},
		{"negative max retries", time.Second, -5, 0},
		{"capped at 29", time.Nanosecond, 100, 29},
		{"exactly 29", time.Microsecond, 29, 29},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ExponentialBackoff(tt.base, tt.maxRetries)
			for r := 0; r < tt.wantRetries; r++ {
				hi := int64(1)<<(r+1) - 1 // largest factor
				seen := map[int64]bool{}
				for range samples {
					sleep, ok := p.Next(r, 0)
					if !ok {
						t.Fatalf("Next(%d) = not ok, want a retry (maxRetries %d)", r, tt.maxRetries)
					}
					if sleep%tt.base != 0 {
						t.Fatalf("Next(%d) sleep %v is not a multiple of the base %v", r, sleep, tt.base)
					}
					f := int64(sleep / tt.base)
					if f < 1 || f > hi {
						t.Fatalf("Next(%d) sleep %v = base × %d, want a factor in [1, %d]", r, sleep, f, hi)
					}
					seen[f] = true
				}
				// The factor is random: past the first two retries, the draws must differ.
				if r >= 2 && len(seen) < 2 {
					t.Errorf("Next(%d) drew only factors %v in %d samples: not jittered", r, seen, samples)
				}
			}
			for _, r := range []int{tt.wantRetries, tt.wantRetries + 1, 1000, -1} {
				if sleep, ok := p.Next(r, 0); ok {
					t.Errorf("Next(%d) = %v, ok; want no retry", r, sleep)
				}
			}
		})
	}
}

// TestExponentialBackoffSpread checks that the factor covers its whole range [1, 2^(r+1)-1], as
// Curator's max(1, rand(1 << (r+1))) does: for r = 2 the factors 1..7 must all turn up.
func TestExponentialBackoffSpread(t *testing.T) {
	p := ExponentialBackoff(time.Millisecond, 5)
	seen := map[time.Duration]bool{}
	for range 2000 {
		sleep, _ := p.Next(2, 0)
		seen[sleep] = true
	}
	for f := 1; f <= 7; f++ {
		if !seen[time.Duration(f)*time.Millisecond] {
			t.Errorf("factor %d never drawn for retry 2 in 2000 samples (drawn: %v)", f, seen)
		}
	}
	if len(seen) != 7 {
		t.Errorf("drew %d distinct sleeps for retry 2, want 7: %v", len(seen), seen)
	}
}

func TestExponentialBackoffNoOverflow(t *testing.T) {
	for _, base := range []time.Duration{time.Second, time.Hour, 1000 * time.Hour, time.Duration(math.MaxInt64 / 2)} {
		for _, p := range []Policy{ExponentialBackoff(base, 1000), BoundedExponentialBackoff(base, time.Duration(math.MaxInt64), 1000)} {
			for r := 20; r < 29; r++ {
				for range 50 {
					sleep, ok := p.Next(r, 0)
					if !ok {
						t.Fatalf("base %v: Next(%d) = no retry", base, r)
					}
					if sleep < base {
						t.Fatalf("base %v: Next(%d) = %v, below the base (overflow?)", base, r, sleep)
					}
				}
			}
		}
	}
}

func TestBoundedExponentialBackoff(t *testing.T) {
	tests := []struct {
		name       string
		base, max  time.Duration
		maxRetries int
		wantCapHit bool // some draw must be capped
	}{
		{"cap reached", 10 * time.Millisecond, 50 * time.Millisecond, 10, true},
		{"cap above all", time.Millisecond, time.Hour, 4, false},
		{"cap below base", 100 * time.Millisecond, 30 * time.Millisecond, 3, true},
		{"huge base", time.Hour, 2 * time.Hour, 29, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := BoundedExponentialBackoff(tt.base, tt.max, tt.maxRetries)
			capHit := false
			for r := 0; r < tt.maxRetries; r++ {
				hi := tt.max
				if f := time.Duration(int64(1)<<(r+1) - 1); f <= tt.max/tt.base {
					hi = min(f*tt.base, tt.max)
				}
				for range samples {
					sleep, ok := p.Next(r, 0)
					if !ok {
						t.Fatalf("Next(%d) = no retry, want one", r)
					}
					if sleep > tt.max {
						t.Fatalf("Next(%d) = %v, above the cap %v", r, sleep, tt.max)
					}
					if sleep > hi || sleep < min(tt.base, tt.max) {
						t.Fatalf("Next(%d) = %v, want in [%v, %v]", r, sleep, min(tt.base, tt.max), hi)
					}
					capHit = capHit || sleep == tt.max
				}
			}
			if capHit != tt.wantCapHit {
				t.Errorf("a sleep equal to the cap drawn: %v, want %v", capHit, tt.wantCapHit)
			}
			if _, ok := p.Next(tt.maxRetries, 0); ok {
				t.Errorf("Next(%d) retried past maxRetries", tt.maxRetries)
			}
		})
	}
	if _, ok := BoundedExponentialBackoff(time.Millisecond, time.Second, 50).Next(29, 0); ok {
		t.Error("BoundedExponentialBackoff: maxRetries not capped at 29")
	}
}

func TestFixedPolicies(t *testing.T) {
	type call struct {
		retries   int
		elapsed   time.Duration
		wantSleep time.Duration
		wantOK    bool
	}
	tests := []struct {
		name  string
		p     Policy
		calls []call
	}{
		{"NTimes", NTimes(3, 5*time.Millisecond), []call{
			{0, 0, 5 * time.Millisecond, true},
			{1, time.Hour, 5 * time.Millisecond, true},
			{2, 0, 5 * time.Millisecond, true},
			{3, 0, 0, false},
			{4, 0, 0, false},
			{-1, 0, 0, false},
		}},
		{"NTimes zero", NTimes(0, time.Second), []call{{0, 0, 0, false}}},
		{"NTimes negative sleep", NTimes(2, -time.Second), []call{{0, 0, 0, true}, {1, 0, 0, true}, {2, 0, 0, false}}},
		{"OneTime", OneTime(7 * time.Millisecond), []call{
			{0, 0, 7 * time.Millisecond, true},
			{1, 0, 0, false},
		}},
		{"UntilElapsed", UntilElapsed(100*time.Millisecond, 3*time.Millisecond), []call{
			{0, 0, 3 * time.Millisecond, true},
			{1000, 99 * time.Millisecond, 3 * time.Millisecond, true},
			{1, 100 * time.Millisecond, 0, false},
			{1, time.Hour, 0, false},
		}},
		{"Forever", Forever(2 * time.Millisecond), []call{
			{0, 0, 2 * time.Millisecond, true},
			{1 << 30, 1000 * time.Hour, 2 * time.Millisecond, true},
			{math.MaxInt, 0, 2 * time.Millisecond, true},
		}},
		{"Forever negative sleep", Forever(-time.Second), []call{{5, 0, 0, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range tt.calls {
				sleep, ok := tt.p.Next(c.retries, c.elapsed)
				if ok != c.wantOK || (ok && sleep != c.wantSleep) {
					t.Errorf("Next(%d, %v) = %v, %v; want %v, %v", c.retries, c.elapsed, sleep, ok, c.wantSleep, c.wantOK)
				}
			}
		})
	}
}

// opTimeout is the error go-zookeeper returns for the server's OPERATIONTIMEOUT (-7), for which it
// has no variable: ErrCode.toError formats unknown codes so.
var opTimeout = fmt.Errorf("unknown error: %v", zk.ErrCode(-7))

func TestIsRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{zk.ErrConnectionClosed, true},
		{zk.ErrNoServer, true},
		{zk.ErrSessionMoved, true},
		{opTimeout, true},
		{fmt.Errorf("get /a: %w", zk.ErrConnectionClosed), true},
		{fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", zk.ErrNoServer)), true},
		{errors.Join(errors.New("x"), zk.ErrSessionMoved), true},
		{fmt.Errorf("create: %w", opTimeout), true},
		{zk.ErrNoNode, false},
		{zk.ErrNodeExists, false},
		{zk.ErrBadVersion, false},
		{zk.ErrSessionExpired, false},
		{zk.ErrNoAuth, false},
		{zk.ErrNotEmpty, false},
		{zk.ErrInvalidACL, false},
		{zk.ErrAuthFailed, false},
		{fmt.Errorf("unknown error: %v", zk.ErrCode(-8)), false}, // BADARGUMENTS
		{fmt.Errorf("delete /a: %w", zk.ErrNoNode), false},
		{fmt.Errorf("wrapped: %w", zk.ErrSessionExpired), false},
		{context.Canceled, false},
		{context.DeadlineExceeded, false},
		{errors.New("boom"), false},
	}
	for _, tt := range tests {
		if got := IsRetryable(tt.err); got != tt.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// scripted returns an op that returns errs in turn (nil once they run out) and counts its calls.
func scripted(errs ...error) (op func() error, calls *atomic.Int32) {
	calls = new(atomic.Int32)
	return func() error {
		n := int(calls.Add(1))
		if n <= len(errs) {
			return errs[n-1]
		}
		return nil
	}, calls
}

func TestDo(t *testing.T) {
	cc := zk.ErrConnectionClosed
	tests := []struct {
		name      string
		policy    Policy
		errs      []error
		wantCalls int32
		wantIs    []error // errors.Is(err, each); none means a nil error
		wantNotIs []error
	}{
		{"success at once", NTimes(3, time.Millisecond), nil, 1, nil, nil},
		{"success after retries", NTimes(3, time.Millisecond), []error{cc, zk.ErrNoServer, zk.ErrSessionMoved}, 4, nil, nil},
		{"operation timeout retried", OneTime(time.Millisecond), []error{opTimeout}, 2, nil, nil},
		{"wrapped retryable retried", OneTime(time.Millisecond), []error{fmt.Errorf("x: %w", cc)}, 2, nil, nil},
		{"no node at once", Forever(time.Millisecond), []error{zk.ErrNoNode}, 1, []error{zk.ErrNoNode}, []error{ErrRetriesExhausted}},
		{"node exists at once", Forever(time.Millisecond), []error{zk.ErrNodeExists}, 1, []error{zk.ErrNodeExists}, []error{ErrRetriesExhausted}},
		{"bad version at once", Forever(time.Millisecond), []error{zk.ErrBadVersion}, 1, []error{zk.ErrBadVersion}, nil},
		{"session expired at once", Forever(time.Millisecond), []error{zk.ErrSessionExpired}, 1, []error{zk.ErrSessionExpired}, nil},
		{"no auth at once", Forever(time.Millisecond), []error{zk.ErrNoAuth}, 1, []error{zk.ErrNoAuth}, nil},
		{"logical error after a retry", Forever(time.Millisecond), []error{cc, cc, zk.ErrNoNode}, 3, []error{zk.ErrNoNode}, []error{ErrRetriesExhausted, cc}},
		{"exhausted", NTimes(2, time.Millisecond), []error{cc, cc, cc, cc}, 3, []error{ErrRetriesExhausted, cc}, []error{context.Canceled}},
		{"exhausted keeps the last error", NTimes(1, time.Millisecond), []error{cc, zk.ErrSessionMoved}, 2, []error{ErrRetriesExhausted, zk.ErrSessionMoved}, []error{cc}},
		{"one time exhausted", OneTime(time.Millisecond), []error{cc, cc}, 2, []error{ErrRetriesExhausted, cc}, nil},
		{"exponential exhausted", ExponentialBackoff(time.Microsecond, 3), []error{cc, cc, cc, cc, cc}, 4, []error{ErrRetriesExhausted, cc}, nil},
		{"until elapsed exhausted", UntilElapsed(20*time.Millisecond, 2*time.Millisecond), repeat(cc, 1000), -1, []error{ErrRetriesExhausted, cc}, nil},
		{"no retries", NTimes(0, 0), []error{cc}, 1, []error{ErrRetriesExhausted, cc}, nil},
		{"nil policy does not retry", nil, []error{cc, cc}, 1, []error{cc}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, calls := scripted(tt.errs...)
			err := Do(context.Background(), tt.policy, op)
			if tt.wantCalls >= 0 && calls.Load() != tt.wantCalls {
				t.Errorf("op called %d times, want %d", calls.Load(), tt.wantCalls)
			}
			if len(tt.wantIs) == 0 {
				if err != nil {
					t.Fatalf("Do = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Do = nil, want an error")
			}
			for _, w := range tt.wantIs {
				if !errors.Is(err, w) {
					t.Errorf("Do = %v, want it to wrap %v", err, w)
				}
			}
			for _, w := range tt.wantNotIs {
				if errors.Is(err, w) {
					t.Errorf("Do = %v, want it not to wrap %v", err, w)
				}
			}
		})
	}
}

func repeat(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// recordingPolicy allows retries forever, recording what Do passes it.
type recordingPolicy struct {
	sleep   time.Duration
	limit   int
	retries []int
	elapsed []time.Duration
}

func (p *recordingPolicy) Next(retries int, elapsed time.Duration) (time.Duration, bool) {
	p.retries = append(p.retries, retries)
	p.elapsed = append(p.elapsed, elapsed)
	return p.sleep, retries < p.limit
}

func TestDoPassesRetriesAndElapsed(t *testing.T) {
	p := &recordingPolicy{sleep: 5 * time.Millisecond, limit: 3}
	op, calls := scripted(repeat(zk.ErrConnectionClosed, 10)...)
	start := time.Now()
	err := Do(context.Background(), p, op)
	took := time.Since(start)
	if !errors.Is(err, ErrRetriesExhausted) {
		t.Fatalf("Do = %v, want ErrRetriesExhausted", err)
	}
	if calls.Load() != 4 {
		t.Errorf("op called %d times, want 4", calls.Load())
	}
	if want := []int{0, 1, 2, 3}; fmt.Sprint(p.retries) != fmt.Sprint(want) {
		t.Errorf("policy asked with retries %v, want %v", p.retries, want)
	}
	for i := 1; i < len(p.elapsed); i++ {
		if p.elapsed[i] < p.elapsed[i-1]+p.sleep {
			t.Errorf("elapsed %v after a %v sleep, want at least %v more than %v", p.elapsed[i], p.sleep, p.sleep, p.elapsed[i-1])
		}
	}
	if took < 3*p.sleep {
		t.Errorf("Do took %v, want at least the three sleeps (%v)", took, 3*p.sleep)
	}
}

func TestDoContext(t *testing.T) {
	cc := zk.ErrConnectionClosed
	myCause := errors.New("shutting down")
	tests := []struct {
		name string
		// ctx returns the context for Do and a func that ends it; op calls it on its endAfter'th
		// call (0: before Do starts; -1: never, the context ends by itself).
		ctx       func() (context.Context, func())
		endAfter  int32
		opErr     error
		wantIs    []error
		sleep     time.Duration // Forever's sleep
		wantCalls int32
	}{
		{
			name:      "cancelled before the first try",
			ctx:       cancelCtx,
			endAfter:  0,
			opErr:     cc,
			sleep:     time.Hour,
			wantIs:    []error{context.Canceled},
			wantCalls: 0,
		},
		{
			name:      "cancelled during the sleep",
			ctx:       cancelCtx,
			endAfter:  1,
			opErr:     cc,
			sleep:     time.Hour,
			wantIs:    []error{context.Canceled, cc},
			wantCalls: 1,
		},
		{
			name:      "cancelled during the third try",
			ctx:       cancelCtx,
			endAfter:  3,
			opErr:     cc,
			sleep:     time.Millisecond,
			wantIs:    []error{context.Canceled, cc},
			wantCalls: 3,
		},
		{
			name:      "non-retryable error wins over the cancel",
			ctx:       cancelCtx,
			endAfter:  1,
			opErr:     zk.ErrNoNode,
			sleep:     time.Hour,
			wantIs:    []error{zk.ErrNoNode},
			wantCalls: 1,
		},
		{
			name: "deadline during the sleep",
			ctx: func() (context.Context, func()) {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				return ctx, func() { <-ctx.Done(); cancel() }
			},
			endAfter:  -1, // the deadline ends it by itself
			opErr:     cc,
			sleep:     time.Hour,
			wantIs:    []error{context.DeadlineExceeded, cc},
			wantCalls: 1,
		},
		{
			name: "cancel cause",
			ctx: func() (context.Context, func()) {
				ctx, cancel := context.WithCancelCause(context.Background())
				return ctx, func() { cancel(myCause) }
			},
			endAfter:  1,
			opErr:     cc,
			sleep:     time.Hour,
			wantIs:    []error{myCause, context.Canceled, cc},
			wantCalls: 1,
		},
		{
			name: "cancel cause before the first try",
			ctx: func() (context.Context, func()) {
				ctx, cancel := context.WithCancelCause(context.Background())
				return ctx, func() { cancel(myCause) }
			},
			endAfter:  0,
			opErr:     cc,
			sleep:     time.Hour,
			wantIs:    []error{myCause, context.Canceled},
			wantCalls: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, end := tt.ctx()
			defer end()
			if tt.endAfter == 0 {
				end()
			}
			var calls atomic.Int32
			op := func() error {
				if n := calls.Add(1); n == tt.endAfter {
					end()
				}
				return tt.opErr
			}
			start := time.Now()
			// Forever with a long sleep: only the context can end Do, and it must do so mid-sleep.
			err := Do(ctx, Forever(tt.sleep), op)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Do took %v after the context ended", took)
			}
			if err == nil {
				t.Fatal("Do = nil, want an error")
			}
			for _, w := range tt.wantIs {
				if !errors.Is(err, w) {
					t.Errorf("Do = %v, want it to wrap %v", err, w)
				}
			}
			if errors.Is(err, ErrRetriesExhausted) {
				t.Errorf("Do = %v: the context ended it, not the policy", err)
			}
			if tt.wantCalls >= 0 && calls.Load() != tt.wantCalls {
				t.Errorf("op called %d times, want %d", calls.Load(), tt.wantCalls)
			}
		})
	}
}

func cancelCtx() (context.Context, func()) {
	return context.WithCancel(context.Background())
}

// TestDoStopsMidSleep checks that a context ending during a long sleep ends Do at once.
func TestDoStopsMidSleep(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tried := make(chan struct{})
	var calls atomic.Int32
	errc := make(chan error, 1)
	go func() {
		errc <- Do(ctx, Forever(time.Hour), func() error {
			if calls.Add(1) == 1 {
				close(tried)
			}
			return zk.ErrConnectionClosed
		})
	}()
	<-tried
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) || !errors.Is(err, zk.ErrConnectionClosed) {
			t.Errorf("Do = %v, want it to wrap context.Canceled and the last error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do did not return after its context was cancelled mid-sleep")
	}
	if calls.Load() != 1 {
		t.Errorf("op called %d times, want 1", calls.Load())
	}
}

// sliceError is a retryable error of a type that == cannot compare (it holds a slice).
type sliceError struct{ ops []string }

func (e sliceError) Error() string { return fmt.Sprintf("ops %v: connection closed", e.ops) }
func (e sliceError) Unwrap() error { return zk.ErrConnectionClosed }

// TestDoUncomparableError checks that Do copes with error values that cannot be compared.
func TestDoUncomparableError(t *testing.T) {
	op := func() error { return sliceError{ops: []string{"create"}} }
	err := Do(context.Background(), NTimes(2, time.Millisecond), op)
	if !errors.Is(err, ErrRetriesExhausted) || !errors.Is(err, zk.ErrConnectionClosed) {
		t.Errorf("Do = %v, want it to wrap ErrRetriesExhausted and the last error", err)
	}
	var se sliceError
	if !errors.As(err, &se) {
		t.Errorf("Do = %v, want it to wrap the sliceError", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = Do(ctx, Forever(time.Millisecond), op)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &se) {
		t.Errorf("Do = %v, want it to wrap the deadline and the last error", err)
	}
}

// TestDoUntilStopEndsTheSleep checks that closing stop ends DoUntil at once, in the sleep between
// two tries, with an error wrapping ErrStopped and op's last error, and not a context error.
func TestDoUntilStopEndsTheSleep(t *testing.T) {
	stop := make(chan struct{})
	tries := 0
	got := make(chan error, 1)
	go func() {
		// No sleep before the second try, an hour before the third: stop closes in the second, so
		// DoUntil is in the hour's sleep when it sees it.
		got <- DoUntil(context.Background(), stop, policyFunc(func(retries int, _ time.Duration) (time.Duration, bool) {
			if retries == 0 {
				return 0, true
			}
			return time.Hour, true
		}), func() error {
			tries++
			if tries == 2 {
				close(stop)
			}
			return zk.ErrConnectionClosed
		})
	}()
	select {
	case err := <-got:
		if !errors.Is(err, ErrStopped) || !errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, context.Canceled) {
			t.Fatalf("DoUntil = %v, want ErrStopped and the last error, no context error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("DoUntil still sleeping 5s after stop closed")
	}
	if err := DoUntil(context.Background(), nil, NTimes(0, 0), func() error { return nil }); err != nil {
		t.Fatalf("DoUntil with no stop = %v", err)
	}
}

// policyFunc is a Policy made of a func.
type policyFunc func(retries int, elapsed time.Duration) (time.Duration, bool)

func (f policyFunc) Next(retries int, elapsed time.Duration) (time.Duration, bool) {
	return f(retries, elapsed)
}
