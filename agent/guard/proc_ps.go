//go:build !linux && !windows

package guard

import (
	"context"
	"fmt"
	"os/exec"
)

// processes lists the executables ps reports (macOS and the other Unix
// systems).
func processes(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ps", "-axo", "comm=").Output()
	if err != nil {
		return nil, fmt.Errorf("process list: ps: %w", err)
	}
	return parsePS(out), nil
}
