package interop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/recipes"
)

// This test leaves session expiry out: Debian's Curator 5.4 LeaderLatch can lead again on its
// dead session's node after an expiry (CURATOR-696, fixed in 5.7), which gocurator never does.
// What both versions share is tested: queue order, takeover on close, participant ids.

// candidate is one participant of the election, on either side.
type candidate struct {
	id     string
	java   *peer                // a Curator LeaderLatch named "l" in this peer, or
	latch  *recipes.LeaderLatch // a Go latch
	closed bool
}

// leads reports whether the candidate believes it leads (hasLeadership / HasLeadership).
func (c *candidate) leads() (bool, error) {
	if c.java == nil {
		return c.latch.HasLeadership(), nil
	}
	v, err := c.java.ok("latch.has l")
	return v == "true", err
}

func (c *candidate) close() error {
	if c.java == nil {
		return c.latch.Close()
	}
	_, err := c.java.ok("latch.close l")
	return err
}

// Two Go and two Curator participants, queued alternately (Curator, Go, Curator, Go), elect one
// leader at a time: a sampler looks at all of them every 10ms and never sees two leaders. Each
// leader in turn is closed, and the next in the queue, on the other side, takes over; both sides
// list all participants with their ids, in queue order, the leader first.
func TestLeaderLatch(t *testing.T) {
	peers, clients, path, ctx := startMixed(t, 2, 2, "latch", 60*time.Second)

	cands := []*candidate{
		{id: "java-1", java: peers[0]},
		{id: "go-1", latch: recipes.NewLeaderLatch(clients[0], path, recipes.WithParticipantID("go-1"))},
		{id: "java-2", java: peers[1]},
		{id: "go-2", latch: recipes.NewLeaderLatch(clients[1], path, recipes.WithParticipantID("go-2"))},
	}
	// Start them one after the other, each once the previous one's node is there, so that the
	// queue order is the start order.
	for i, c := range cands {
		if c.java != nil {
			c.java.must("latch.start l %s %s", path, c.id)
		} else if err := c.latch.Start(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, c.id+"'s node", func() bool { return len(children(t, clients[0], path)) == i+1 })
	}
	t.Cleanup(func() {
		for _, c := range cands {
			if !c.closed && c.latch != nil {
				c.latch.Close()
			}
		}
	})
	if v := peers[0].must("latch.await l 10000"); v != "true" {
		t.Fatalf("the first participant (Curator) did not lead: %s", v)
	}

	// The test holds the sampler's lock while it closes a participant, so that no close falls
	// between the looks of one sample.
	sampler := testkit.SampleLeaders(t, 10*time.Millisecond, func() ([]string, error) {
		var leaders []string
		var errs []error
		for _, c := range cands {
			if c.closed {
				continue
			}
			lead, err := c.leads()
			errs = append(errs, err)
			if lead {
				leaders = append(leaders, c.id)
			}
		}
		return leaders, errors.Join(errs...)
	})

	type window struct{ from, to time.Time }
	var takeovers []window
	for k := range len(cands) - 1 {
		cur, next := cands[k], cands[k+1]
		checkParticipants(t, ctx, cands[k:])
		time.Sleep(300 * time.Millisecond) // let the sampler watch this leader for a while

		sampler.Lock()
		from := time.Now()
		err := cur.close()
		cur.closed = true
		sampler.Unlock()
		if err != nil {
			t.Fatalf("close %s: %v", cur.id, err)
		}
		eventually(t, 10*time.Second, next.id+" to lead after "+cur.id+" left", func() bool {
			lead, err := next.leads()
			if err != nil {
				t.Fatal(err)
			}
			return lead
		})
		takeovers = append(takeovers, window{from, time.Now()})
		t.Logf("%s took over from %s in %v", next.id, cur.id, time.Since(from).Round(time.Millisecond))
	}
	checkParticipants(t, ctx, cands[len(cands)-1:])
	time.Sleep(300 * time.Millisecond)
	samples := sampler.Check(t)
	var one, none int
	for _, s := range samples {
		switch len(s.Leaders) {
		case 1:
			one++
		case 0:
			none++
			if !slices.ContainsFunc(takeovers, func(w window) bool { return !s.At.Before(w.from) && !s.At.After(w.to) }) {
				t.Errorf("no leader at %v, outside any takeover", s.At.Format("15:04:05.000"))
			}
		}
	}
	t.Logf("%d samples: %d with one leader, %d without (during the %d takeovers)", len(samples), one, none, len(takeovers))
	if one < 20 { // about 1.2s of steady leadership, sampled every 10ms
		t.Errorf("only %d of %d samples saw one leader", one, len(samples))
	}
}

// checkParticipants checks that every open participant, Go or Curator, lists exactly the open
// participants, in queue order, with their ids, the first as the leader, and that only the first
// believes it leads.
func checkParticipants(t *testing.T, ctx context.Context, open []*candidate) {
	t.Helper()
	var want []string
	for i, c := range open {
		want = append(want, fmt.Sprintf("%s,%t", c.id, i == 0))
	}
	for i, c := range open {
		lead, err := c.leads()
		if err != nil {
			t.Fatal(err)
		}
		if lead != (i == 0) {
			t.Errorf("%s believes it leads: %t, want %t", c.id, lead, i == 0)
		}
		var got []string
		if c.java != nil {
			got = strings.Fields(c.java.must("latch.participants l"))
		} else {
			ps, err := c.latch.Participants(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				got = append(got, fmt.Sprintf("%s,%t", p.ID, p.IsLeader))
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s lists participants %v, want %v", c.id, got, want)
		}
	}
}
