package loader

import (
	"math"
	"time"

	"golang.org/x/sys/unix"
)

// limitCPU has the kernel kill this process once it has used d of CPU time
// (RLIMIT_CPU, soft and hard, in whole seconds; a lower hard limit already
// in place stays). Go ignores the SIGXCPU of the soft limit, so the hard
// limit's SIGKILL ends the process.
func limitCPU(d time.Duration) error {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_CPU, &cur); err != nil {
		return err
	}
	secs := uint64(math.Ceil(d.Seconds()))
	lim := min(max(secs, 1), cur.Max)
	return unix.Setrlimit(unix.RLIMIT_CPU, &unix.Rlimit{Cur: lim, Max: lim})
}
