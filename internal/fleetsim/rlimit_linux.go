package fleetsim

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises this process's open-file limit to at least need,
// up to the hard limit: every simulated agent holds a connection open.
func RaiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	if lim.Max < need {
		return fmt.Errorf("%d open files are needed but the hard limit is %d: raise it (ulimit -Hn, or LimitNOFILE= in systemd) or simulate fewer endpoints", need, lim.Max)
	}
	lim.Cur = need
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise the open-file limit to %d: %w", need, err)
	}
	return nil
}
