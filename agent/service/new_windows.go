//go:build windows

package service

import "time"

func newManager(cfg Config) (Manager, error) {
	return scmManager{cfg: cfg, connect: connectSCM, poll: 500 * time.Millisecond}, nil
}
