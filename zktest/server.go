package zktest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultTickTime is the tick time of the servers Start and StartServer
// launch unless WithTickTime says otherwise. It is short so that sessions
// expire quickly: the server accepts session timeouts from 2 to 20 ticks,
// that is from 400ms to 4s.
const DefaultTickTime = 200 * time.Millisecond

// startAttempts is how many ports Start tries before giving up, in case
// another process takes a port between choosing and binding it.
const startAttempts = 5

// config holds the settings that Options change.
type config struct {
	tickTime time.Duration
	tls      *TLSOptions // nil: no TLS
	image    string      // Docker backend's image, "" for the default
}

// newConfig returns the configuration that opts make of the defaults; a nil Option does nothing.
func newConfig(opts []Option) config {
	cfg := config{tickTime: DefaultTickTime}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return cfg
}

// An Option configures the server that Start or StartServer launches.
type Option func(*config)

// WithTickTime sets the server's tickTime, its basic time unit. The server
// accepts session timeouts from 2 to 20 ticks and checks for expired sessions
// once a tick. The default is DefaultTickTime. It has no effect when
// ZK_SERVERS names an external ensemble.
func WithTickTime(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.tickTime = d
		}
	}
}

// Server is a ZooKeeper server (or external ensemble) for tests.
//
// A Server started by Start or StartServer is a standalone ZooKeeper process
// of its own, listening on a free loopback port and keeping its data in a
// temporary directory. If the ZK_SERVERS environment variable is set, the
// Server instead stands for the ensemble it names; see Start.
//
// The methods of a Server may be called from several goroutines at once.
type Server struct {
	cfg      config
	external bool
	root     string
	tick     time.Duration
	maxSess  time.Duration // the server's maxSessionTimeout
	addrs    []string      // client addresses of the members
	dir      string        // temporary directory, "" for external ensembles
	members  []*member     // nil for external ensembles

	tls         *tlsSetup // nil unless the server serves TLS
	secureAddrs []string  // TLS client addresses of the members

	mu     sync.Mutex
	closed bool
}

// Start starts a standalone ZooKeeper server for the test t and returns it.
// The server listens on a free port of 127.0.0.1 and keeps its data in a new
// temporary directory. Start waits (for up to a minute) until the server
// answers ruok with imok and serves requests, and registers a cleanup with t
// that stops the server and removes the directory, after writing the end of
// the server's log to the test's output if t failed.
//
// If the ZK_SERVERS environment variable is set to a comma-separated list of
// host:port addresses, Start starts nothing and returns a Server that stands
// for that ensemble. Each such Server has a root path of its own, created by
// Start and deleted by the cleanup, under which the test should keep its
// znodes; see Root.
//
// If no server can be found or started, Start calls t.Fatalf with a message
// that says how to install one.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s, err := StartServer(opts...)
	if err != nil && errors.Is(err, errExternal) {
		t.Skipf("%v", err)
		return nil
	}
	if err != nil {
		msg := err.Error()
		if !strings.Contains(msg, installHint) {
			msg += "\n" + installHint
		}
		t.Fatalf("%s", msg)
		return nil
	}
	t.Cleanup(func() {
		if t.Failed() && !s.external {
			t.Logf("zktest: ZooKeeper %s\n%s", s.ConnectString(), s.members[0].logTail(30))
		}
		if err := s.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return s
}

// StartServer is like Start for programs, such as demonstrations and
// benchmarks, that have no testing.TB. It returns an error instead of
// failing a test, and the caller must call Close when done with the server.
func StartServer(opts ...Option) (*Server, error) {
	cfg := newConfig(opts)
	backend, j, err := chooseBackend()
	if err != nil {
		return nil, err
	}
	switch backend {
	case BackendExternal:
		spec := os.Getenv("ZK_SERVERS")
		if cfg.tls != nil {
			return nil, fmt.Errorf("%w: TLS needs a server of the test's own, and ZK_SERVERS=%s names an external one", errExternal, spec)
		}
		return startExternal(cfg, spec)
	case BackendDocker:
		return dockerBackend.startServer(cfg)
	}
	dir, ts, j, err := newWorkDir(cfg, "zktest-", j)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		tick:    cfg.tickTime,
		maxSess: 20 * cfg.tickTime,
		dir:     dir,
		tls:     ts,
	}
	m, err := startMember(j, standaloneMain, dir, cfg.tickTime, ts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w\n(ZooKeeper from %s)", err, j.source)
	}
	s.members = []*member{m}
	s.addrs = []string{m.addr}
	if ts != nil {
		s.secureAddrs = []string{m.secureAddr}
	}
	return s, nil
}

// startMember starts a server in dir on a free port (and a free TLS port if
// ts is not nil), trying other ports if the chosen one turns out to be taken.
func startMember(j *jvm, mainClass, dir string, tick time.Duration, ts *tlsSetup, extra ...string) (*member, error) {
	var err error
	for range startAttempts {
		var ports []int
		ports, err = freePorts(2)
		if err != nil {
			return nil, fmt.Errorf("zktest: choosing a port: %w", err)
		}
		port, securePort := ts.assign(ports[0], ports[1])
		var m *member
		m, err = newMember(j, mainClass, dir, port, securePort, ts, tick, extra...)
		if err != nil {
			return nil, fmt.Errorf("zktest: %w", err)
		}
		err = m.start()
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, errPortTaken) {
			return nil, err
		}
	}
	return nil, err
}

