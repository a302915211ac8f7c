//go:build linux

package service

func newManager(cfg Config) (Manager, error) { return systemd{cfg}, nil }
