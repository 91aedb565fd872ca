package mailtest

import "syscall"

// dieWithParent has the kernel kill Mailpit when the test binary dies without its cleanup
// (a panic, a -timeout).
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
