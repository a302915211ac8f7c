//go:build !linux && !darwin && !windows

package service

import (
	"fmt"
	"runtime"
)

func newManager(Config) (Manager, error) {
	return nil, fmt.Errorf("service: no service manager support on %s; run patch-agent run under your own supervisor", runtime.GOOS)
}
