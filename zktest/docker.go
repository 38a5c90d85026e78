//go:build zktest_docker

package zktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The Docker backend runs each server in a container of its own through the
// docker command, so that it adds no module to its users' builds. Every
// container uses the host's network, and its server listens on 127.0.0.1
// ports chosen as the Java backend chooses them: clients, proxies and the
// four-letter-word commands reach it as they reach a Java server. It is
// configured through the official zookeeper image's environment variables
// (see DefaultImage), keeps its data in the container, which Stop and Kill
// stop and Restart starts again, and is removed, with its data, by Close.
//
// Containers are labelled with the process that started them (its id, host and
// PID namespace); the first start in a process removes the labelled containers
// of processes of the same host and namespace that are gone (a test binary
// killed before its cleanup could run: SIGKILL, a -timeout panic, Ctrl-C).

// Labels of the containers the Docker backend runs.
const (
	dockerLabel     = "org.gocurator.zktest"      // on every container; its value is "1"
	dockerLabelPID  = "org.gocurator.zktest.pid"  // the process that started it
	dockerLabelHost = "org.gocurator.zktest.host" // the host that process runs on
	// dockerLabelPIDNS is the PID namespace of that process: only a process of the same namespace
	// can tell whether it still runs (a test in a container of its own, sharing the host's name
	// and Docker socket, sees every other namespace's processes as gone).
	dockerLabelPIDNS = "org.gocurator.zktest.pidns"
	dockerLabelAddr  = "org.gocurator.zktest.addr" // the server's client address
)

const (
	dockerTimeout    = 2 * time.Minute // bound of a docker command
	dockerRunTimeout = 10 * time.Minute
	inspectInterval  = 500 * time.Millisecond // how often a starting container's state is checked
)

func init() { dockerBackend = dockerDriver{} }

// dockerDriver implements the Docker backend.
type dockerDriver struct{}

var (
	dockerOnce  sync.Once
	dockerErr   error
	sweepOnce   sync.Once
	errNoDocker = fmt.Errorf("%w: no docker command on PATH", ErrDockerUnavailable)
)

// available reports whether the docker command is there and the daemon
// answers; it asks once per process.
func (dockerDriver) available() error {
	dockerOnce.Do(func() {
		if _, err := exec.LookPath("docker"); err != nil {
			dockerErr = errNoDocker
			return
		}
		if _, err := docker(30*time.Second, "version", "--format", "{{.Server.Version}}"); err != nil {
			dockerErr = fmt.Errorf("%w: the Docker daemon does not answer: %v", ErrDockerUnavailable, err)
		}
	})
	return dockerErr
}

// docker runs the docker command with args and returns its standard output,
// trimmed. The error holds its standard error.
func docker(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			msg = fmt.Sprintf("no answer within %v", timeout)
		}
		return "", fmt.Errorf("docker %s: %w: %s", args[0], err, msg)
	}
	return strings.TrimSpace(stdout.String()), nil
}

// dockerImage returns the image to run: WithImage's, else ZKTEST_IMAGE's,
// else DefaultImage.
func dockerImage(cfg config) string {
	if cfg.image != "" {
		return cfg.image
	}
	if img := strings.TrimSpace(os.Getenv("ZKTEST_IMAGE")); img != "" {
		return img
	}
	return DefaultImage
}

// errDockerTLS is returned for WithTLS under the Docker backend.
var errDockerTLS = fmt.Errorf("zktest: the Docker backend does not serve TLS (WithTLS); use the Java backend (ZKTEST_BACKEND=%s): %w", BackendJava, errors.ErrUnsupported)

