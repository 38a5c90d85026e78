package zktest

import "syscall"

// sysProcAttr makes the kernel kill a server, or a Process, if the process
// that started it dies, so that a test binary that crashes or is killed
// leaves no child behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// processAttr is sysProcAttr for a Process, merged into attr (the caller's, or nil): the child
// also leads a process group of its own, so that Pause, Resume and Stop reach the processes it
// starts too (a "go run" child's program, a shell's commands).
func processAttr(attr *syscall.SysProcAttr) *syscall.SysProcAttr {
	a := syscall.SysProcAttr{}
	if attr != nil {
		a = *attr
	}
	a.Setpgid, a.Pgid = true, 0
	a.Pdeathsig = syscall.SIGKILL
	return &a
}

// signalGroup sends sig to the process group that pid leads.
func signalGroup(pid int, sig signal) error {
	return syscall.Kill(-pid, sig)
}

// canPause reports whether StartProcess works here.
const canPause = true

type signal = syscall.Signal

const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
	sigKill = syscall.SIGKILL
)
