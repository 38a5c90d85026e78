package zktest

import "syscall"

// sysProcAttr makes the kernel kill a server, or a Process, if the process
// that started it dies, so that a test binary that crashes or is killed
// leaves no child behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// canPause reports whether StartProcess works here.
const canPause = true

type signal = syscall.Signal

const (
	sigStop = syscall.SIGSTOP
	sigCont = syscall.SIGCONT
)
