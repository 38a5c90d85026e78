package zktest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// quorumMain is the main class of a member of a replicated ensemble.
const quorumMain = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

// Members of an ensemble are given more time to hear from each other than a
// standalone server needs, so that a busy machine does not make followers
// drop their leader: initLimit and syncLimit are counted in ticks.
const (
	ensembleInitLimit = 25 // 5s at the default tick
	ensembleSyncLimit = 10 // 2s at the default tick
)

// An Ensemble is a replicated ZooKeeper ensemble of several members for tests:
// one Java process per member, each on 127.0.0.1 with a client port, a quorum
// port and an election port of its own, and a temporary directory holding its
// configuration, its data (with its myid file) and its log.
//
// Members are numbered from 0 in the methods of an Ensemble; member i has the
// server id i+1 (its myid and its server.N line). Every member is configured
// as those of a Server are (tickTime, four-letter words, container checks),
// and knows every other member from the start: the ensemble is static, it is
// not reconfigured.
//
// Tests stop, kill and restart members one by one to make the ensemble elect
// a new leader, lose its quorum and get it back, and put an EnsembleProxy in
// front of the members to cut or black-hole one client's connections. While
// fewer than a majority of its members run, an ensemble serves no requests.
//
// The methods of an Ensemble may be called from several goroutines at once.
type Ensemble struct {
	cfg     config
	dir     string
	members []*member
	addrs   []string // client addresses, by member

	tls         *tlsSetup // nil unless the members serve TLS
	secureAddrs []string  // TLS client addresses, by member

	mu     sync.Mutex // serialises Close with Restart
	closed bool
}

// StartEnsemble starts an ensemble of n members (n is usually 3) for the test t
// and returns it once every member serves requests and one of them leads. The
// members are started all at once, since none of them serves before a
// majority runs. StartEnsemble registers a cleanup with t that stops every
// member and removes the ensemble's directory, after writing the end of each
// member's log to the test's output if t failed.
//
// An ensemble is always one of the test's own: if the ZK_SERVERS environment
// variable names an external ensemble (see Start), which the test could not
// stop, kill or restart, StartEnsemble skips the test with a message that says
// so. If no ensemble can be started, StartEnsemble calls t.Fatalf with a
// message that says why, and how to install ZooKeeper.
func StartEnsemble(t testing.TB, n int, opts ...Option) *Ensemble {
	t.Helper()
	if spec := os.Getenv("ZK_SERVERS"); strings.TrimSpace(spec) != "" && externalChosen() {
		t.Skipf("zktest: skipping a test that needs a ZooKeeper ensemble of its own to stop, kill and restart: "+
			"ZK_SERVERS=%s names an external ensemble, which it cannot control (unset ZK_SERVERS to run it)", spec)
		return nil
	}
	e, err := StartEnsembleServer(n, opts...)
	if err != nil {
		msg := err.Error()
		if errors.Is(err, errNotFound) && !strings.Contains(msg, installHint) {
			msg += "\n" + installHint
		}
		t.Fatalf("%s", msg)
		return nil
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, m := range e.members {
				t.Logf("zktest: ensemble member %d (%s)\n%s", i, m.addr, m.logTail(30))
			}
		}
		if err := e.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return e
}

