package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeSCM records the calls the Windows manager makes; states are the
// answers of successive Query calls (the last repeats), none for a
// service not installed.
type fakeSCM struct {
	calls  []string
	states []scmStatus
	specs  []winSpec
	// fail makes the call of that name fail.
	fail string
}

func (f *fakeSCM) call(c string) error {
	f.calls = append(f.calls, c)
	if strings.HasPrefix(c, f.fail+" ") || c == f.fail {
		return fmt.Errorf("%s: access denied", c)
	}
	return nil
}

func (f *fakeSCM) Query(name string) (scmStatus, error) {
	if err := f.call("Query " + name); err != nil {
		return scmStatus{}, err
	}
	if len(f.states) == 0 {
		return scmStatus{}, errNoService
	}
	st := f.states[0]
	if len(f.states) > 1 {
		f.states = f.states[1:]
	}
	return st, nil
}
func (f *fakeSCM) Create(s winSpec) error {
	f.specs = append(f.specs, s)
	return f.call("Create " + s.Name)
}
func (f *fakeSCM) Update(s winSpec) error {
	f.specs = append(f.specs, s)
	return f.call("Update " + s.Name)
}
func (f *fakeSCM) SetRecovery(s winSpec) error {
	f.specs = append(f.specs, s)
	return f.call("SetRecovery " + s.Name)
}
func (f *fakeSCM) Delete(name string) error            { return f.call("Delete " + name) }
func (f *fakeSCM) Start(name string) error             { return f.call("Start " + name) }
func (f *fakeSCM) Stop(name string) error              { return f.call("Stop " + name) }
func (f *fakeSCM) AddEventSource(name string) error    { return f.call("AddEventSource " + name) }
func (f *fakeSCM) RemoveEventSource(name string) error { return f.call("RemoveEventSource " + name) }

func TestWindowsSpec(t *testing.T) {
	got := windowsSpec(Config{Exe: `C:\Program Files\Patchline\patch-agent.exe`, ConfigPath: `C:\ProgramData\Patchline\agent.yaml`})
	want := winSpec{
		Name:              "patch-agent",
		DisplayName:       "Patchline agent",
		Description:       "Reports this endpoint's updates to the Patchline controller and installs what its patch policy approves.",
		Exe:               `C:\Program Files\Patchline\patch-agent.exe`,
		Args:              []string{"run", "--config", `C:\ProgramData\Patchline\agent.yaml`},
		DelayedAutoStart:  true,
		Restarts:          []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute},
		ResetAfter:        24 * time.Hour,
		RestartOnExitCode: true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
}

