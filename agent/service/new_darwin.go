//go:build darwin

package service

func newManager(cfg Config) (Manager, error) { return launchd{cfg}, nil }