// StartEnsembleServer is like StartEnsemble for programs that have no
// testing.TB. It returns an error instead of failing a test (also when
// ZK_SERVERS is set), and the caller must call Close when done with the
// ensemble.
func StartEnsembleServer(n int, opts ...Option) (*Ensemble, error) {
	if n < 1 {
		return nil, fmt.Errorf("zktest: an ensemble of %d members", n)
	}
	if spec := os.Getenv("ZK_SERVERS"); strings.TrimSpace(spec) != "" && externalChosen() {
		return nil, fmt.Errorf("%w: ZK_SERVERS=%s is set, so there is no ensemble of our own to start", errExternal, spec)
	}
	cfg := newConfig(opts)
	backend, j, err := chooseBackend()
	if err != nil {
		return nil, err
	}
	if backend == BackendDocker {
		return dockerBackend.startEnsemble(cfg, n)
	}
	dir, ts, j, err := newWorkDir(cfg, "zktest-ensemble-", j)
	if err != nil {
		return nil, err
	}
	e := &Ensemble{cfg: cfg, dir: dir, tls: ts}
	for range startAttempts {
		err = e.startAll(j, n)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, fmt.Errorf("%w\n(ZooKeeper from %s)", err, j.source)
}

// startAll prepares n members on fresh ports, starts them all at once and
// waits until one leads. On failure it stops every member it started.
func (e *Ensemble) startAll(j *jvm, n int) error {
	ports, err := freePorts(4 * n)
	if err != nil {
		return fmt.Errorf("zktest: choosing ports: %w", err)
	}
	servers := make([]string, n)
	for i := range n {
		servers[i] = fmt.Sprintf("server.%d=127.0.0.1:%d:%d", i+1, ports[n+2*i], ports[n+2*i+1])
	}
	extra := append([]string{
		"initLimit=" + strconv.Itoa(ensembleInitLimit),
		"syncLimit=" + strconv.Itoa(ensembleSyncLimit),
		// A single member is a quorum of one, not a standalone server.
		"standaloneEnabled=false",
		"reconfigEnabled=false",
	}, servers...)
	e.members = make([]*member, n)
	e.addrs = make([]string, n)
	e.secureAddrs = nil
	for i := range n {
		mdir := filepath.Join(e.dir, "member"+strconv.Itoa(i+1))
		if err := os.RemoveAll(mdir); err != nil {
			return fmt.Errorf("zktest: %w", err)
		}
		port, securePort := e.tls.assign(ports[i], ports[3*n+i])
		m, err := newMember(j, quorumMain, mdir, port, securePort, e.tls, e.cfg.tickTime, extra...)
		if err != nil {
			return fmt.Errorf("zktest: %w", err)
		}
		if err := os.WriteFile(filepath.Join(m.dataDir, "myid"), []byte(strconv.Itoa(i+1)+"\n"), 0o644); err != nil {
			return fmt.Errorf("zktest: %w", err)
		}
		e.members[i] = m
		e.addrs[i] = m.addr
		if e.tls != nil {
			e.secureAddrs = append(e.secureAddrs, m.secureAddr)
		}
	}

	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range e.members {
		wg.Go(func() { errs[i] = m.start() })
	}
	wg.Wait()
	err = errors.Join(errs...)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		_, err = e.WaitReady(ctx)
		cancel()
	}
	if err != nil {
		for _, m := range e.members {
			m.stop(true)
		}
		for _, x := range errs {
			if errors.Is(x, errPortTaken) {
				return x
			}
		}
		return err
	}
	return nil
}

// freePorts returns n distinct TCP ports of 127.0.0.1 that were free a
// moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Size returns the number of members.
func (e *Ensemble) Size() int { return len(e.members) }

// ConnectString returns the client addresses of every member, as a
// comma-separated list of host:port to give ZooKeeper clients.
func (e *Ensemble) ConnectString() string { return strings.Join(e.addrs, ",") }

// Servers returns the client addresses of the members, in the form
// go-zookeeper's zk.Connect accepts.
func (e *Ensemble) Servers() []string { return append([]string(nil), e.addrs...) }

// Addr returns the client address (host:port) of member i.
func (e *Ensemble) Addr(i int) string { return e.addrs[i] }

// TickTime returns the members' tickTime.
func (e *Ensemble) TickTime() time.Duration { return e.cfg.tickTime }

// maxSessionTimeout returns the longest session timeout the members grant.
func (e *Ensemble) maxSessionTimeout() time.Duration { return 20 * e.cfg.tickTime }

// member returns member i, or an error if there is none.
func (e *Ensemble) member(i int) (*member, error) {
	if i < 0 || i >= len(e.members) {
		return nil, fmt.Errorf("zktest: no member %d in an ensemble of %d", i, len(e.members))
	}
	return e.members[i], nil
}

// Stop stops member i as Server.Stop stops a server: SIGTERM, SIGKILL if it
// has not exited after a few seconds, and a wait for it to exit. It keeps the
// member's data directory, so Restart can start it again. Stop does nothing if
// the member is not running; it reports an error if the member had exited on
// its own.
func (e *Ensemble) Stop(i int) error {
	m, err := e.member(i)
	if err != nil {
		return err
	}
	return m.stop(false)
}

