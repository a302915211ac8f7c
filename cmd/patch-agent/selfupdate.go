package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/patchline/patchline/agent/selfupdate"
	"github.com/patchline/patchline/internal/buildinfo"
	"github.com/patchline/patchline/internal/releasekey"
)

// exitRestart is patch-agent run's exit status after its binary was
// replaced (a self-update or its rollback): "restart me". The systemd
// unit, the Windows service and the launchd job restart on it.
const exitRestart = 3

// newSelfUpdater is the agent's updater with the release public key in
// keyFile pinned, or nil without one (the agent then refuses agent
// updates).
func newSelfUpdater(keyFile, stateDir string, confirm time.Duration) (*selfupdate.Updater, error) {
	if keyFile == "" {
		return nil, nil
	}
	key, err := releasekey.LoadPublic(keyFile)
	if err != nil {
		return nil, fmt.Errorf("--release-key: %w", err)
	}
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		return nil, fmt.Errorf("find the running binary to update: %w", err)
	}
	return selfupdate.New(selfupdate.Config{
		Key: key, StateDir: stateDir, Executable: exe, Running: buildinfo.Version(), ConfirmTimeout: confirm,
	})
}
