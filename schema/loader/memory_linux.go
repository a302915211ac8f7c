package loader

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// residentBytes is the resident memory of process pid, from the VmRSS line
// of /proc/<pid>/status.
func residentBytes(pid int) (Bytes, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		kb, ok := bytes.CutSuffix(bytes.TrimSpace(rest), []byte(" kB"))
		if !ok {
			return 0, fmt.Errorf("process %d: unexpected VmRSS %q", pid, rest)
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(kb)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("process %d: VmRSS: %w", pid, err)
		}
		return Bytes(n) * KiB, nil
	}
	return 0, errors.New("process " + strconv.Itoa(pid) + " has no VmRSS: it has exited")
}