// Kill kills member i with SIGKILL, as a crash would, and waits for it to
// exit. Like Stop, it keeps the member's data directory.
func (e *Ensemble) Kill(i int) error {
	m, err := e.member(i)
	if err != nil {
		return err
	}
	return m.stop(true)
}

// Restart stops member i if it is running and starts it again on the same
// ports with the same data directory, and waits until it serves requests,
// which it does once it has joined a leader: with too few other members
// running, it does not, and Restart fails after a minute. Start the members
// of an ensemble that has lost its quorum from separate goroutines. Restart
// returns an error after Close.
func (e *Ensemble) Restart(i int) error {
	m, err := e.member(i)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return errors.New("zktest: Restart after Close")
	}
	e.mu.Unlock()
	m.stop(false)
	return m.start()
}

// Running reports whether member i has been started and not stopped or
// killed since.
func (e *Ensemble) Running(i int) bool {
	m, err := e.member(i)
	return err == nil && m.running()
}

// FourLetter sends the four-letter-word command cmd, such as "ruok", "srvr",
// "cons" or "dump", to member i and returns its reply. Every command is
// allowed.
func (e *Ensemble) FourLetter(i int, cmd string) (string, error) {
	m, err := e.member(i)
	if err != nil {
		return "", err
	}
	return fourLetter(m.addr, cmd, flwTimeout)
}

// Mode returns what member i says it is in the reply to srvr: "leader" or
// "follower" (or "observer"). It returns an error if the member does not
// answer or serves no requests, as when it is stopped or the ensemble has
// lost its quorum.
func (e *Ensemble) Mode(i int) (string, error) {
	m, err := e.member(i)
	if err != nil {
		return "", err
	}
	reply, err := fourLetter(m.addr, "srvr", 2*time.Second)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(reply) {
		if mode, ok := strings.CutPrefix(strings.TrimSpace(line), "Mode: "); ok {
			return mode, nil
		}
	}
	return "", fmt.Errorf("zktest: member %d (%s) serves no requests: %s", i, m.addr, strings.TrimSpace(reply))
}

// Leader returns the index of the member that leads now, as the members'
// replies to srvr say. It returns an error if no running member leads, as
// during an election or without a quorum.
func (e *Ensemble) Leader() (int, error) {
	for i, m := range e.members {
		if !m.running() {
			continue
		}
		if mode, err := e.Mode(i); err == nil && mode == "leader" {
			return i, nil
		}
	}
	return -1, errors.New("zktest: no member of the ensemble leads")
}

// WaitReady waits until every running member serves requests and exactly one
// of them leads, and returns the leader's index. It polls the members with
// srvr until ctx is done, and then returns an error that says what each
// member last said.
func (e *Ensemble) WaitReady(ctx context.Context) (int, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		leader, leaders, serving, running := -1, 0, 0, 0
		var status []string
		for i, m := range e.members {
			if !m.running() {
				status = append(status, fmt.Sprintf("member %d: stopped", i))
				continue
			}
			running++
			mode, err := e.Mode(i)
			if err != nil {
				status = append(status, fmt.Sprintf("member %d: %v", i, err))
				continue
			}
			status = append(status, fmt.Sprintf("member %d: %s", i, mode))
			serving++
			if mode == "leader" {
				leader = i
				leaders++
			}
		}
		if running > 0 && serving == running && leaders == 1 {
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("zktest: ensemble %s not ready: %w (%s)", e.ConnectString(), ctx.Err(), strings.Join(status, "; "))
		case <-tick.C:
		}
	}
}

