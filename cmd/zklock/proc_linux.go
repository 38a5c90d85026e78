package main

import "syscall"

// setDeathSignal has the kernel kill the command if zklock dies: the lock goes with zklock's
// session, and the command must not go on without it.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