// ConnectString returns the address to give ZooKeeper clients: host:port,
// or a comma-separated list of them for an ensemble.
func (s *Server) ConnectString() string {
	return strings.Join(s.addrs, ",")
}

// Addr returns the host:port address of the server, or of the first member
// of an ensemble.
func (s *Server) Addr() string {
	return s.addrs[0]
}

// Servers returns the host:port addresses of the members of the ensemble,
// or of the one server, in the form go-zookeeper's zk.Connect accepts.
func (s *Server) Servers() []string {
	return append([]string(nil), s.addrs...)
}

// Root returns the path under which a test should keep its znodes. It is ""
// for a server of the test's own, which the test may use entirely. For an
// external ensemble named by ZK_SERVERS it is a unique path of the form
// /zktest-<random>, created by Start and shared with no other Server, so that
// tests using the same ensemble do not see each other's znodes. Tests that
// mean to run against both should build every path as s.Root()+"/...", or
// use Root as the namespace (chroot) of their client.
func (s *Server) Root() string {
	return s.root
}

// External reports whether s stands for an external ensemble named by the
// ZK_SERVERS environment variable, rather than a server of its own. An
// external ensemble cannot be stopped, killed or restarted.
func (s *Server) External() bool {
	return s.external
}

// TickTime returns the server's tickTime. For an external ensemble it is the
// value its conf command reports, or ZooKeeper's default of 2s if conf is not
// available.
func (s *Server) TickTime() time.Duration {
	return s.tick
}

// maxSessionTimeout returns the longest session timeout the server grants.
func (s *Server) maxSessionTimeout() time.Duration {
	return s.maxSess
}

// errExternal is returned by the methods that cannot act on an external
// ensemble.
var errExternal = errors.New("zktest: cannot control an external ZooKeeper ensemble (ZK_SERVERS)")

// Stop stops the server: it sends it SIGTERM, sends SIGKILL if it has not
// exited after a few seconds, and waits for it to exit. It keeps the data
// directory, so Restart can start the server again with the same znodes and
// sessions. Stop does nothing if the server is not running. It reports an
// error if the server had exited on its own, and for an external ensemble.
func (s *Server) Stop() error {
	if s.external {
		return errExternal
	}
	return s.eachMember(func(m *member) error { return m.stop(false) })
}

// Kill kills the server with SIGKILL, as a crash would, and waits for it to
// exit. Like Stop, it keeps the data directory.
func (s *Server) Kill() error {
	if s.external {
		return errExternal
	}
	return s.eachMember(func(m *member) error { return m.stop(true) })
}

// Restart stops the server if it is running and starts it again on the same
// port with the same data directory. Znodes survive, and so do sessions: the
// server restarts their timeouts when it starts, so a client that reconnects
// in time keeps its session and its ephemeral nodes. Restart waits until the
// server serves requests again. It returns an error for an external ensemble
// and after Close.
func (s *Server) Restart() error {
	if s.external {
		return errExternal
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("zktest: Restart after Close")
	}
	for _, m := range s.members {
		m.stop(false)
	}
	for _, m := range s.members {
		if err := m.start(); err != nil {
			return err
		}
	}
	return nil
}

// eachMember calls f for every member and returns the first error.
func (s *Server) eachMember(f func(*member) error) error {
	var first error
	for _, m := range s.members {
		if err := f(m); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// FourLetter sends the four-letter-word command cmd, such as "ruok", "srvr",
// "stat", "cons", "conf" or "mntr", to the server (the first member of an
// ensemble) and returns its reply. A server of the test's own allows every
// command; an external ensemble may not, and then replies that the command is
// not executed.
func (s *Server) FourLetter(cmd string) (string, error) {
	return fourLetter(s.Addr(), cmd, flwTimeout)
}

// sessionAlive reports whether any member still knows the session with the
// given id, according to the dump command, which lists the sessions the
// server tracks (connected or not) and the sessions that own ephemeral
// nodes. known is false if no member answered dump.
//
// The cons command would not do: it lists connections, so a session whose
// connection has just closed would look expired.
func (s *Server) sessionAlive(sessionID int64) (alive, known bool) {
	sid := "0x" + strconv.FormatUint(uint64(sessionID), 16)
	for _, addr := range s.addrs {
		reply, err := fourLetter(addr, "dump", 2*time.Second)
		if err != nil || notExecuted(reply) || !strings.Contains(reply, "Session") {
			continue
		}
		known = true
		for line := range strings.Lines(reply) {
			// Session lines are "0x<id>" under the session tracker,
			// "0x<id>\t<timeout>" on followers, "0x<id>:" above a
			// session's ephemeral nodes.
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), sid)
			if ok && (rest == "" || !isHexDigit(rest[0])) {
				return true, true
			}
		}
	}
	return false, known
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Close stops the server and removes its temporary directory. For an
// external ensemble it deletes the znodes under Root. Close is what the
// cleanup registered by Start calls; calling it again does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.external {
		return deleteTree(s.addrs, s.root)
	}
	// The data are about to be deleted: no need to let the server exit
	// gracefully, which takes a few hundred milliseconds.
	err := s.eachMember(func(m *member) error { return m.discard() })
	if rerr := os.RemoveAll(s.dir); s.dir != "" && rerr != nil && err == nil {
		err = fmt.Errorf("zktest: %w", rerr)
	}
	return err
}
