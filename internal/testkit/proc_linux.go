package testkit

import "syscall"

// sysProcAttr asks the kernel to kill the registry if the test binary dies
// without running its cleanups (for example on a test timeout). Linux sends
// the signal when the forking thread exits; Go keeps threads alive unless a
// goroutine exits while locked to one, which test code here never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
