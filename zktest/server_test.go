package zktest_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/zktest"
)

// needOwnServer stops a test that must stop or restart the server when
// ZK_SERVERS makes Start hand out an external ensemble.
func needOwnServer(t *testing.T, s *zktest.Server) {
	t.Helper()
	if s.External() {
		t.Skip("needs a server of its own, but ZK_SERVERS names an external ensemble")
	}
}

func TestStart(t *testing.T) {
	t.Parallel()
	begin := time.Now()
	s := zktest.Start(t)
	t.Logf("server %s answered ruok after %v", s.ConnectString(), time.Since(begin))

	reply, err := s.FourLetter("ruok")
	if err != nil || reply != "imok" {
		t.Fatalf(`FourLetter("ruok") = %q, %v; want "imok"`, reply, err)
	}
	if s.External() {
		return
	}
	if got := s.ConnectString(); got != s.Addr() || !strings.HasPrefix(got, "127.0.0.1:") {
		t.Errorf("ConnectString() = %q, Addr() = %q; want the same 127.0.0.1:port", got, s.Addr())
	}
	if s.Root() != "" {
		t.Errorf("Root() = %q; want \"\"", s.Root())
	}
	if s.TickTime() != zktest.DefaultTickTime {
		t.Errorf("TickTime() = %v; want %v", s.TickTime(), zktest.DefaultTickTime)
	}
	conf, err := s.FourLetter("conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tickTime=200\n", "minSessionTimeout=400\n", "maxSessionTimeout=4000\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("conf reply lacks %q:\n%s", want, conf)
		}
	}
	srvr, err := s.FourLetter("srvr")
	if err != nil || !strings.Contains(srvr, "Mode: standalone") {
		t.Errorf("srvr reply = %q, %v; want Mode: standalone", srvr, err)
	}
}

func TestWithTickTime(t *testing.T) {
	t.Parallel()
	s := zktest.Start(t, zktest.WithTickTime(100*time.Millisecond))
	needOwnServer(t, s)
	if s.TickTime() != 100*time.Millisecond {
		t.Errorf("TickTime() = %v; want 100ms", s.TickTime())
	}
	conf, err := s.FourLetter("conf")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(conf, "tickTime=100\n") || !strings.Contains(conf, "maxSessionTimeout=2000\n") {
		t.Errorf("conf reply lacks tickTime=100 and maxSessionTimeout=2000:\n%s", conf)
	}
}

