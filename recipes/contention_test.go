package recipes

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
)

// contender returns the contender "session i" of a contention run (testkit.Contention): it takes
// the lock with acquire and, while it holds it, increments the counter k through client c with a
// 2ms pause between the read and the version-checked write.
func contender(i int, k counter, c *framework.Client, acquire func(context.Context, int) (testkit.Hold, error)) testkit.Contender {
	return testkit.Contender{
		Name:    fmt.Sprintf("session %d", i),
		Acquire: acquire,
		Inside: func(ctx context.Context) (int64, error) {
			return 0, k.increment(ctx, c, 2*time.Millisecond)
		},
	}
}

// counterOf returns the reader of k's value for testkit.Contention.Counter.
func counterOf(k counter) func(testing.TB) int64 {
	return func(t testing.TB) int64 {
		t.Helper()
		return int64(k.value(t))
	}
}
