//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// The signals zklock sends the command when the lock is lost.
var (
	sigTERM os.Signal = syscall.SIGTERM
	sigKILL os.Signal = syscall.SIGKILL
)

// forwarded are the signals zklock passes on to the command.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

// interactive reports whether zklock runs in the foreground of the terminal on its standard input.
// The command then stays in zklock's process group, so that it can use the terminal and the
// keyboard's signals (and job control) reach it directly.
func interactive() bool {
	var pgrp int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, 0, uintptr(syscall.TIOCGPGRP), uintptr(unsafe.Pointer(&pgrp)))
	return errno == 0 && int(pgrp) == syscall.Getpgrp()
}

// procAttr returns how to start the command: in a process group of its own unless interactive,
// and (on Linux) killed if zklock dies, since it would run without the lock then.
func procAttr(interactive bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: !interactive}
	setDeathSignal(a)
	return a
}

// signalCommand sends sig to the command: to its process group if it has one of its own.
func signalCommand(p *os.Process, group bool, sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !group || !ok {
		return p.Signal(sig)
	}
	err := syscall.Kill(-p.Pid, s)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// fromTerminal reports whether sig is one that a terminal sends to its whole foreground process
// group, so that an interactive command got it already.
func fromTerminal(sig os.Signal) bool {
	return sig == syscall.SIGINT || sig == syscall.SIGQUIT
}

// signalExitCode is the shell's exit code for a process killed by sig: 128 + its number.
func signalExitCode(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitFailure
}

// waitStatusCode returns the command's exit code from its state: its own, or 128 + the signal
// that killed it.
func waitStatusCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// signalNames are the names of the signals zklock passes on, as kill -l spells them.
var signalNames = map[syscall.Signal]string{
	syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM", syscall.SIGHUP: "SIGHUP",
	syscall.SIGQUIT: "SIGQUIT", syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGKILL: "SIGKILL",
}

// signalName returns sig's name, "SIGINT" say; a signal without one in signalNames is named by its
// description and number.
func signalName(sig os.Signal) string {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return sig.String()
	}
	if name, ok := signalNames[s]; ok {
		return name
	}
	return fmt.Sprintf("signal %d (%v)", int(s), s)
}
