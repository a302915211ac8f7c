//go:build unix

package loader

import (
	"errors"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// isolate starts the child in a process group of its own and, when its
// context ends, kills the whole group: nothing the child started outlives
// it.
func isolate(cmd *exec.Cmd) {
	cmd.SysProcAttr = procAttr()
	cmd.Cancel = func() error {
		err := unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		if errors.Is(err, unix.ESRCH) {
			// The child ended by itself just before.
			return os.ErrProcessDone
		}
		return err
	}
}
