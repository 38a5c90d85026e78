package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/recipes"
)

// TestChecksCatchTwoHolders shows that the checks of TestSoak and TestLeaderKillLoop catch two
// holders at once: workers take a semaphore of 2 leases as if it were a mutex, and both the
// monitor and the fence must report it.
func TestChecksCatchTwoHolders(t *testing.T) {
	e := startEnsemble(t)
	admin := newSession(t, e, "admin", direct)
	ld := newLoad("/checks", 1)
	if err := ld.setup(testContext(t, waitTimeout), admin.c); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithTimeout(context.Background(), 3*time.Second)
	defer stop()
	for i := range 4 {
		s := newSession(t, e, fmt.Sprint("s", i), direct)
		sem := recipes.NewSemaphore(s.c, ld.mutex.path, 2)
		acquire := func(ctx context.Context) (*recipes.Lease, error) { return oneLease(sem.Acquire(ctx, 1)) }
		r := rand.New(rand.NewPCG(1, uint64(i)))
		ld.wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				ld.once(ctx, s, ld.mutex, acquire, fmt.Sprintf("s%d#%d", i, n), r)
			}
		})
	}
	if !ld.wait(time.Minute) {
		t.Fatal("workers did not stop")
	}
	var monitor, fence int
	for _, v := range ld.mon.Violations() {
		switch {
		case strings.Contains(v, "got a hold"):
			monitor++
		case strings.Contains(v, "fence changed under") || strings.Contains(v, "not above"):
			fence++
		}
	}
	t.Logf("%d acquisitions: the monitor saw %d double holds, the fence %d", ld.stats.total.Load(), monitor, fence)
	if monitor == 0 || fence == 0 {
		t.Errorf("monitor violations %d, fence violations %d; want both above 0", monitor, fence)
	}
}
