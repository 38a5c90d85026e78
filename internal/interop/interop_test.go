package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/internal/testkit/zkenv"
	"github.com/gocurator/curator/zktest"
)

var (
	// testServer is the ZooKeeper server that Go clients and Java peers of every test share; each
	// test works under paths of its own (see testPath).
	testServer *zktest.Server
	// javaRT runs the compiled Java peer; javaErr says why there is none.
	javaRT  *javaRuntime
	javaErr error
	// skipJava is set by GOCURATOR_SKIP_JAVA=1.
	skipJava bool
)

// sessionTimeout is the session timeout of Go clients and Java peers alike (the server's tick is
// 200ms, so it grants 400ms to 4s).
const sessionTimeout = 2 * time.Second

func TestMain(m *testing.M) {
	if os.Getenv("GOCURATOR_SKIP_JAVA") == "1" {
		skipJava = true
		zkenv.Main(m)
	}
	zkenv.Main(m, buildJava, zkenv.Server(&testServer))
}

// buildJava is a zkenv.Step that compiles the Java peer into a directory it removes after the
// tests. A peer that does not build is not an error here: javaErr says why, for requireJava.
func buildJava() (func() error, error) {
	dir, err := os.MkdirTemp("", "curatorpeer-")
	if err != nil {
		return nil, err
	}
	javaRT, javaErr = buildPeer(dir)
	return func() error { return os.RemoveAll(dir) }, nil
}

// requireJava skips the test under GOCURATOR_SKIP_JAVA=1, and fails it with an install hint if the
// Java peer could not be built.
func requireJava(t testing.TB) {
	t.Helper()
	if skipJava {
		t.Skip("GOCURATOR_SKIP_JAVA=1: not testing against Apache Curator")
	}
	if javaErr != nil {
		t.Fatalf("cannot build the Curator peer: %v\n%s", javaErr, installHint)
	}
}

// testPath returns a path of the test's own under the server's root (zkenv.Path).
func testPath(t testing.TB, name string) string {
	t.Helper()
	return zkenv.Path(t, testServer.Root(), name)
}

// newClient returns a started, connected Go client of the shared server, closed at the test's end.
func newClient(t testing.TB) *framework.Client {
	t.Helper()
	requireJava(t)
	return testClients.Connect(t, testServer.ConnectString(),
		framework.WithSessionTimeout(sessionTimeout),
		framework.WithConnectionTimeout(5*time.Second))
}

// newClients returns n clients, as newClient.
func newClients(t testing.TB, n int) []*framework.Client {
	t.Helper()
	cs := make([]*framework.Client, n)
	for i := range cs {
		cs[i] = newClient(t)
	}
	return cs
}

// testContext returns a context that ends with the test, or after d.
func testContext(t testing.TB, d time.Duration) context.Context {
	return zkenv.Context(t, d)
}

// testClients records the clients each test made, so that children can wait for their deletes.
var testClients testkit.Registry

// children lists the names under path (none if it does not exist), once the test's connected
// clients have no delete under way (a release does not wait for its delete's reply).
func children(t testing.TB, c *framework.Client, path string) []string {
	t.Helper()
	testClients.Settle(t)
	return testkit.Children(t, c, path)
}

// eventually polls cond every 10ms until it is true, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	zkenv.Eventually(t, d, 10*time.Millisecond, what, cond)
}

// createCounter creates a persistent node holding the number 0.
func createCounter(t testing.TB, c *framework.Client, path string) {
	t.Helper()
	if _, err := c.Create(testContext(t, 10*time.Second), path, []byte("0"), framework.Persistent, framework.WithParents()); err != nil {
		t.Fatal(err)
	}
}

// readCounter returns the number in a counter node.
func readCounter(t testing.TB, c *framework.Client, path string) int64 {
	t.Helper()
	n, _, err := getNumber(testContext(t, 10*time.Second), c, path)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// getNumber reads the decimal number that the node at path holds, and the node's stat; an error
// of the read or of the number is returned as it is.
func getNumber(ctx context.Context, c *framework.Client, path string) (int64, *zk.Stat, error) {
	data, st, err := c.Get(ctx, path)
	if err != nil {
		return 0, nil, err
	}
	n, err := strconv.ParseInt(string(data), 10, 64)
	return n, st, err
}

// incr is the Go side's half of the exclusion check (the Java peer's incr is the same): it reads the
// counter, pauses, and writes the number plus one with the version it read. A zk.ErrBadVersion means
// someone else wrote in between: two holders at once.
func incr(ctx context.Context, c *framework.Client, path string, pause time.Duration) (int64, error) {
	n, st, err := getNumber(ctx, c, path)
	if err != nil {
		return 0, err
	}
	time.Sleep(pause) // widen the window that a second holder would need
	if _, err := c.Set(ctx, path, []byte(strconv.FormatInt(n+1, 10)), st.Version); err != nil {
		return 0, fmt.Errorf("write of %d: %w", n+1, err)
	}
	return n + 1, nil
}

// add adds delta to a counter with a compare-and-set loop (the Java peer's add is the same) and
// returns the new value: counters that holders share legitimately, such as the leases in use.
func add(ctx context.Context, c *framework.Client, path string, delta int64) (int64, error) {
	for {
		n, st, err := getNumber(ctx, c, path)
		if err != nil {
			return 0, err
		}
		_, err = c.Set(ctx, path, []byte(strconv.FormatInt(n+delta, 10)), st.Version)
		if errors.Is(err, zk.ErrBadVersion) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n + delta, nil
	}
}

// seq returns the ten-digit sequence number at the end of a sequential node's name.
func seq(t testing.TB, node string) int64 {
	t.Helper()
	if len(node) < 10 {
		t.Fatalf("node %q has no sequence number", node)
	}
	n, err := strconv.ParseInt(node[len(node)-10:], 10, 64)
	if err != nil {
		t.Fatalf("node %q has no sequence number", node)
	}
	return n
}

// baseName returns the last element of a path.
func baseName(p string) string {
	_, name := framework.SplitPath(p)
	return name
}

// mustNotReturn fails the test if ch delivers within d (a waiter that should still wait).
func mustNotReturn[T any](t testing.TB, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s returned while it should wait: %v", what, v)
	case <-time.After(d):
	}
}

// within waits up to d for ch to deliver.
func within[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s did not return within %v", what, d)
		panic("unreachable")
	}
}

// sorted returns a sorted copy.
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// startMixed is the set-up of a test in which Go sessions and Curator processes share a recipe:
// it starts peers Curator processes (startPeers) and clients Go sessions (newClients), in that
// order, and returns them with a path of the test's own named name and a context that ends after
// d, or with the test.
func startMixed(t testing.TB, peers, clients int, name string, d time.Duration) ([]*peer, []*framework.Client, string, context.Context) {
	t.Helper()
	ps, cs := startPeers(t, peers), newClients(t, clients)
	return ps, cs, testPath(t, name), testContext(t, d)
}