func TestClientCreateAndGet(t *testing.T) {
	t.Parallel()
	s := zktest.Start(t)
	c := connect(t, s.ConnectString())
	path := s.Root() + "/direct"
	if _, err := c.Create(path, []byte("data"), zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	got, _, err := c.Get(path)
	if err != nil || string(got) != "data" {
		t.Fatalf("Get(%s) = %q, %v; want \"data\"", path, got, err)
	}
}

func TestStopRestartKeepsZnodesAndSessions(t *testing.T) {
	t.Parallel()
	s := zktest.Start(t)
	needOwnServer(t, s)
	c := connect(t, s.Addr())
	sid := c.SessionID()
	acl := zk.WorldACL(zk.PermAll)
	if _, err := c.Create("/persistent", []byte("p"), zk.FlagPersistent, acl); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create("/ephemeral", []byte("e"), zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}

	mark := c.mark()
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if reply, err := s.FourLetter("ruok"); err == nil {
		t.Fatalf("stopped server answered ruok with %q", reply)
	}
	c.waitFor(mark, zk.StateDisconnected)

	begin := time.Now()
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	t.Logf("Restart took %v", time.Since(begin))
	ev, _ := c.waitFor(mark, zk.StateHasSession)
	t.Logf("client had its session back %v after Restart returned; events:%s", ev.at.Sub(begin), c.history(mark))
	if c.SessionID() != sid {
		t.Errorf("session 0x%x after restart; want the old session 0x%x", c.SessionID(), sid)
	}
	for _, p := range []string{"/persistent", "/ephemeral"} {
		if ok, _, err := c.Exists(p); err != nil || !ok {
			t.Errorf("Exists(%s) after restart = %v, %v; want true", p, ok, err)
		}
	}
}

func TestKillRestartKeepsZnodes(t *testing.T) {
	t.Parallel()
	s := zktest.Start(t)
	needOwnServer(t, s)
	c := connect(t, s.Addr())
	if _, err := c.Create("/survivor", nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	c2 := connect(t, s.Addr())
	if ok, _, err := c2.Exists("/survivor"); err != nil || !ok {
		t.Errorf("Exists(/survivor) after kill and restart = %v, %v; want true", ok, err)
	}
}

func TestStartServerClose(t *testing.T) {
	t.Parallel()
	s, err := zktest.StartServer()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if s.External() {
		return
	}
	if _, err := s.FourLetter("ruok"); err == nil {
		t.Error("server answers after Close")
	}
	if err := s.Restart(); err == nil {
		t.Error("Restart after Close succeeded")
	}
}

// TestExternal runs a private server and points ZK_SERVERS at it.
func TestExternal(t *testing.T) {
	own, err := zktest.StartServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { own.Close() }) // after the cleanups of s1 and s2
	t.Setenv("ZK_SERVERS", " "+own.ConnectString()+" , ")

	s1 := zktest.Start(t)
	s2 := zktest.Start(t)
	if !s1.External() || s1.ConnectString() != own.ConnectString() {
		t.Fatalf("External() = %v, ConnectString() = %q; want true, %q", s1.External(), s1.ConnectString(), own.ConnectString())
	}
	if !strings.HasPrefix(s1.Root(), "/zktest-") || s1.Root() == s2.Root() {
		t.Fatalf("roots %q and %q; want two different /zktest-<random>", s1.Root(), s2.Root())
	}
	if s1.TickTime() != own.TickTime() {
		t.Errorf("TickTime() = %v; want the ensemble's %v", s1.TickTime(), own.TickTime())
	}
	for _, f := range []func() error{s1.Stop, s1.Kill, s1.Restart} {
		if err := f(); err == nil {
			t.Error("Stop, Kill or Restart of an external ensemble succeeded")
		}
	}
	if reply, err := s1.FourLetter("ruok"); err != nil || reply != "imok" {
		t.Errorf(`FourLetter("ruok") = %q, %v`, reply, err)
	}

	c := connect(t, own.Addr())
	if _, err := c.Create(s1.Root()+"/a", nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("creating under Root: %v", err)
	}
	if _, err := c.Create(s1.Root()+"/a/b", nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("creating under Root: %v", err)
	}
	if err := s1.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ok, _, err := c.Exists(s1.Root()); err != nil || ok {
		t.Errorf("Exists(%s) after Close = %v, %v; want false", s1.Root(), ok, err)
	}
	if ok, _, err := c.Exists(s2.Root()); err != nil || !ok {
		t.Errorf("Exists(%s) = %v, %v; want true", s2.Root(), ok, err)
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
}

func TestStartWithoutZooKeeperSaysHowToInstall(t *testing.T) {
	t.Setenv("ZK_SERVERS", "")
	t.Setenv("ZKTEST_BACKEND", "java") // the Java backend's hint, whichever backends are built in
	t.Setenv("ZOOKEEPER_HOME", t.TempDir())
	r := &fatalRecorder{TB: t}
	if s := zktest.Start(r); s != nil {
		t.Fatalf("Start returned a server from an empty ZOOKEEPER_HOME")
	}
	for _, want := range []string{"ZOOKEEPER_HOME=", "sudo apt-get install zookeeper", "ZK_SERVERS"} {
		if !strings.Contains(r.msg, want) {
			t.Errorf("Fatalf message lacks %q:\n%s", want, r.msg)
		}
	}
	if _, err := zktest.StartServer(); err == nil {
		t.Error("StartServer succeeded from an empty ZOOKEEPER_HOME")
	}
}
