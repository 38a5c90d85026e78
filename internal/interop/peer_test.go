package interop

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gocurator/curator/internal/javart"
)

// installHint says how to get what the Java peer needs.
const installHint = `the interop tests run Apache Curator in a Java peer; ` + javart.InstallHint + `
(or set GOCURATOR_SKIP_JAVA=1 to skip these tests)`

// peerSource is the Java peer's source, relative to this package's directory.
const peerSource = "../../testdata/curatorpeer/CuratorPeer.java"

// javaRuntime is how to run the compiled peer.
type javaRuntime struct {
	java      string
	classpath string
}

// buildPeer compiles the peer into dir and returns how to run it.
func buildPeer(dir string) (*javaRuntime, error) {
	p, err := javart.Build(peerSource, dir)
	if err != nil {
		return nil, err
	}
	return &javaRuntime{java: p.Java, classpath: p.Classpath}, nil
}

// peer is one running Java peer: a JVM with one Curator client (one ZooKeeper session).
type peer struct {
	t       testing.TB
	name    string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	answers chan string // one per command; closed when stdout ends
	stderr  *syncBuffer
	sid     int64

	mu sync.Mutex // one command at a time
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPeers starts n Java peers at once and connects each to the shared server with a session of
// its own. They are stopped at the end of the test.
func startPeers(t testing.TB, n int) []*peer {
	t.Helper()
	requireJava(t)
	peers := make([]*peer, n)
	for i := range peers {
		peers[i] = launch(t, fmt.Sprintf("java-%d", i+1))
	}
	for _, p := range peers {
		p.send(fmt.Sprintf("connect %s %d", testServer.ConnectString(), sessionTimeout.Milliseconds()))
	}
	for _, p := range peers {
		ans, err := p.answer(60 * time.Second)
		if err != nil {
			t.Fatalf("%s: connect: %v", p.name, err)
		}
		sid, perr := strconv.ParseInt(strings.TrimPrefix(ans, "OK "), 16, 64)
		if !strings.HasPrefix(ans, "OK ") || perr != nil {
			t.Fatalf("%s: connect: %s", p.name, ans)
		}
		p.sid = sid
	}
	return peers
}

// launch starts a peer process; it is stopped (stdin closed, then killed if need be) at cleanup.
func launch(t testing.TB, name string) *peer {
	t.Helper()
	cmd := exec.Command(javaRT.java,
		"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", // a quicker start
		"-XX:-UsePerfData", // no shared hsperfdata file, whose lock a concurrent JVM may hold (and then warns on stdout)
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-Dorg.slf4j.simpleLogger.logFile=System.err",
		"-cp", javaRT.classpath, "CuratorPeer")
	p := &peer{t: t, name: name, cmd: cmd, answers: make(chan string, 16), stderr: &syncBuffer{}}
	cmd.Stderr = p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(p.answers)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			p.answers <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		p.stdin.Close() // the peer closes its client and exits
		deadline := time.After(15 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-p.answers:
				if !ok {
					break drain
				}
			case <-deadline:
				t.Errorf("%s did not exit after its stdin closed; killing it", name)
				cmd.Process.Kill()
				deadline = nil
			}
		}
		cmd.Wait()
		if t.Failed() {
			if s := p.stderr.String(); s != "" {
				t.Logf("%s stderr:\n%s", name, tail(s, 40))
			}
		}
	})
	return p
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// send writes one command line; its answer is read with answer.
func (p *peer) send(cmd string) {
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		p.t.Errorf("%s: send %q: %v", p.name, cmd, err)
	}
}

// answer waits up to d for the next answer line.
func (p *peer) answer(d time.Duration) (string, error) {
	select {
	case a, ok := <-p.answers:
		if !ok {
			return "", fmt.Errorf("%s exited; stderr:\n%s", p.name, tail(p.stderr.String(), 20))
		}
		return a, nil
	case <-time.After(d):
		return "", fmt.Errorf("%s: no answer after %v", p.name, d)
	}
}

// noAnswer reports whether the peer stays silent for d (its pending command is still blocked).
func (p *peer) noAnswer(d time.Duration) (bool, string) {
	select {
	case a := <-p.answers:
		return false, a
	case <-time.After(d):
		return true, ""
	}
}

// call sends a command and returns its whole answer ("OK ...", "TIMEOUT" or "ERR ..."); it
// returns an error only if the peer did not answer. It may be called from any goroutine.
func (p *peer) call(format string, args ...any) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := fmt.Sprintf(format, args...)
	p.send(cmd)
	a, err := p.answer(60 * time.Second)
	if err != nil {
		return "", fmt.Errorf("%s: %s: %w", p.name, cmd, err)
	}
	return a, nil
}

// ok sends a command and returns the values of its OK answer; it returns an error for any other
// answer. It may be called from any goroutine.
func (p *peer) ok(format string, args ...any) (string, error) {
	a, err := p.call(format, args...)
	if err != nil {
		return "", err
	}
	if a == "OK" {
		return "", nil
	}
	if v, found := strings.CutPrefix(a, "OK "); found {
		return v, nil
	}
	return "", &peerError{peer: p.name, cmd: fmt.Sprintf(format, args...), answer: a}
}

// must is ok that fails the test on error; call it from the test's goroutine only.
func (p *peer) must(format string, args ...any) string {
	p.t.Helper()
	v, err := p.ok(format, args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

// peerError is an answer other than OK.
type peerError struct {
	peer, cmd, answer string
}

func (e *peerError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.peer, e.cmd, e.answer)
}

// isTimeout reports whether err is a TIMEOUT answer.
func isTimeout(err error) bool {
	var pe *peerError
	return errors.As(err, &pe) && pe.answer == "TIMEOUT"
}

// isBadVersion reports whether err is a BadVersion answer.
func isBadVersion(err error) bool {
	var pe *peerError
	return errors.As(err, &pe) && strings.HasPrefix(pe.answer, "ERR BADVERSION")
}

// ownNode is a znode a peer's session owns: its path relative to the listed path, and its data.
type ownNode struct {
	rel  string
	data []byte
}

// nodes lists the ephemeral nodes under path that the peer's session owns.
func (p *peer) nodes(path string) []ownNode {
	p.t.Helper()
	v := p.must("nodes %s", path)
	var out []ownNode
	for _, f := range strings.Fields(v) {
		rel, enc, ok := strings.Cut(f, "=")
		if !ok {
			p.t.Fatalf("%s: bad nodes entry %q", p.name, f)
		}
		data, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			p.t.Fatalf("%s: bad nodes entry %q: %v", p.name, f, err)
		}
		out = append(out, ownNode{rel: rel, data: data})
	}
	return out
}
