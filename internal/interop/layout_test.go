package interop

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// nodeName is a recipe node's name as Curator writes it: the protected prefix with a random
// (version 4, lowercase) UUID, the recipe's base name, and ZooKeeper's ten-digit sequence number.
var nodeName = regexp.MustCompile(`^_c_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}-(lock-|__READ__|__WRIT__|lease-|latch-)[0-9]{10}$`)

var (
	uuidPart = regexp.MustCompile(`_c_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-`)
	seqPart  = regexp.MustCompile(`[0-9]{10}$`)
)

// shape is a node's path below its recipe's path with the UUID and the sequence number blanked.
func shape(rel string) string {
	_, below, _ := strings.Cut(rel, "/")
	return seqPart.ReplaceAllString(uuidPart.ReplaceAllString(below, "_c_<uuid>-"), "<seq>")
}

// goNodes lists the ephemeral nodes under base, at any depth, that session sid owns, as the Java
// peer's nodes command does.
func goNodes(t testing.TB, c *framework.Client, base string, sid int64) []ownNode {
	t.Helper()
	ctx := testContext(t, 10*time.Second)
	var out []ownNode
	var walk func(rel string)
	walk = func(rel string) {
		path := base
		if rel != "" {
			path = base + "/" + rel
		}
		names, _, err := c.Children(ctx, path)
		if errors.Is(err, zk.ErrNoNode) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			childRel := n
			if rel != "" {
				childRel = rel + "/" + n
			}
			data, st, err := c.Get(ctx, base+"/"+childRel)
			if errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.EphemeralOwner == sid {
				out = append(out, ownNode{rel: childRel, data: data})
			}
			if st.NumChildren > 0 {
				walk(childRel)
			}
		}
	}
	walk("")
	slices.SortFunc(out, func(a, b ownNode) int { return strings.Compare(a.rel, b.rel) })
	return out
}

