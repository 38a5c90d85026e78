package zktest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/zktest"
)

// ensembleSessionTimeout is what clients of an ensemble ask for: the longest
// the members grant at the default tick, so that sessions outlive an election
// and go-zookeeper's pause of a second between passes over the servers.
const ensembleSessionTimeout = 4 * time.Second

// connectServers connects to the given servers and waits until the client
// has a session.
func connectServers(t testing.TB, servers []string) *client {
	t.Helper()
	return connectDialing(t, servers, ensembleSessionTimeout, net.DialTimeout)
}

// connectDialing connects go-zookeeper to servers through dial, asking for a
// session of timeout, and waits until the client has a session; the client
// records its events and is closed when the test ends.
func connectDialing(t testing.TB, servers []string, timeout time.Duration, dial zk.Dialer) *client {
	t.Helper()
	c := &client{t: t, notify: make(chan struct{}, 1)}
	conn, _, err := zk.Connect(servers, timeout,
		zk.WithLogInfo(false),
		zk.WithLogger(newTestLogger(t)),
		zk.WithEventCallback(c.record),
		zk.WithDialer(dial))
	if err != nil {
		t.Fatalf("zk.Connect(%v): %v", servers, err)
	}
	c.Conn = conn
	t.Cleanup(conn.Close)
	c.waitFor(0, zk.StateHasSession)
	return c
}

// readyContext returns a context for waiting until an ensemble is ready.
func readyContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func modes(e *zktest.Ensemble) []string {
	var out []string
	for i := range e.Size() {
		m, err := e.Mode(i)
		if err != nil {
			m = "error: " + err.Error()
		}
		out = append(out, m)
	}
	return out
}

func TestStartEnsemble(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	e := zktest.StartEnsemble(t, 3)
	t.Logf("ensemble %s ready after %v", e.ConnectString(), time.Since(begin))

	if e.Size() != 3 || len(e.Servers()) != 3 || e.ConnectString() != strings.Join(e.Servers(), ",") {
		t.Fatalf("Size() = %d, Servers() = %v, ConnectString() = %q; want 3 members", e.Size(), e.Servers(), e.ConnectString())
	}
	ports := map[string]bool{}
	leaders, followers := 0, 0
	for i := range 3 {
		if !e.Running(i) {
			t.Errorf("Running(%d) = false", i)
		}
		if reply, err := e.FourLetter(i, "ruok"); err != nil || reply != "imok" {
			t.Errorf("member %d: ruok = %q, %v", i, reply, err)
		}
		conf, err := e.FourLetter(i, "conf")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			fmt.Sprintf("serverId=%d\n", i+1), "tickTime=200\n", "maxSessionTimeout=4000\n",
			"server.1=127.0.0.1:", "server.2=127.0.0.1:", "server.3=127.0.0.1:",
		} {
			if !strings.Contains(conf, want) {
				t.Errorf("member %d: conf lacks %q:\n%s", i, want, conf)
			}
		}
		for _, key := range []string{"clientPort=", "quorumPort=", "electionPort="} {
			_, rest, _ := strings.Cut(conf, key)
			port, _, _ := strings.Cut(rest, "\n")
			if port == "" || ports[port] {
				t.Errorf("member %d: %s%s is missing or taken by another member", i, key, port)
			}
			ports[port] = true
		}
		switch mode, err := e.Mode(i); {
		case err != nil:
			t.Errorf("Mode(%d): %v", i, err)
		case mode == "leader":
			leaders++
		case mode == "follower":
			followers++
		}
	}
	if leaders != 1 || followers != 2 {
		t.Fatalf("modes %v; want one leader and two followers", modes(e))
	}
	l, err := e.Leader()
	if mode, _ := e.Mode(l); err != nil || mode != "leader" {
		t.Errorf("Leader() = %d, %v; member %d is %q", l, err, l, mode)
	}
	if _, err := e.Mode(3); err == nil {
		t.Error("Mode(3) of an ensemble of 3 succeeded")
	}

	// A write through one member is read through every other.
	writer := connectServers(t, []string{e.Addr(0)})
	if _, err := writer.Create("/replicated", []byte("x"), zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3; i++ {
		reader := connectServers(t, []string{e.Addr(i)})
		if _, err := reader.Sync("/replicated"); err != nil {
			t.Fatal(err)
		}
		if data, _, err := reader.Get("/replicated"); err != nil || string(data) != "x" {
			t.Errorf("Get through member %d = %q, %v; want \"x\"", i, data, err)
		}
		if m, err := e.SessionMember(reader.SessionID()); err != nil || m != i {
			t.Errorf("SessionMember of a client of member %d = %d, %v", i, m, err)
		}
	}
}

