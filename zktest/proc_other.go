//go:build !linux

package zktest

import (
	"errors"
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

func processAttr(attr *syscall.SysProcAttr) *syscall.SysProcAttr { return attr }

func signalGroup(int, signal) error { return errors.New("zktest: process groups need Linux") }

// canPause reports whether StartProcess works here: it skips elsewhere.
const canPause = false

type signal = os.Signal

var (
	sigStop os.Signal = os.Interrupt // never sent: StartProcess skips
	sigCont os.Signal = os.Interrupt
	sigKill os.Signal = os.Kill
)
