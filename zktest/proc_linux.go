package zktest

import "syscall"

// sysProcAttr makes the kernel kill a server if the process that started it
// dies, so that a test binary that crashes or is killed leaves no server
// behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
