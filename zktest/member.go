package zktest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	standaloneMain = "org.apache.zookeeper.server.ZooKeeperServerMain"

	readyTimeout = 60 * time.Second // how long a server may take to answer ruok
	stopTimeout  = 5 * time.Second  // how long a server may take to exit on SIGTERM
	flwTimeout   = 10 * time.Second // timeout of a four-letter-word exchange
	pollInterval = 50 * time.Millisecond
)

// member is one ZooKeeper server process: the whole of a standalone server,
// or one member of an ensemble. It owns a directory holding the server's
// configuration file, its data directory and its log file.
type member struct {
	jvm       *jvm
	mainClass string
	dir       string // holds cfgFile, logFile and dataDir
	dataDir   string
	cfgFile   string
	logFile   string
	port      int    // plain client port, 0 if the member serves only TLS
	addr      string // client address, 127.0.0.1:port (the secure one if port is 0)

	tls        *tlsSetup // nil unless the member serves TLS
	securePort int       // TLS client port, 0 without TLS
	secureAddr string    // TLS client address, "" without TLS

	logStart int64 // size of the log file when the process was last started

	mu   sync.Mutex // serialises start and stop
	proc *process   // nil unless started and not yet stopped

	ctr container // the Docker backend's container; nil for a Java process
}

// process is a running (or exited) server JVM.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been waited for
	err  error         // result of cmd.Wait, valid once done is closed
}

// errPortTaken reports that another process holds a server's port.
var errPortTaken = errors.New("zktest: port already in use")

// newMember prepares the directory dir for a server listening on
// 127.0.0.1:port, and serving TLS on 127.0.0.1:securePort if ts is not nil,
// and writes its configuration file; port is 0 for a member that serves only
// TLS. Extra configuration lines (such as an ensemble's server.N lines) are
// appended verbatim.
func newMember(j *jvm, mainClass, dir string, port, securePort int, ts *tlsSetup, tick time.Duration, extra ...string) (*member, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	m := &member{
		jvm:       j,
		mainClass: mainClass,
		dir:       dir,
		dataDir:   filepath.Join(dir, "data"),
		cfgFile:   filepath.Join(dir, "zoo.cfg"),
		logFile:   filepath.Join(dir, "zookeeper.log"),
		port:      port,
		addr:      net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		tls:       ts,
	}
	if ts != nil {
		m.securePort = securePort
		m.secureAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(securePort))
		if port == 0 {
			m.addr = m.secureAddr
		}
	}
	if err := os.MkdirAll(m.dataDir, 0o755); err != nil {
		return nil, err
	}
	if err := m.writeConfig(tick, extra); err != nil {
		return nil, err
	}
	return m, nil
}