func TestEnsembleKillLeader(t *testing.T) {
	t.Parallel()
	e := zktest.StartEnsemble(t, 3)
	c := connectServers(t, e.Servers())
	sid := c.SessionID()
	if _, err := c.Create("/ephemeral", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	old, err := e.Leader()
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	if err := e.Kill(old); err != nil {
		t.Fatalf("Kill(%d): %v", old, err)
	}
	if e.Running(old) {
		t.Errorf("Running(%d) after Kill = true", old)
	}
	if _, err := e.Mode(old); err == nil {
		t.Errorf("killed member %d answers srvr", old)
	}
	leader, err := e.WaitReady(readyContext(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("member %d leads %v after member %d was killed; modes %v", leader, time.Since(begin), old, modes(e))
	if leader == old {
		t.Fatalf("the killed member %d leads", old)
	}
	// The client reconnects to a live member with its session.
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, _, err := c.Exists("/ephemeral"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("client not back within %v: %v; events:%s", waitTimeout, err, c.history(0))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c.SessionID() != sid {
		t.Errorf("session 0x%x after the leader was killed; want 0x%x", c.SessionID(), sid)
	}
	if ok, _, err := c.Exists("/ephemeral"); err != nil || !ok {
		t.Errorf("Exists(/ephemeral) = %v, %v; want the node of the live session", ok, err)
	}

	begin = time.Now()
	if err := e.Restart(old); err != nil {
		t.Fatalf("Restart(%d): %v", old, err)
	}
	if _, err := e.WaitReady(readyContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Logf("member %d back after %v; modes %v", old, time.Since(begin), modes(e))
	if mode, err := e.Mode(old); err != nil || mode != "follower" {
		t.Errorf("restarted member %d: Mode() = %q, %v; want follower", old, mode, err)
	}
	// The restarted member has the data.
	r := connectServers(t, []string{e.Addr(old)})
	if ok, _, err := r.Exists("/ephemeral"); err != nil || !ok {
		t.Errorf("Exists(/ephemeral) through the restarted member = %v, %v; want true", ok, err)
	}
}

func TestEnsembleQuorumLoss(t *testing.T) {
	t.Parallel()
	e := zktest.StartEnsemble(t, 3)
	c := connectServers(t, e.Servers())
	if _, err := c.Create("/kept", []byte("k"), zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	leader, err := e.Leader()
	if err != nil {
		t.Fatal(err)
	}
	survivor := (leader + 1) % 3
	stopped := []int{leader, (leader + 2) % 3}
	mark := c.mark()
	for _, i := range stopped {
		if err := e.Stop(i); err != nil {
			t.Fatalf("Stop(%d): %v", i, err)
		}
	}
	c.waitFor(mark, zk.StateDisconnected)
	// The survivor runs but serves nothing.
	if reply, err := e.FourLetter(survivor, "ruok"); err != nil || reply != "imok" {
		t.Errorf("survivor: ruok = %q, %v", reply, err)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, err := e.Mode(survivor); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the survivor still serves without a quorum: modes %v", modes(e))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if l, err := e.Leader(); err == nil {
		t.Errorf("Leader() without a quorum = %d", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if _, err := e.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitReady without a quorum = %v; want context.DeadlineExceeded", err)
	}
	cancel()

	// Members that cannot serve alone are started at once.
	begin := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(stopped))
	for k, i := range stopped {
		wg.Go(func() { errs[k] = e.Restart(i) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitReady(readyContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Logf("quorum back %v after the restarts began; modes %v", time.Since(begin), modes(e))
	c.waitFor(mark, zk.StateHasSession)
	if data, _, err := c.Get("/kept"); err != nil || string(data) != "k" {
		t.Errorf("Get(/kept) after the quorum came back = %q, %v", data, err)
	}
}

func TestEnsembleProxyMovesClient(t *testing.T) {
	t.Parallel()
	e := zktest.StartEnsemble(t, 3)
	ep := e.Proxy(t)
	if got := strings.Split(ep.ConnectString(), ","); len(got) != 3 || got[0] != ep.Proxy(0).Addr() {
		t.Fatalf("ConnectString() = %q; want the 3 proxies in member order", ep.ConnectString())
	}
	c := connectServers(t, ep.Servers())
	sid := c.SessionID()
	on, err := e.SessionMember(sid)
	if err != nil {
		t.Fatal(err)
	}

	// A cut connection comes back, with the session.
	mark := c.mark()
	ep.CloseConnections()
	_, i := c.waitFor(mark, zk.StateDisconnected)
	c.waitFor(i, zk.StateHasSession)
	if c.SessionID() != sid {
		t.Fatalf("session 0x%x after CloseConnections; want 0x%x", c.SessionID(), sid)
	}
	if on, err = e.SessionMember(sid); err != nil {
		t.Fatal(err)
	}

	// Killing the member the client is on moves it to another.
	mark = c.mark()
	begin := time.Now()
	if err := e.Kill(on); err != nil {
		t.Fatal(err)
	}
	_, i = c.waitFor(mark, zk.StateDisconnected)
	back, _ := c.waitFor(i, zk.StateHasSession)
	t.Logf("client on member %d had its session back %v after the kill; events:%s", on, back.at.Sub(begin), c.history(mark))
	if c.SessionID() != sid {
		t.Fatalf("session 0x%x after its member was killed; want 0x%x", c.SessionID(), sid)
	}
	if now, err := e.SessionMember(sid); err != nil || now == on {
		t.Errorf("SessionMember after member %d was killed = %d, %v; want another member", on, now, err)
	}
	if err := e.Restart(on); err != nil {
		t.Fatal(err)
	}
}

func TestEnsembleProxyExpireSession(t *testing.T) {
	t.Parallel()
	e := zktest.StartEnsemble(t, 3)
	ep := e.Proxy(t)
	c := connectServers(t, ep.Servers())
	other := connectServers(t, e.Proxy(t).Servers())
	direct := connectServers(t, e.Servers())
	sid := c.SessionID()
	acl := zk.WorldACL(zk.PermAll)
	if _, err := c.Create("/mine", nil, zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Create("/other", nil, zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}

	mark := c.mark()
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ep.ExpireSession(ctx, sid); err != nil {
		t.Fatalf("ExpireSession: %v", err)
	}
	took := time.Since(begin)
	if _, err := direct.Sync("/"); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := direct.Exists("/mine"); err != nil || ok {
		t.Errorf("Exists(/mine) after ExpireSession = %v, %v; want false", ok, err)
	}
	exp, i := c.waitFor(mark, zk.StateExpired)
	c.waitFor(i, zk.StateHasSession)
	t.Logf("ExpireSession returned after %v; the client saw StateExpired after %v", took, exp.at.Sub(begin))
	if c.SessionID() == sid {
		t.Errorf("client kept session 0x%x", sid)
	}
	// The client of another EnsembleProxy kept its session and node.
	if ok, _, err := direct.Exists("/other"); err != nil || !ok {
		t.Errorf("Exists(/other) = %v, %v; want the node of the untouched session", ok, err)
	}

	// The context bounds the wait for a session that does not go through ep.
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := ep.ExpireSession(ctx, direct.SessionID()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ExpireSession of a session not behind the proxy = %v; want context.DeadlineExceeded", err)
	}
}

func TestEnsembleProxyCutAfterNextCreate(t *testing.T) {
	t.Parallel()
	e := zktest.StartEnsemble(t, 3)
	ep := e.Proxy(t)
	c := connectServers(t, ep.Servers())
	direct := connectServers(t, e.Servers())
	sid := c.SessionID()
	acl := zk.WorldACL(zk.PermAll)
	on, err := e.SessionMember(sid)
	if err != nil {
		t.Fatal(err)
	}

	cut := ep.CutAfterNextCreate()
	if again := ep.CutAfterNextCreate(); again != cut {
		t.Error("a second CutAfterNextCreate before the cut returned another channel")
	}
	if _, _, err := c.Exists("/"); err != nil {
		t.Fatalf("Exists with the proxies armed: %v", err)
	}
	mark := c.mark()
	if _, err := c.Create("/cut", nil, zk.FlagPersistent, acl); !errors.Is(err, zk.ErrConnectionClosed) {
		t.Fatalf("create through the armed proxies = %v; want %v", err, zk.ErrConnectionClosed)
	}
	select {
	case <-cut:
	case <-time.After(waitTimeout):
		t.Fatal("the channel CutAfterNextCreate returned was not closed")
	}
	if _, err := direct.Sync("/cut"); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := direct.Exists("/cut"); err != nil || !ok {
		t.Fatalf("Exists(/cut) = %v, %v; want true", ok, err)
	}
	c.waitFor(mark, zk.StateHasSession)
	if c.SessionID() != sid {
		t.Errorf("session 0x%x after the cut; want 0x%x", c.SessionID(), sid)
	}
	// The client came back to its member, so that the create was not
	// rejected as coming from a session that had moved.
	if now, err := e.SessionMember(sid); err != nil || now != on {
		t.Errorf("SessionMember after the cut = %d, %v; want %d", now, err, on)
	}
	// Every proxy is disarmed: creates through each of them go through.
	for i := range e.Size() {
		ci := connectServers(t, []string{ep.Proxy(i).Addr()})
		if _, err := ci.Create(fmt.Sprintf("/after-%d", i), nil, zk.FlagPersistent, acl); err != nil {
			t.Errorf("create through the proxy of member %d after the cut: %v", i, err)
		}
	}
	// And they can be armed again.
	cut = ep.CutAfterNextCreate()
	if _, err := c.Create("/cut-again", nil, zk.FlagPersistent, acl); !errors.Is(err, zk.ErrConnectionClosed) {
		t.Fatalf("create through the proxies armed again = %v; want %v", err, zk.ErrConnectionClosed)
	}
	<-cut
}

// skipRecorder is a testing.TB whose Skipf records the message instead of
// ending the test.
type skipRecorder struct {
	testing.TB
	skipped bool
	msg     string
}

func (r *skipRecorder) Skipf(format string, args ...any) {
	r.skipped = true
	r.msg = fmt.Sprintf(format, args...)
}

func TestStartEnsembleWithZKServers(t *testing.T) {
	t.Setenv("ZK_SERVERS", "127.0.0.1:2181")
	r := &skipRecorder{TB: t}
	if e := zktest.StartEnsemble(r, 3); e != nil || !r.skipped {
		t.Fatalf("StartEnsemble with ZK_SERVERS set returned %v and skipped=%v; want a skip", e, r.skipped)
	}
	if !strings.Contains(r.msg, "ZK_SERVERS=127.0.0.1:2181") || !strings.Contains(r.msg, "external ensemble") {
		t.Errorf("skip message does not say why: %s", r.msg)
	}
	if _, err := zktest.StartEnsembleServer(3); err == nil || !strings.Contains(err.Error(), "ZK_SERVERS") {
		t.Errorf("StartEnsembleServer with ZK_SERVERS set = %v; want an error naming ZK_SERVERS", err)
	}
}

func TestStartEnsembleServerBadSize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, -1} {
		if e, err := zktest.StartEnsembleServer(n); err == nil {
			e.Close()
			t.Errorf("StartEnsembleServer(%d) succeeded", n)
		}
	}
}

func TestEnsembleRestartAfterClose(t *testing.T) {
	t.Parallel()
	e, err := zktest.StartEnsembleServer(1)
	if err != nil {
		t.Fatal(err)
	}
	if mode, err := e.Mode(0); err != nil || mode != "leader" {
		t.Errorf("the one member of an ensemble of 1: Mode() = %q, %v; want leader", mode, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := e.Restart(0); err == nil {
		t.Error("Restart after Close succeeded")
	}
	if _, err := e.FourLetter(0, "ruok"); err == nil {
		t.Error("a member answers after Close")
	}
}
