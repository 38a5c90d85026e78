package recipes

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gocurator/curator/framework"
)

// TestOutcomeNames checks the outcome names of acquires' and lost holds' errors, wrapped as the
// recipes wrap them.
func TestOutcomeNames(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("acquire /a: %w", err) }
	for _, tc := range []struct {
		name string
		f    func(error) string
		err  error
		want string
	}{
		{"AcquireOutcome", AcquireOutcome, nil, "granted"},
		{"AcquireOutcome", AcquireOutcome, wrap(context.DeadlineExceeded), "timeout"},
		{"AcquireOutcome", AcquireOutcome, wrap(context.Canceled), "canceled"},
		{"AcquireOutcome", AcquireOutcome, wrap(ErrLocked), "locked"},
		{"AcquireOutcome", AcquireOutcome, wrap(framework.ErrClosed), "error"},
		{"LostReason", LostReason, wrap(framework.ErrSuspended), "suspended"},
		{"LostReason", LostReason, wrap(framework.ErrSessionLost), "session_lost"},
		{"LostReason", LostReason, wrap(framework.ErrClosed), "closed"},
		{"LostReason", LostReason, wrap(errors.New("node deleted")), "other"},
	} {
		if got := tc.f(tc.err); got != tc.want {
			t.Errorf("%s(%v) = %q, want %q", tc.name, tc.err, got, tc.want)
		}
	}
}
