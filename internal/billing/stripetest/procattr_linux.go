package stripetest

import "syscall"

// dieWithParent has the kernel kill stripe-mock when the test binary dies without
// calling StopMock: a panic, a -timeout, a SIGKILL. Otherwise it would outlive the test
// run.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
