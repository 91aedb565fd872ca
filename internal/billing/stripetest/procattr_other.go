//go:build !linux

package stripetest

import "syscall"

// dieWithParent is Linux only; elsewhere only StopMock stops stripe-mock.
func dieWithParent() *syscall.SysProcAttr { return nil }