// Go and Curator, holding and waiting on the same recipes side by side, write nodes of the same
// names, modes and data: lock-, __READ__, __WRIT__, leases/…lease-, locks/…lock- and latch- nodes
// with the protected prefix and a sequence number, the local address as data (a latch: its id),
// ephemeral, under container parents that the server removes once they are empty.
func TestNodeLayout(t *testing.T) {
	peers := startPeers(t, 3)
	j1, j2, j3 := peers[0], peers[1], peers[2]
	c := newClient(t)
	base := testPath(t, "layout")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var waits []<-chan acquired
	defer func() {
		cancel()
		for _, w := range waits {
			<-w
		}
	}()
	wait := func(acquire func(context.Context) (*recipes.Lease, error)) <-chan acquired {
		ch := make(chan acquired, 1)
		done := make(chan acquired, 1)
		go func() {
			l, err := acquire(ctx)
			ch <- acquired{l, err}
			done <- acquired{l, err}
		}()
		waits = append(waits, done)
		return ch
	}
	semAcquire := func(s *recipes.Semaphore) func(context.Context) (*recipes.Lease, error) {
		return func(ctx context.Context) (*recipes.Lease, error) {
			ls, err := s.Acquire(ctx, 1)
			if err != nil {
				return nil, err
			}
			return ls[0], nil
		}
	}
	count := func(path, contains string) func() bool {
		return func() bool {
			n := 0
			for _, name := range children(t, c, path) {
				if strings.Contains(name, contains) {
					n++
				}
			}
			return n == 2
		}
	}

	// mutex: Curator holds, Go waits.
	j1.must("mutex.acquire m %s/mutex 5000", base)
	goMutex := wait(recipes.NewInterProcessMutex(c, base+"/mutex").Acquire)
	// rw: both read; Go, then Curator, queue to write.
	rw := recipes.NewReadWriteLock(c, base+"/rw")
	j1.must("read.acquire r %s/rw 5000", base)
	goRead, err := rw.ReadLock().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	goWrite := wait(rw.WriteLock().Acquire)
	eventually(t, 10*time.Second, "the Go writer's node", func() bool { return countKind(t, c, base+"/rw", "__WRIT__") == 1 })
	j2.send(fmt.Sprintf("write.acquire w %s/rw 30000", base))
	// sem (3 leases): both hold one.
	goSem, err := recipes.NewSemaphore(c, base+"/sem", 3).Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	j1.must("sem.acquire s %s/sem 3 1 5000", base)
	// semq (1 lease): Curator holds, Go waits (and so has a node in locks/).
	j1.must("sem.acquire q %s/semq 1 1 5000", base)
	goSemq := wait(semAcquire(recipes.NewSemaphore(c, base+"/semq", 1)))
	// semq2 (1 lease): Go holds, Curator waits.
	goSemq2, err := recipes.NewSemaphore(c, base+"/semq2", 1).Acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	j3.send(fmt.Sprintf("sem.acquire q %s/semq2 1 1 30000", base))
	// latch: both join.
	latch := recipes.NewLeaderLatch(c, base+"/latch", recipes.WithParticipantID("go-1"))
	if err := latch.Start(); err != nil {
		t.Fatal(err)
	}
	defer latch.Close()
	j1.must("latch.start l %s/latch java-1", base)

	eventually(t, 10*time.Second, "every node", func() bool {
		return count(base+"/mutex", "lock-")() && count(base+"/rw", "__READ__")() && count(base+"/rw", "__WRIT__")() &&
			count(base+"/sem/leases", "lease-")() && count(base+"/semq/leases", "lease-")() &&
			count(base+"/semq2/leases", "lease-")() && count(base+"/latch", "latch-")() &&
			len(children(t, c, base+"/semq/locks")) == 1 && len(children(t, c, base+"/semq2/locks")) == 1
	})

	goSide := goNodes(t, c, base, c.SessionID())
	// j2 and j3 are busy waiting, so their nodes are listed by their session ids from here.
	javaSide := j1.nodes(base)
	javaSide = append(javaSide, goNodes(t, c, base, j2.sid)...)
	javaSide = append(javaSide, goNodes(t, c, base, j3.sid)...)
	compareLayouts(t, c.DefaultData(), goSide, javaSide)

	// Let go in turn: each waiter, on either side, gets its lock.
	j1.must("mutex.release m")
	releaseWhenAcquired(t, goMutex, "Go mutex waiter")
	j1.must("read.release r")
	if err := goRead.Release(); err != nil {
		t.Fatal(err)
	}
	releaseWhenAcquired(t, goWrite, "Go writer")
	answerOK(t, j2, "Curator writer")
	j2.must("write.release w")
	if err := goSem[0].Release(); err != nil {
		t.Fatal(err)
	}
	j1.must("sem.release s")
	j1.must("sem.release q")
	releaseWhenAcquired(t, goSemq, "Go semaphore waiter")
	if err := goSemq2[0].Release(); err != nil {
		t.Fatal(err)
	}
	answerOK(t, j3, "Curator semaphore waiter")
	j3.must("sem.release q")
	if err := latch.Close(); err != nil {
		t.Fatal(err)
	}
	j1.must("latch.close l")

	left := goNodes(t, c, base, c.SessionID())
	for _, p := range peers {
		left = append(left, p.nodes(base)...)
	}
	if len(left) != 0 {
		t.Fatalf("nodes left: %v", left)
	}
	if testServer.External() {
		return // an ensemble of unknown settings may take a minute to remove empty containers
	}
	// The parents, made by Go (sem, semq2, latch) and by Curator (mutex, rw, semq), are containers:
	// the server removes them, and then base, once they are empty.
	eventually(t, 20*time.Second, "the empty parents to go", func() bool {
		ok, _, err := c.Exists(ctx, base)
		return err == nil && !ok
	})
}

// entry is one node in the side-by-side listing.
type entry struct {
	name, data string
}

