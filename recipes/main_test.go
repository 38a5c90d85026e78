package recipes

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/internal/testkit"
	"github.com/gocurator/curator/internal/testkit/zkenv"
	"github.com/gocurator/curator/zktest"
)

// testServer is the ZooKeeper server that every test of the package shares; each test works
// under its own path (see testPath).
var testServer *zktest.Server

func TestMain(m *testing.M) {
	zkenv.Main(m, zkenv.Server(&testServer))
}

// testSessionTimeout is short so that expiry tests are quick; the server's tick is 200ms.
const testSessionTimeout = 1500 * time.Millisecond

// testPath returns a lock path of the test's own under the server's root (zkenv.Path).
func testPath(t testing.TB, name string) string {
	t.Helper()
	return zkenv.Path(t, testServer.Root(), name)
}

// newClient returns a started, connected client of the shared server, closed at the test's end.
func newClient(t testing.TB, opts ...framework.Option) *framework.Client {
	t.Helper()
	return connect(t, testServer.ConnectString(), opts...)
}

// newProxiedClient returns a started, connected client that reaches the server through a
// fault-injecting proxy of its own.
func newProxiedClient(t testing.TB, opts ...framework.Option) (*framework.Client, *zktest.Proxy) {
	t.Helper()
	p := testServer.Proxy(t)
	return connect(t, p.Addr(), opts...), p
}

// connect returns a started, connected client of addr, closed at the test's end and recorded in
// testClients (testkit.Registry.Connect), with the package's session and connection timeouts
// before opts.
func connect(t testing.TB, addr string, opts ...framework.Option) *framework.Client {
	t.Helper()
	return testClients.Connect(t, addr, append([]framework.Option{
		framework.WithSessionTimeout(testSessionTimeout),
		framework.WithConnectionTimeout(2 * time.Second),
	}, opts...)...)
}

// testContext returns a context that ends with the test, or after d.
func testContext(t testing.TB, d time.Duration) context.Context {
	return zkenv.Context(t, d)
}

// children lists the names under path through a fresh look (nil if the path does not exist),
// once the test's connected clients have no deletes under way (see settle).
func children(t testing.TB, c *framework.Client, path string) []string {
	t.Helper()
	settle(t)
	return testkit.Children(t, c, path)
}

// testClients records the clients each test made, for settle.
var testClients testkit.Registry

// settle waits until the test's connected clients have no delete under way (testkit.Registry.Settle).
func settle(t testing.TB) {
	t.Helper()
	testClients.Settle(t)
}

func isNoNode(err error) bool {
	return errors.Is(err, zk.ErrNoNode)
}

// eventually polls cond every 10ms until it is true, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	zkenv.Eventually(t, d, 10*time.Millisecond, what, cond)
}

// counter is a znode holding a number that critical sections increment non-atomically: read,
// pause, write with the version read. A zk.ErrBadVersion on the write means another holder
// wrote in between: two holders at once.
type counter struct {
	c    *framework.Client
	path string
}

func newCounter(t testing.TB, c *framework.Client, path string) counter {
	t.Helper()
	if _, err := c.Create(testContext(t, 10*time.Second), path, []byte("0"), framework.Persistent, framework.WithParents()); err != nil {
		t.Fatal(err)
	}
	return counter{c: c, path: path}
}

// increment does one non-atomic increment with client c; it reports a double holder as an error.
func (k counter) increment(ctx context.Context, c *framework.Client, pause time.Duration) error {
	data, st, err := c.Get(ctx, k.path)
	if err != nil {
		return err
	}
	var n int
	fmt.Sscan(string(data), &n)
	time.Sleep(pause) // widen the window a second holder would need
	if _, err := c.Set(ctx, k.path, []byte(fmt.Sprint(n+1)), st.Version); err != nil {
		return fmt.Errorf("write of %d: %w", n+1, err)
	}
	return nil
}

func (k counter) value(t testing.TB) int {
	t.Helper()
	data, _, err := k.c.Get(testContext(t, 10*time.Second), k.path)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscan(string(data), &n)
	return n
}
