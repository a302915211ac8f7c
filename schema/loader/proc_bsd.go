//go:build unix && !linux

package loader

import "syscall"

// procAttr puts a child evaluator in a process group of its own.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