// quoted returns the entry's data quoted, or nothing for no entry.
func (e entry) quoted() string {
	if e.name == "" {
		return ""
	}
	return strconv.Quote(e.data)
}

// compareLayouts checks both sides' node names and data, and logs them side by side.
func compareLayouts(t *testing.T, defaultData []byte, goSide, javaSide []ownNode) {
	t.Helper()
	type row struct{ recipe, shape string }
	rows := map[row][2][]entry{}
	var keys []row
	for side, nodes := range [][]ownNode{goSide, javaSide} {
		for _, n := range nodes {
			recipe, _, _ := strings.Cut(n.rel, "/")
			r := row{recipe, shape(n.rel)}
			v, ok := rows[r]
			if !ok {
				keys = append(keys, r)
			}
			v[side] = append(v[side], entry{baseName(n.rel), string(n.data)})
			rows[r] = v

			name := baseName(n.rel)
			if !nodeName.MatchString(name) {
				t.Errorf("%s node %s does not have Curator's name pattern", []string{"Go", "Curator"}[side], n.rel)
			}
			want := string(defaultData)
			if recipe == "latch" {
				want = map[int]string{0: "go-1", 1: "java-1"}[side]
			}
			if string(n.data) != want {
				t.Errorf("%s node %s has data %q, want %q", []string{"Go", "Curator"}[side], n.rel, n.data, want)
			}
		}
	}
	slices.SortFunc(keys, func(a, b row) int {
		return strings.Compare(a.recipe+"/"+a.shape, b.recipe+"/"+b.shape)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s %-30s | %-62s %-11s | %-62s %s\n", "recipe", "node", "Go", "data", "Curator", "data")
	for _, k := range keys {
		v := rows[k]
		for i := range max(len(v[0]), len(v[1])) {
			var g, j entry
			if i < len(v[0]) {
				g = v[0][i]
			}
			if i < len(v[1]) {
				j = v[1][i]
			}
			fmt.Fprintf(&b, "%-7s %-30s | %-62s %-11s | %-62s %s\n", k.recipe, k.shape, g.name, g.quoted(), j.name, j.quoted())
		}
	}
	t.Logf("nodes of Go's session and of the Curator peers' sessions:\n%s", b.String())

	// The same kinds of node, per shape below the recipe's path, on both sides.
	kinds := func(nodes []ownNode) []string {
		var out []string
		for _, n := range nodes {
			out = append(out, shape(n.rel))
		}
		return sorted(out)
	}
	if g, j := kinds(goSide), kinds(javaSide); !slices.Equal(g, j) {
		t.Errorf("Go writes nodes %v, Curator %v", g, j)
	}
	want := sorted([]string{
		"_c_<uuid>-lock-<seq>",                               // mutex
		"_c_<uuid>-__READ__<seq>", "_c_<uuid>-__WRIT__<seq>", // rw
		"leases/_c_<uuid>-lease-<seq>", "leases/_c_<uuid>-lease-<seq>", "leases/_c_<uuid>-lease-<seq>", // sem, semq, semq2
		"locks/_c_<uuid>-lock-<seq>", // the semaphore waiter's
		"_c_<uuid>-latch-<seq>",      // latch
	})
	if g := kinds(goSide); !slices.Equal(g, want) {
		t.Errorf("Go writes nodes %v, want %v", g, want)
	}
}

// releaseWhenAcquired waits for a Go waiter to get its lock, and releases it.
func releaseWhenAcquired(t *testing.T, ch <-chan acquired, what string) {
	t.Helper()
	r := within(t, ch, 10*time.Second, what)
	if r.err != nil {
		t.Fatalf("%s: %v", what, r.err)
	}
	if err := r.lease.Release(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// answerOK waits for a Curator waiter's OK.
func answerOK(t *testing.T, p *peer, what string) {
	t.Helper()
	a, err := p.answer(10 * time.Second)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !strings.HasPrefix(a, "OK") {
		t.Fatalf("%s: %s", what, a)
	}
}
