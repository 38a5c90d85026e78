package zktest_test

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/internal/testkit/zkenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "ticker" {
		tickerMain()
		return
	}
	zkenv.Main(m)
}

// sessionTimeout is what test clients ask for. The servers' default tick time
// of 200ms allows from 400ms to 4s.
const sessionTimeout = 2 * time.Second

// waitTimeout bounds every wait for a client to reach a state.
const waitTimeout = 20 * time.Second

// event is a session event and when it arrived.
type event struct {
	zk.Event
	at time.Time
}

// client is a go-zookeeper connection whose session events are all
// recorded, so that tests can wait for states without losing any (go-zk
// drops events when its small channel is full).
type client struct {
	*zk.Conn
	t testing.TB

	mu     sync.Mutex
	events []event
	notify chan struct{} // receives a value after each new event
}

// connect connects to addr and waits until the client has a session.
func connect(t testing.TB, addr string) *client {
	t.Helper()
	c := &client{t: t, notify: make(chan struct{}, 1)}
	conn, _, err := zk.Connect([]string{addr}, sessionTimeout,
		zk.WithLogInfo(false),
		zk.WithLogger(newTestLogger(t)),
		zk.WithEventCallback(c.record))
	if err != nil {
		t.Fatalf("zk.Connect(%s): %v", addr, err)
	}
	c.Conn = conn
	t.Cleanup(conn.Close)
	c.waitFor(0, zk.StateHasSession)
	return c
}

func (c *client) record(ev zk.Event) {
	if ev.Type != zk.EventSession {
		return
	}
	c.mu.Lock()
	c.events = append(c.events, event{ev, time.Now()})
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// mark returns the number of events so far, for waitFor.
func (c *client) mark() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.events)
}

// waitFor waits for an event with the given state among the events from
// index from on, and returns it and its index.
func (c *client) waitFor(from int, st zk.State) (event, int) {
	c.t.Helper()
	var ev event
	at := -1
	zkenv.Await(c.t, waitTimeout, c.notify, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i := from; i < len(c.events); i++ {
			if c.events[i].State == st {
				ev, at = c.events[i], i
				return true
			}
		}
		return false
	}, func() string {
		return fmt.Sprintf("no %v within %v; events: %s", st, waitTimeout, c.history(from))
	})
	return ev, at
}

// history describes the events from index from on.
func (c *client) history(from int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := ""
	for i := from; i < len(c.events); i++ {
		ev := c.events[i]
		s += fmt.Sprintf("\n\t%s %v", ev.at.Format("15:04:05.000"), ev.State)
	}
	return s
}

// testLogger passes go-zk's log lines to t.Logf until the test ends; go-zk's
// goroutines may log a little after a connection is closed.
type testLogger struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func newTestLogger(t testing.TB) *testLogger {
	l := &testLogger{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

func (l *testLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Logf("zk: "+format, args...)
	}
}
