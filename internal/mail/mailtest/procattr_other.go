//go:build !linux

package mailtest

import "syscall"

func dieWithParent() *syscall.SysProcAttr { return nil }
