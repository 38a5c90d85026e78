package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/goleak"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
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
	goleak.VerifyTestMain(withServer{m})
}

// withServer compiles the Java peer and starts the server before the tests, and stops the server
// before goleak looks for leaks.
type withServer struct{ m *testing.M }

func (w withServer) Run() int {
	if os.Getenv("GOCURATOR_SKIP_JAVA") == "1" {
		skipJava = true
		return w.m.Run()
	}
	dir, err := os.MkdirTemp("", "curatorpeer-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	javaRT, javaErr = buildPeer(dir)
	srv, err := zktest.StartServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop tests need a ZooKeeper server:", err)
		return 1
	}
	testServer = srv
	code := w.m.Run()
	if err := srv.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping ZooKeeper:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
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

var pathSeq atomic.Int64

// testPath returns a path of the test's own under the server's root.
func testPath(t testing.TB, name string) string {
	t.Helper()
	test := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	return fmt.Sprintf("%s/%s-%d/%s", testServer.Root(), test, pathSeq.Add(1), name)
}

// newClient returns a started, connected Go client of the shared server, closed at the test's end.
func newClient(t testing.TB) *framework.Client {
	t.Helper()
	requireJava(t)
	c, err := framework.NewClient(testServer.ConnectString(),
		framework.WithSessionTimeout(sessionTimeout),
		framework.WithConnectionTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	testClients.Add(t, c)
	if err := c.BlockUntilConnected(testContext(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
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
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testClients records the clients each test made, so that children can wait for their deletes.
var testClients testkit.Registry

// children lists the names under path (none if it does not exist), once the test's connected
// clients have no delete under way (a release does not wait for its delete's reply).
func children(t testing.TB, c *framework.Client, path string) []string {
	t.Helper()
	testClients.Settle(t)
	names, _, err := c.Children(testContext(t, 10*time.Second), path)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("children %s: %v", path, err)
	}
	return names
}

// eventually polls cond every 10ms until it is true, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	data, _, err := c.Get(testContext(t, 10*time.Second), path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// incr is the Go side's half of the exclusion check (the Java peer's incr is the same): it reads the
// counter, pauses, and writes the number plus one with the version it read. A zk.ErrBadVersion means
// someone else wrote in between: two holders at once.
func incr(ctx context.Context, c *framework.Client, path string, pause time.Duration) (int64, error) {
	data, st, err := c.Get(ctx, path)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(data), 10, 64)
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
		data, st, err := c.Get(ctx, path)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(string(data), 10, 64)
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
