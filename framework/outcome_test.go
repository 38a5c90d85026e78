package framework

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/go-zookeeper/zk"
)

// TestRequestOutcome checks the outcome names of requests' errors, wrapped as the client wraps them.
func TestRequestOutcome(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{zk.ErrNoNode, "no_node"},
		{zk.ErrNodeExists, "node_exists"},
		{zk.ErrBadVersion, "bad_version"},
		{zk.ErrSessionExpired, "session_expired"},
		{zk.ErrConnectionClosed, "connection_loss"},
		{zk.ErrNoServer, "connection_loss"},
		{context.DeadlineExceeded, "other"},
		{context.Canceled, "other"},
		{ErrClosed, "other"},
		{zk.ErrNoAuth, "other"},
		{errors.New("something else"), "other"},
	} {
		for _, err := range []error{tc.err, fmt.Errorf("get /a: %w", tc.err)} {
			if tc.err == nil && err != nil {
				continue
			}
			if got := RequestOutcome(err); got != tc.want {
				t.Errorf("RequestOutcome(%v) = %q, want %q", err, got, tc.want)
			}
		}
	}
}
