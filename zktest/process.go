package zktest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// stopGrace bounds how long Stop waits for a killed process to be reaped.
const stopGrace = 10 * time.Second

// A Process is a child process under test that can be paused and resumed
// as a whole, as a virtual machine, a container or a process that the
// operating system stops would be: while paused it runs no code at all, so
// its ZooKeeper client sends no pings and notices nothing, and its timers
// fire late. See StartProcess.
//
// The methods of a Process may be called from several goroutines at once.
type Process struct {
	t     testing.TB
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{} // closed once the process has exited and its output is read
	stop  chan struct{} // closed by Stop
	once  sync.Once

	stderr bytes.Buffer // if the caller left cmd.Stderr nil

	mu      sync.Mutex
	paused  bool
	waitErr error
	wg      sync.WaitGroup
}

// StartProcess starts cmd (which must not have been started, and whose
// Stdout must be nil) as a child process for the test t, and returns it. Its
// standard output is read line by line into Lines. If cmd.Stderr is nil, its
// standard error is kept and written to the test's log if t fails.
//
// The child leads a process group of its own (SysProcAttr, if set, is kept
// otherwise), and Pause, Resume and Stop signal the whole group.
//
// The process is always killed by the end of the test: a cleanup registered
// with t kills it (resuming it first if paused) and waits for it, and on
// Linux the kernel kills it if the test binary dies. StartProcess fails the
// test if cmd cannot be started. On systems other than Linux it skips the
// test.
func StartProcess(t testing.TB, cmd *exec.Cmd) *Process {
	t.Helper()
	if !canPause {
		t.Skip("zktest: StartProcess needs Linux (SIGSTOP and SIGCONT, and a parent-death signal)")
	}
	if cmd == nil || cmd.Process != nil || cmd.Stdout != nil {
		t.Fatalf("zktest: StartProcess needs a command not yet started, with no Stdout")
	}
	pr := &Process{t: t, cmd: cmd, lines: make(chan string), done: make(chan struct{}), stop: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("zktest: StartProcess: %v", err)
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &lockedWriter{w: &pr.stderr, mu: &pr.mu}
	}
	cmd.SysProcAttr = processAttr(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		t.Fatalf("zktest: StartProcess %s: %v", cmd.Path, err)
	}
	// read collects the lines as they come; pump hands them to Lines in
	// order without ever blocking the child.
	var (
		qmu   sync.Mutex
		queue []string
		eof   bool
		wake  = make(chan struct{}, 1)
	)
	notify := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	pr.wg.Add(2)
	go func() {
		defer pr.wg.Done()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			qmu.Lock()
			queue = append(queue, sc.Text())
			qmu.Unlock()
			notify()
		}
		if err := sc.Err(); err != nil {
			// A line longer than the scanner takes: say so, and keep reading so that the child
			// never blocks on a full pipe.
			qmu.Lock()
			queue = append(queue, "zktest: "+err.Error())
			qmu.Unlock()
			notify()
			io.Copy(io.Discard, out)
		}
		err := cmd.Wait()
		pr.mu.Lock()
		pr.waitErr = err
		pr.mu.Unlock()
		qmu.Lock()
		eof = true
		qmu.Unlock()
		notify()
		close(pr.done)
	}()
	go func() {
		defer pr.wg.Done()
		defer close(pr.lines)
		for {
			qmu.Lock()
			if len(queue) == 0 {
				end := eof
				qmu.Unlock()
				if end {
					return
				}
				select {
				case <-wake:
				case <-pr.stop:
					return
				}
				continue
			}
			line := queue[0]
			queue = queue[1:]
			qmu.Unlock()
			select {
			case pr.lines <- line:
			case <-pr.stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		pr.Stop()
		if t.Failed() {
			pr.mu.Lock()
			if pr.stderr.Len() > 0 {
				t.Logf("zktest: standard error of %s:\n%s", cmd.Path, pr.stderr.String())
			}
			pr.mu.Unlock()
		}
	})
	return pr
}

// lockedWriter writes to w under mu.
type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// Pid returns the process id.
func (pr *Process) Pid() int { return pr.cmd.Process.Pid }

// Lines returns the channel that carries the lines the process writes to
// its standard output, in order, without their line ends. No line is lost,
// however slowly they are received. The channel is closed after the last
// line once the process has exited, or once Stop has been called.
func (pr *Process) Lines() <-chan string { return pr.lines }

// Exited returns a channel that is closed once the process has exited (and
// its standard output is read to the end).
func (pr *Process) Exited() <-chan struct{} { return pr.done }

// Pause stops the process with SIGSTOP: it runs no code until Resume. The
// signal goes to the process group the child leads, so the processes it
// started (a "go run" child's program, say) stop with it. It returns an error
// if the process has exited.
func (pr *Process) Pause() error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if err := pr.signal(sigStop); err != nil {
		return fmt.Errorf("zktest: pausing process %d: %w", pr.Pid(), err)
	}
	pr.paused = true
	return nil
}

// Resume continues a paused process with SIGCONT. Resuming a process that
// is not paused does nothing. It returns an error if the process has exited.
func (pr *Process) Resume() error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if err := pr.signal(sigCont); err != nil {
		return fmt.Errorf("zktest: resuming process %d: %w", pr.Pid(), err)
	}
	pr.paused = false
	return nil
}

// signal sends sig, unless the process has been reaped.
func (pr *Process) signal(sig signal) error {
	select {
	case <-pr.done:
		return errors.New("process has exited")
	default:
	}
	return signalGroup(pr.cmd.Process.Pid, sig)
}

// Stop kills the process (with SIGKILL, which also ends a paused process),
// waits until it has exited and its output goroutines have ended, and closes
// Lines (lines not yet received are discarded). It returns the error with
// which the process ended if it had exited by itself before, or nil. Stop
// may be called more than once.
func (pr *Process) Stop() error {
	pr.once.Do(func() { close(pr.stop) })
	select {
	case <-pr.done:
		pr.wg.Wait()
		pr.mu.Lock()
		defer pr.mu.Unlock()
		return pr.waitErr
	default:
		signalGroup(pr.cmd.Process.Pid, sigKill)
		pr.cmd.Process.Kill()
		select {
		case <-pr.done:
		case <-time.After(stopGrace):
			pr.t.Errorf("zktest: process %d still running %v after SIGKILL", pr.Pid(), stopGrace)
		}
	}
	pr.wg.Wait()
	return nil
}

// Wait waits until the process exits by itself and returns its error as
// exec.Cmd.Wait reports it.
func (pr *Process) Wait() error {
	<-pr.done
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return pr.waitErr
}