// SessionMember returns the index of the member that the client of the
// session with id sessionID (as go-zookeeper's Conn.SessionID reports it) is
// connected to, according to the members' replies to cons. It returns an
// error if no running member has a connection of that session, as while the
// client reconnects.
func (e *Ensemble) SessionMember(sessionID int64) (int, error) {
	sid := "sid=0x" + strconv.FormatUint(uint64(sessionID), 16)
	for i, m := range e.members {
		if !m.running() {
			continue
		}
		reply, err := fourLetter(m.addr, "cons", 2*time.Second)
		if err != nil {
			continue
		}
		for line := range strings.Lines(reply) {
			if j := strings.Index(line, sid); j >= 0 {
				rest := line[j+len(sid):]
				if rest == "" || !isHexDigit(rest[0]) {
					return i, nil
				}
			}
		}
	}
	return -1, fmt.Errorf("zktest: no member has a connection of session 0x%x", uint64(sessionID))
}

// sessionAlive reports whether any running member still knows the session,
// according to dump (see Server.sessionAlive); known is false if no member
// answered it.
func (e *Ensemble) sessionAlive(sessionID int64) (alive, known bool) {
	var addrs []string
	for _, m := range e.members {
		if m.running() {
			addrs = append(addrs, m.addr)
		}
	}
	if len(addrs) == 0 {
		return false, false
	}
	// A Server of no process of its own stands for the running members.
	return (&Server{addrs: addrs}).sessionAlive(sessionID)
}

// Close stops every member and removes the ensemble's directory. Close is
// what the cleanup registered by StartEnsemble calls; calling it again does
// nothing.
func (e *Ensemble) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var first error
	for _, m := range e.members {
		// The data are about to be deleted: no need for a graceful exit.
		if err := m.discard(); err != nil && first == nil {
			first = err
		}
	}
	if err := os.RemoveAll(e.dir); e.dir != "" && err != nil && first == nil {
		first = fmt.Errorf("zktest: %w", err)
	}
	return first
}

// An EnsembleProxy is a set of Proxies, one in front of each member of an
// Ensemble, for one client (or a few) under test: the client connects to
// ConnectString, which lists the proxies, and so reaches every member through
// them and moves from member to member as ZooKeeper clients do, while the
// test cuts, black-holes or expires its connections and sessions without
// touching the clients of other EnsembleProxies.
//
// The methods of an EnsembleProxy may be called from several goroutines at
// once.
type EnsembleProxy struct {
	e       *Ensemble
	proxies []*Proxy
	ctx     context.Context // canceled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu  sync.Mutex
	cut chan struct{} // returned by CutAfterNextCreate while armed
}

// NewProxy returns a new EnsembleProxy in front of the members of e. The
// caller must call Close when done with it.
func (e *Ensemble) NewProxy() (*EnsembleProxy, error) {
	ctx, cancel := context.WithCancel(context.Background())
	ep := &EnsembleProxy{e: e, ctx: ctx, cancel: cancel}
	for _, addr := range e.addrs {
		p, err := NewProxy(addr)
		if err != nil {
			ep.Close()
			return nil, err
		}
		ep.proxies = append(ep.proxies, p)
	}
	return ep, nil
}

// Proxy returns a new EnsembleProxy in front of the members of e and
// registers a cleanup with t that closes it.
func (e *Ensemble) Proxy(t testing.TB) *EnsembleProxy {
	t.Helper()
	ep, err := e.NewProxy()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { ep.Close() })
	return ep
}

// ConnectString returns the addresses of the proxies, one per member in
// member order, as a comma-separated list of host:port for a client.
func (ep *EnsembleProxy) ConnectString() string { return strings.Join(ep.Servers(), ",") }

// Servers returns the addresses of the proxies, one per member in member
// order, in the form go-zookeeper's zk.Connect accepts.
func (ep *EnsembleProxy) Servers() []string {
	addrs := make([]string, len(ep.proxies))
	for i, p := range ep.proxies {
		addrs[i] = p.Addr()
	}
	return addrs
}

// Proxy returns the proxy in front of member i, to act on the connections to
// that member only.
func (ep *EnsembleProxy) Proxy(i int) *Proxy { return ep.proxies[i] }

// CloseConnections closes every connection open through the proxies, as a
// network failure would: the clients reconnect, to any member, and keep their
// sessions.
func (ep *EnsembleProxy) CloseConnections() {
	for _, p := range ep.proxies {
		p.CloseConnections()
	}
}

