package hooks

import (
	"os/exec"
	"strconv"
	"syscall"
)

// ownGroup starts cmd in a new process group and makes cancelling it kill
// the process and every process it started (taskkill /T), since Windows
// ends only the one process otherwise.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
	cmd.Cancel = func() error {
		err := exec.Command("taskkill", "/T", "/F", "/PID", strconv.Itoa(cmd.Process.Pid)).Run()
		if kerr := cmd.Process.Kill(); err != nil && kerr != nil {
			return kerr
		}
		return nil
	}
}
