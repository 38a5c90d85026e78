package curatorprom

import (
	"context"
	"errors"
	"testing"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// TestOutcomeLabels checks that every outcome the core names has its label here: none falls back
// to the catch-all label unless it is the catch-all.
func TestOutcomeLabels(t *testing.T) {
	for _, err := range []error{context.DeadlineExceeded, context.Canceled, recipes.ErrLocked, errors.New("x")} {
		if got, want := acquireOutcomes[acquireOutcome(err)], recipes.AcquireOutcome(err); got != want {
			t.Errorf("acquire outcome of %v: label %q, core %q", err, got, want)
		}
	}
	for _, err := range []error{framework.ErrSuspended, framework.ErrSessionLost, framework.ErrClosed, errors.New("x")} {
		if got, want := lostReasons[lostReason(err)], recipes.LostReason(err); got != want {
			t.Errorf("lost reason of %v: label %q, core %q", err, got, want)
		}
	}
	for _, err := range []error{nil, zk.ErrNoNode, zk.ErrNodeExists, zk.ErrBadVersion, zk.ErrSessionExpired,
		zk.ErrConnectionClosed, context.Canceled, errors.New("x")} {
		if got, want := requestOutcomes[requestOutcome(err)], framework.RequestOutcome(err); got != want {
			t.Errorf("request outcome of %v: label %q, core %q", err, got, want)
		}
	}
}