// startServer starts a standalone server in a container.
func (dockerDriver) startServer(cfg config) (*Server, error) {
	if cfg.tls != nil {
		return nil, errDockerTLS
	}
	sweepStale()
	var err error
	for range startAttempts {
		var ports []int
		ports, err = freePorts(3)
		if err != nil {
			return nil, fmt.Errorf("zktest: choosing ports: %w", err)
		}
		spec := containerSpec{
			image:      dockerImage(cfg),
			myid:       1,
			clientPort: ports[0],
			servers:    []string{fmt.Sprintf("server.1=127.0.0.1:%d:%d", ports[1], ports[2])},
			standalone: true,
			tick:       cfg.tickTime,
			initLimit:  10,
			syncLimit:  5,
		}
		var m *member
		m, err = createMember(spec)
		if err != nil {
			return nil, err
		}
		if err = m.start(); err == nil {
			return &Server{
				cfg:     cfg,
				tick:    cfg.tickTime,
				maxSess: 20 * cfg.tickTime,
				members: []*member{m},
				addrs:   []string{m.addr},
			}, nil
		}
		m.discard()
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, fmt.Errorf("%w\n(ZooKeeper from the image %s)", err, dockerImage(cfg))
}

// startEnsemble starts an ensemble of n members, a container each, all at
// once, and waits until one leads.
func (dockerDriver) startEnsemble(cfg config, n int) (*Ensemble, error) {
	if cfg.tls != nil {
		return nil, errDockerTLS
	}
	sweepStale()
	var err error
	for range startAttempts {
		var e *Ensemble
		e, err = startDockerEnsemble(cfg, n)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, fmt.Errorf("%w\n(ZooKeeper from the image %s)", err, dockerImage(cfg))
}

// startDockerEnsemble makes one attempt at starting an ensemble on fresh
// ports; on failure it removes every container it made.
func startDockerEnsemble(cfg config, n int) (*Ensemble, error) {
	ports, err := freePorts(3 * n)
	if err != nil {
		return nil, fmt.Errorf("zktest: choosing ports: %w", err)
	}
	servers := make([]string, n)
	for i := range n {
		servers[i] = fmt.Sprintf("server.%d=127.0.0.1:%d:%d", i+1, ports[n+2*i], ports[n+2*i+1])
	}
	e := &Ensemble{cfg: cfg, members: make([]*member, 0, n), addrs: make([]string, 0, n)}
	fail := func(err error) (*Ensemble, error) {
		for _, m := range e.members {
			m.discard()
		}
		return nil, err
	}
	for i := range n {
		m, err := createMember(containerSpec{
			image:      dockerImage(cfg),
			myid:       i + 1,
			clientPort: ports[i],
			servers:    servers,
			standalone: false, // a single member is a quorum of one
			tick:       cfg.tickTime,
			initLimit:  ensembleInitLimit,
			syncLimit:  ensembleSyncLimit,
		})
		if err != nil {
			return fail(err)
		}
		e.members = append(e.members, m)
		e.addrs = append(e.addrs, m.addr)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range e.members {
		wg.Go(func() { errs[i] = m.start() })
	}
	wg.Wait()
	for _, x := range errs {
		if errors.Is(x, errPortTaken) {
			return fail(x)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if _, err := e.WaitReady(ctx); err != nil {
		return fail(err)
	}
	return e, nil
}

// containerSpec is what a member's container is created with.
type containerSpec struct {
	image      string
	myid       int
	clientPort int
	servers    []string // server.N lines, for ZOO_SERVERS
	standalone bool     // ZOO_STANDALONE_ENABLED
	tick       time.Duration
	initLimit  int
	syncLimit  int
}

// env returns the environment of a member's container: the official image's
// contract, with a data directory of the container's own name (which conf
// reports, so that the server on the port is known to be this one).
func (s containerSpec) env(dataDir string) []string {
	extra := []string{
		"clientPort=" + strconv.Itoa(s.clientPort),
		"clientPortAddress=127.0.0.1",
		// Test data is small and disposable: small transaction log
		// files, no waiting for the disk.
		"preAllocSize=1024",
		"forceSync=no",
		"reconfigEnabled=false",
	}
	jvmFlags := []string{
		"-XX:+UseSerialGC",
		"-XX:TieredStopAtLevel=1", // start fast; tests are short
		"-XX:-UsePerfData",
		"-Dzookeeper.admin.enableServer=false",
		// Let TTL nodes (createTTL) be created.
		"-Dzookeeper.extendedTypesEnabled=true",
		// Delete empty container nodes within about a second rather than a minute.
		"-Dznode.container.checkIntervalMs=1000",
	}
	return []string{
		"ZOO_MY_ID=" + strconv.Itoa(s.myid),
		"ZOO_SERVERS=" + strings.Join(s.servers, " "),
		"ZOO_TICK_TIME=" + strconv.FormatInt(max(s.tick.Milliseconds(), 1), 10),
		"ZOO_INIT_LIMIT=" + strconv.Itoa(s.initLimit),
		"ZOO_SYNC_LIMIT=" + strconv.Itoa(s.syncLimit),
		"ZOO_STANDALONE_ENABLED=" + strconv.FormatBool(s.standalone),
		"ZOO_ADMINSERVER_ENABLED=false", // its port, 8080, would be shared by every container
		"ZOO_MAX_CLIENT_CNXNS=0",
		"ZOO_4LW_COMMANDS_WHITELIST=*",
		"ZOO_DATA_DIR=" + dataDir,
		"ZOO_CFG_EXTRA=" + strings.Join(extra, " "),
		"JVMFLAGS=" + strings.Join(jvmFlags, " "),
	}
}

// createMember creates (without starting it) the container of a member.
func createMember(s containerSpec) (*member, error) {
	var b [4]byte
	rand.Read(b[:])
	name := fmt.Sprintf("zktest-%d-%d-%s", os.Getpid(), s.myid, hex.EncodeToString(b[:]))
	dataDir := "/data/" + name
	host, _ := os.Hostname()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.clientPort))
	args := []string{"create", "--name", name, "--network", "host",
		"--label", dockerLabel + "=1",
		"--label", dockerLabelPID + "=" + strconv.Itoa(os.Getpid()),
		"--label", dockerLabelHost + "=" + host,
		"--label", dockerLabelPIDNS + "=" + pidNamespace(),
		"--label", dockerLabelAddr + "=" + addr,
		// The data directory must exist before the image's entrypoint
		// runs: a volume of the container's own, removed with it.
		"-v", dataDir,
	}
	for _, kv := range s.env(dataDir) {
		args = append(args, "-e", kv)
	}
	args = append(args, s.image)
	if _, err := docker(dockerRunTimeout, args...); err != nil {
		return nil, fmt.Errorf("zktest: creating a ZooKeeper container of %s: %w", s.image, err)
	}
	return &member{
		port:    s.clientPort,
		addr:    addr,
		dataDir: dataDir,
		ctr:     &dockerContainer{name: name, image: s.image, addr: addr, dataDir: dataDir},
	}, nil
}

// dockerContainer is a member's container.
type dockerContainer struct {
	name    string
	image   string
	addr    string // the server's client address
	dataDir string // in the container

	mu      sync.Mutex // serialises start, stop and remove
	started bool       // started and not stopped since
	removed bool
}

// start starts the container and waits until its server serves requests.
func (c *dockerContainer) start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return fmt.Errorf("zktest: the container of %s has been removed", c.addr)
	}
	if c.started {
		return fmt.Errorf("zktest: server %s is already running", c.addr)
	}
	if _, err := docker(dockerTimeout, "start", c.name); err != nil {
		return fmt.Errorf("zktest: starting the container of %s: %w\n%s", c.addr, err, c.logTail(40))
	}
	c.started = true
	if err := c.waitReady(); err != nil {
		c.stopLocked(true)
		return fmt.Errorf("%w\n%s", err, c.logTail(40))
	}
	return nil
}

// waitReady waits until the server answers ruok with imok and serves
// requests, and its conf names the container's own data directory, which
// shows that no other server answered on its port.
func (c *dockerContainer) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	var checked time.Time
	for {
		<-tick.C
		if time.Since(checked) >= inspectInterval {
			checked = time.Now()
			if up, err := c.isRunning(); err == nil && !up {
				if logs := c.logTail(200); strings.Contains(logs, "Address already in use") || strings.Contains(logs, "BindException") {
					return fmt.Errorf("%w: ZooKeeper could not bind %s", errPortTaken, c.addr)
				}
				return fmt.Errorf("zktest: ZooKeeper container %s (%s) exited during startup", c.name, c.addr)
			}
		}
		if reply, err := fourLetter(c.addr, "ruok", time.Second); err == nil && reply == "imok" {
			conf, err := fourLetter(c.addr, "conf", time.Second)
			switch {
			case err != nil || strings.Contains(conf, "not currently serving"):
			case strings.Contains(conf, "dataDir="+c.dataDir):
				return nil
			case strings.Contains(conf, "dataDir="):
				return fmt.Errorf("%w: another ZooKeeper answers on %s", errPortTaken, c.addr)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("zktest: ZooKeeper container %s (%s) did not serve requests within %v", c.name, c.addr, readyTimeout)
		}
	}
}

// isRunning asks Docker whether the container runs.
func (c *dockerContainer) isRunning() (bool, error) {
	out, err := docker(dockerTimeout, "inspect", "--format", "{{.State.Running}}", c.name)
	if err != nil {
		return false, err
	}
	return out == "true", nil
}

// stop stops the container: docker stop (SIGTERM, then SIGKILL after a few
// seconds) or, if kill is set, docker kill (SIGKILL), and waits until it has
// stopped. The container and its data are kept.
func (c *dockerContainer) stop(kill bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopLocked(kill)
}

func (c *dockerContainer) stopLocked(kill bool) error {
	if !c.started {
		return nil
	}
	c.started = false
	if up, err := c.isRunning(); err == nil && !up {
		return fmt.Errorf("zktest: ZooKeeper container %s (%s) had exited unexpectedly\n%s", c.name, c.addr, c.logTail(40))
	}
	if kill {
		if _, err := docker(dockerTimeout, "kill", c.name); err != nil {
			if up, ierr := c.isRunning(); ierr != nil || up {
				return fmt.Errorf("zktest: killing ZooKeeper container %s: %w", c.name, err)
			}
		}
		if _, err := docker(dockerTimeout, "wait", c.name); err != nil {
			return fmt.Errorf("zktest: waiting for ZooKeeper container %s: %w", c.name, err)
		}
		return nil
	}
	secs := strconv.Itoa(int(stopTimeout / time.Second))
	if _, err := docker(dockerTimeout, "stop", "-t", secs, c.name); err != nil {
		return fmt.Errorf("zktest: stopping ZooKeeper container %s: %w", c.name, err)
	}
	return nil
}

// running reports whether the container was started and not stopped since.
func (c *dockerContainer) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// logTail returns up to the last n lines of the container's output.
func (c *dockerContainer) logTail(n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "logs", "--tail", strconv.Itoa(n), c.name).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(no log of container %s: %v: %s)", c.name, err, strings.TrimSpace(string(out)))
	}
	return fmt.Sprintf("--- last lines of container %s (%s) ---\n%s\n---", c.name, c.image, strings.TrimRight(string(out), "\n"))
}

