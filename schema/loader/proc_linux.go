package loader

import "syscall"

// procAttr puts a child evaluator in a process group of its own, and has
// the kernel kill it should the parent die first, so no evaluation runs on
// without the parent that would kill it at its deadline.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