func TestSCMManager(t *testing.T) {
	running := scmStatus{State: stateRunning, PID: 7}
	stopPending := scmStatus{State: stateStopPending, PID: 7}
	stopped := scmStatus{State: stateStopped}
	tests := []struct {
		name       string
		states     []scmStatus
		fail       string
		do         func(context.Context, Manager) error
		cancelled  bool
		wantStatus *Status
		wantCalls  []string
		wantErr    error
		wantErrMsg string
	}{
		{
			name:      "install creates the service, its recovery actions and event log source",
			do:        func(ctx context.Context, m Manager) error { return m.Install(ctx) },
			wantCalls: []string{"Query patch-agent", "Create patch-agent", "SetRecovery patch-agent", "AddEventSource patch-agent"},
		},
		{
			name:      "install again updates the service",
			states:    []scmStatus{running},
			do:        func(ctx context.Context, m Manager) error { return m.Install(ctx) },
			wantCalls: []string{"Query patch-agent", "Update patch-agent", "SetRecovery patch-agent", "AddEventSource patch-agent"},
		},
		{
			name:       "a service half installed is deleted again",
			fail:       "AddEventSource",
			do:         func(ctx context.Context, m Manager) error { return m.Install(ctx) },
			wantCalls:  []string{"Query patch-agent", "Create patch-agent", "SetRecovery patch-agent", "AddEventSource patch-agent", "Delete patch-agent"},
			wantErrMsg: "register event log source patch-agent",
		},
		{
			name:       "a service that was there is kept when its update fails",
			states:     []scmStatus{stopped},
			fail:       "SetRecovery",
			do:         func(ctx context.Context, m Manager) error { return m.Install(ctx) },
			wantCalls:  []string{"Query patch-agent", "Update patch-agent", "SetRecovery patch-agent"},
			wantErrMsg: "set recovery actions",
		},
		{
			name:      "uninstall stops the service, waits, deletes it and its event log source",
			states:    []scmStatus{running, stopPending, stopPending, stopped},
			do:        func(ctx context.Context, m Manager) error { return m.Uninstall(ctx) },
			wantCalls: []string{"Query patch-agent", "Stop patch-agent", "Query patch-agent", "Query patch-agent", "Query patch-agent", "Delete patch-agent", "RemoveEventSource patch-agent"},
		},
		{
			name:      "uninstall a stopped service",
			states:    []scmStatus{stopped},
			do:        func(ctx context.Context, m Manager) error { return m.Uninstall(ctx) },
			wantCalls: []string{"Query patch-agent", "Delete patch-agent", "RemoveEventSource patch-agent"},
		},
		{
			name:      "uninstall without a service",
			do:        func(ctx context.Context, m Manager) error { return m.Uninstall(ctx) },
			wantCalls: []string{"Query patch-agent"},
			wantErr:   ErrNotInstalled,
		},
		{
			name:      "start a stopped service",
			states:    []scmStatus{stopped},
			do:        func(ctx context.Context, m Manager) error { return m.Start(ctx) },
			wantCalls: []string{"Query patch-agent", "Start patch-agent"},
		},
		{
			name:      "start a running service does nothing",
			states:    []scmStatus{running},
			do:        func(ctx context.Context, m Manager) error { return m.Start(ctx) },
			wantCalls: []string{"Query patch-agent"},
		},
		{
			name:      "start without a service",
			do:        func(ctx context.Context, m Manager) error { return m.Start(ctx) },
			wantCalls: []string{"Query patch-agent"},
			wantErr:   ErrNotInstalled,
		},
		{
			name:      "stop a stopping service waits without asking again",
			states:    []scmStatus{stopPending, stopped},
			do:        func(ctx context.Context, m Manager) error { return m.Stop(ctx) },
			wantCalls: []string{"Query patch-agent", "Query patch-agent"},
		},
		{
			name:       "stop gives up waiting when its context ends",
			states:     []scmStatus{running, stopPending},
			cancelled:  true,
			do:         func(ctx context.Context, m Manager) error { return m.Stop(ctx) },
			wantCalls:  []string{"Query patch-agent", "Stop patch-agent"},
			wantErr:    context.Canceled,
			wantErrMsg: "still stop-pending",
		},
		{
			name:       "status of a running service",
			states:     []scmStatus{running},
			wantCalls:  []string{"Query patch-agent"},
			wantStatus: &Status{Manager: "Windows service patch-agent", Installed: true, Running: true, State: "running", PID: 7},
		},
		{
			name:       "status of a service that stopped with exit code 3",
			states:     []scmStatus{{State: stateStopped, ExitCode: 3}},
			wantCalls:  []string{"Query patch-agent"},
			wantStatus: &Status{Manager: "Windows service patch-agent", Installed: true, State: "stopped", Detail: "last exit code 3"},
		},
		{
			name:       "status without a service",
			wantCalls:  []string{"Query patch-agent"},
			wantStatus: &Status{Manager: "Windows service patch-agent"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSCM{states: tt.states, fail: tt.fail}
			m := scmManager{
				cfg: Config{Exe: `C:\Program Files\Patchline\patch-agent.exe`, ConfigPath: `C:\ProgramData\Patchline\agent.yaml`},
				connect: func() (scm, func() error, error) {
					f.calls = nil
					return f, func() error { return nil }, nil
				},
			}
			ctx := t.Context()
			if tt.cancelled {
				c, cancel := context.WithCancel(ctx)
				cancel()
				ctx = c
			}
			var err error
			if tt.wantStatus != nil {
				var st Status
				st, err = m.Status(ctx)
				if diff := cmp.Diff(*tt.wantStatus, st); diff != "" {
					t.Errorf("status (-want +got):\n%s", diff)
				}
			} else {
				err = tt.do(ctx, m)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErrMsg != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErrMsg)) {
				t.Errorf("error %v, want one saying %q", err, tt.wantErrMsg)
			}
			if tt.wantErr == nil && tt.wantErrMsg == "" && err != nil {
				t.Errorf("error %v, want none", err)
			}
			if diff := cmp.Diff(tt.wantCalls, f.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
			want := windowsSpec(m.cfg)
			for _, s := range f.specs {
				if diff := cmp.Diff(want, s); diff != "" {
					t.Errorf("spec (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestSCMManagerConnectError(t *testing.T) {
	m := scmManager{
		cfg:     Config{Exe: `C:\patch-agent.exe`, ConfigPath: `C:\agent.yaml`},
		connect: func() (scm, func() error, error) { return nil, nil, errors.New("Access is denied.") },
	}
	err := m.Install(t.Context())
	if err == nil || !strings.Contains(err.Error(), "run as Administrator") {
		t.Errorf("Install: %v, want advice to run as Administrator", err)
	}
}