// remove removes the container and its volumes, running or not.
func (c *dockerContainer) remove() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return nil
	}
	c.started = false
	if _, err := docker(dockerTimeout, "rm", "-f", "-v", c.name); err != nil && !strings.Contains(err.Error(), "No such container") {
		return fmt.Errorf("zktest: removing ZooKeeper container %s: %w", c.name, err)
	}
	c.removed = true
	return nil
}

// sweepStale removes, once per process, the containers left behind by
// processes that are gone.
func sweepStale() {
	sweepOnce.Do(func() { sweepStaleContainers() })
}

// sweepStaleContainers removes the containers labelled as zktest's by a
// process of this host that no longer runs, and returns their names.
func sweepStaleContainers() ([]string, error) {
	out, err := docker(dockerTimeout, "ps", "-a", "--filter", "label="+dockerLabel,
		"--format", `{{.Names}} {{.Label "`+dockerLabelPID+`"}} {{.Label "`+dockerLabelHost+`"}} {{.Label "`+dockerLabelPIDNS+`"}}`)
	if err != nil {
		return nil, fmt.Errorf("zktest: listing containers: %w", err)
	}
	host, _ := os.Hostname()
	ns := pidNamespace()
	if ns == "" {
		return nil, nil // cannot tell our processes from another namespace's: sweep nothing
	}
	var stale []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		// Only containers of this host and this PID namespace: elsewhere a live process looks gone.
		if len(f) != 4 || f[2] != host || f[3] != ns {
			continue
		}
		if pid, err := strconv.Atoi(f[1]); err == nil && !processAlive(pid) {
			stale = append(stale, f[0])
		}
	}
	if len(stale) == 0 {
		return nil, nil
	}
	if _, err := docker(dockerTimeout, append([]string{"rm", "-f", "-v"}, stale...)...); err != nil {
		return nil, fmt.Errorf("zktest: removing stale containers: %w", err)
	}
	return stale, nil
}

// pidNamespace names this process's PID namespace ("pid:[4026531836]"), or "" if it cannot be read.
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil || strings.ContainsAny(ns, " \t\n") {
		return ""
	}
	return ns
}

// processAlive reports whether a process with the given id runs here; it
// errs on the side of yes.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || !(errors.Is(err, os.ErrProcessDone) || errors.Is(err, syscall.ESRCH))
}
