package guard

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// processes lists the comm and exe base name of every process in /proc.
// A process that ends while being read is skipped.
func processes(context.Context) ([]string, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, fmt.Errorf("process list: %w", err)
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("process list: /proc lists no process")
	}
	var procs []string
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "comm")); err == nil {
			procs = append(procs, strings.TrimSuffix(string(b), "\n"))
		}
		if exe, err := os.Readlink(filepath.Join(d, "exe")); err == nil {
			procs = append(procs, filepath.Base(strings.TrimSuffix(exe, " (deleted)")))
		}
	}
	return procs, nil
}
