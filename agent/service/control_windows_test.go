//go:build windows

package service

import (
	"testing"

	"golang.org/x/sys/windows/svc"
)

// TestVocabularyIsWindows checks that the plain-Go mirror of the SCM's
// states, commands and accepted controls has Windows' own values, which
// run_windows.go converts by type only.
func TestVocabularyIsWindows(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uint32
	}{
		{"Stopped", uint32(stateStopped), uint32(svc.Stopped)},
		{"StartPending", uint32(stateStartPending), uint32(svc.StartPending)},
		{"StopPending", uint32(stateStopPending), uint32(svc.StopPending)},
		{"Running", uint32(stateRunning), uint32(svc.Running)},
		{"ContinuePending", uint32(stateContinuePending), uint32(svc.ContinuePending)},
		{"PausePending", uint32(statePausePending), uint32(svc.PausePending)},
		{"Paused", uint32(statePaused), uint32(svc.Paused)},
		{"Stop", uint32(cmdStop), uint32(svc.Stop)},
		{"Interrogate", uint32(cmdInterrogate), uint32(svc.Interrogate)},
		{"Shutdown", uint32(cmdShutdown), uint32(svc.Shutdown)},
		{"AcceptStop", uint32(acceptStop), uint32(svc.AcceptStop)},
		{"AcceptShutdown", uint32(acceptShutdown), uint32(svc.AcceptShutdown)},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, Windows has %d", c.name, c.got, c.want)
		}
	}
}
