//go:build !linux

package zktest

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return nil }

// canPause reports whether StartProcess works here: it skips elsewhere.
const canPause = false

type signal = os.Signal

var (
	sigStop os.Signal = os.Interrupt // never sent: StartProcess skips
	sigCont os.Signal = os.Interrupt
)