// writeConfig writes the server's zoo.cfg.
func (m *member) writeConfig(tick time.Duration, extra []string) error {
	ticks := max(tick.Milliseconds(), 1)
	lines := []string{
		"tickTime=" + strconv.FormatInt(ticks, 10),
		"initLimit=10",
		"syncLimit=5",
		"dataDir=" + filepath.ToSlash(m.dataDir),
		"4lw.commands.whitelist=*",
		"admin.enableServer=false",
		"maxClientCnxns=0",
		// Test data is small and disposable: keep transaction log files
		// small and do not wait for the disk. Written data survives the
		// process being killed, though not the machine crashing.
		"preAllocSize=1024",
		"forceSync=no",
	}
	if m.port != 0 {
		lines = append(lines, "clientPort="+strconv.Itoa(m.port), "clientPortAddress=127.0.0.1")
	}
	lines = append(lines, m.tls.configLines(m.securePort)...)
	lines = append(lines, extra...)
	return os.WriteFile(m.cfgFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// start launches the server and waits until it serves requests. The
// server's standard output and standard error are appended to its log file.
// On failure the server is stopped and the error ends with the tail of the log.
func (m *member) start() error {
	if m.ctr != nil {
		return m.ctr.start()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil {
		return fmt.Errorf("zktest: server %s is already running", m.addr)
	}
	args, err := m.jvm.command(m.dir, m.mainClass, m.cfgFile)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(m.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "==== zktest: %s starting ZooKeeper on %s\n", time.Now().Format(time.RFC3339Nano), m.addr)
	if fi, err := logf.Stat(); err == nil {
		m.logStart = fi.Size()
	}
	cmd := exec.Command(m.jvm.java, args...)
	cmd.Dir = m.dir
	// Passing an *os.File makes the child write to the file directly,
	// without copying goroutines in this process.
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return fmt.Errorf("zktest: starting %s: %w", m.jvm.java, err)
	}
	m.registerTLS()
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	m.proc = p

	if err := m.waitReady(p); err != nil {
		m.stopLocked(true)
		return fmt.Errorf("%w\n%s", err, m.logTail(40))
	}
	return nil
}

// waitReady waits until the server answers ruok with imok and serves
// requests. It checks that the conf reply names the server's own data
// directory, which shows that no other server answered on its port.
func (m *member) waitReady(p *process) error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			if m.logMentions("Address already in use", "BindException") {
				return fmt.Errorf("%w: ZooKeeper could not bind %s", errPortTaken, m.addr)
			}
			return fmt.Errorf("zktest: ZooKeeper on %s exited during startup (%v)", m.addr, p.err)
		case <-tick.C:
		}
		// A server answers imok as soon as it listens, and "not currently
		// serving requests" to other commands until it has loaded its data.
		if reply, err := fourLetter(m.addr, "ruok", time.Second); err == nil && reply == "imok" {
			conf, err := fourLetter(m.addr, "conf", time.Second)
			switch {
			case err != nil || strings.Contains(conf, "not currently serving"):
				// Not ready yet.
			case strings.Contains(conf, "dataDir="+filepath.ToSlash(m.dataDir)):
				return nil
			case strings.Contains(conf, "dataDir="):
				return fmt.Errorf("%w: another ZooKeeper answers on %s", errPortTaken, m.addr)
			default:
				// A reply cut short: a member of an ensemble that fails
				// while it syncs with its leader answers conf in part
				// before it tries again. Not ready yet.
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("zktest: ZooKeeper on %s did not serve requests within %v", m.addr, readyTimeout)
		}
	}
}

// stop stops the server, gracefully unless kill is set. It reports an error
// if the server had already exited on its own, which means it crashed.
func (m *member) stop(kill bool) error {
	if m.ctr != nil {
		return m.ctr.stop(kill)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopLocked(kill)
}

func (m *member) stopLocked(kill bool) error {
	p := m.proc
	if p == nil {
		return nil
	}
	m.proc = nil
	defer m.unregisterTLS()
	select {
	case <-p.done:
		return fmt.Errorf("zktest: ZooKeeper on %s had exited unexpectedly (%v)\n%s", m.addr, p.err, m.logTail(40))
	default:
	}
	if kill || p.cmd.Process.Signal(syscall.SIGTERM) != nil {
		p.cmd.Process.Kill()
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// discard stops the server for good, its data about to be deleted: it kills
// a Java process, and removes a container with its data.
func (m *member) discard() error {
	if m.ctr != nil {
		return m.ctr.remove()
	}
	return m.stop(true)
}

// running reports whether the server process has been started and not
// stopped.
func (m *member) running() bool {
	if m.ctr != nil {
		return m.ctr.running()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc != nil
}

// logTail returns up to the last n lines of the server's log file, as a
// block of text for an error message.
func (m *member) logTail(n int) string {
	if m.ctr != nil {
		return m.ctr.logTail(n)
	}
	b, err := os.ReadFile(m.logFile)
	if err != nil {
		return fmt.Sprintf("(no ZooKeeper log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("--- last lines of %s ---\n%s\n---", m.logFile, strings.Join(lines, "\n"))
}

// logMentions reports whether the server's log, since the process was last
// started, contains any of the strings.
func (m *member) logMentions(s ...string) bool {
	b, err := os.ReadFile(m.logFile)
	if err != nil {
		return false
	}
	if int64(len(b)) >= m.logStart {
		b = b[m.logStart:]
	}
	for _, x := range s {
		if strings.Contains(string(b), x) {
			return true
		}
	}
	return false
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