// Blackhole turns black-hole mode (see Proxy.Blackhole) on or off in every
// proxy: while it is on, the clients are cut off from every member as by a
// network partition, and their attempts to reconnect fail at once.
func (ep *EnsembleProxy) Blackhole(on bool) {
	for _, p := range ep.proxies {
		p.Blackhole(on)
	}
}

// CutAfterNextCreate arms every proxy to cut the connection through which
// the next create request passes, as Proxy.CutAfterNextCreate does, whichever
// member it goes to. Once one proxy has cut a create, the others are
// disarmed, so only that one create is cut. The returned channel is closed
// once the connection has been cut and the member has answered the create;
// calling CutAfterNextCreate again before then returns the same channel.
//
// In an ensemble a cut create could fail on its own: a client reconnects at
// once, usually to another member, and if that member vouches for the
// session before the create has reached the leader, the leader rejects the
// create because the session has moved. So that the create is performed, as
// with a Proxy, the proxies in front of the members through which no
// connection is open refuse new connections (as in black-hole mode) from the
// moment CutAfterNextCreate is called until the cut is over: the client
// reconnects to the member it was connected to. Until the cut, a client that
// loses that member cannot reconnect.
func (ep *EnsembleProxy) CutAfterNextCreate() <-chan struct{} {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if ep.cut != nil {
		return ep.cut
	}
	all := make(chan struct{})
	ep.cut = all
	armed := make([]<-chan struct{}, len(ep.proxies))
	for i, p := range ep.proxies {
		armed[i] = p.CutAfterNextCreate()
	}
	// Keep the client on its member until the cut is over.
	var pinned []*Proxy
	if slices.ContainsFunc(ep.proxies, func(p *Proxy) bool { return p.connCount() > 0 }) {
		for _, p := range ep.proxies {
			if p.connCount() == 0 {
				p.Blackhole(true)
				pinned = append(pinned, p)
			}
		}
	}
	stop := make(chan struct{})
	var once sync.Once
	fired := func() {
		once.Do(func() {
			close(stop)
			for _, p := range pinned {
				p.Blackhole(false)
			}
			for i, p := range ep.proxies {
				p.mu.Lock()
				if p.cut != nil && (<-chan struct{})(p.cut) == armed[i] {
					p.cut = nil
				}
				p.mu.Unlock()
			}
			ep.mu.Lock()
			ep.cut = nil
			ep.mu.Unlock()
			close(all)
		})
	}
	for _, ch := range armed {
		ep.wg.Go(func() {
			select {
			case <-ch:
				fired()
			case <-stop:
			case <-ep.ctx.Done():
			}
		})
	}
	return all
}

// ExpireSession makes the ensemble expire the session with id sessionID,
// whose client must connect through ep, as Proxy.ExpireSession does for a
// Server: it black-holes every proxy of ep, waits until no running member
// knows the session any more (asking them with dump), and turns black-hole
// mode off, which closes the client's connection so that the client
// reconnects and learns that its session has expired.
//
// ExpireSession returns once the session's ephemeral nodes are deleted. Every
// other session whose client connects through ep expires too, or is about to;
// the clients of other EnsembleProxies are not affected. ctx bounds the wait.
func (ep *EnsembleProxy) ExpireSession(ctx context.Context, sessionID int64) error {
	ep.Blackhole(true)
	defer ep.Blackhole(false)

	start := time.Now()
	bound := ep.e.maxSessionTimeout() + 2*ep.e.TickTime()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		alive, known := ep.e.sessionAlive(sessionID)
		switch {
		case known && !alive:
			return nil
		case !known && time.Since(start) > bound:
			return nil
		case time.Since(start) > 3*bound:
			return fmt.Errorf("zktest: session 0x%x has not expired after %v; does its client connect through the proxy?",
				uint64(sessionID), 3*bound)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// connCount returns the number of connections open through p.
func (p *Proxy) connCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close closes every proxy of ep and waits for its goroutines.
func (ep *EnsembleProxy) Close() error {
	ep.cancel()
	var first error
	for _, p := range ep.proxies {
		if err := p.Close(); err != nil && first == nil {
			first = err
		}
	}
	ep.wg.Wait()
	return first
}
