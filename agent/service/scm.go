package service

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// WindowsService is the agent's service name in the Windows SCM and its
// event log source.
const WindowsService = "patch-agent"

// winSpec is what Install registers with the SCM.
type winSpec struct {
	Name        string
	DisplayName string
	Description string
	// Exe and Args make the service's command line.
	Exe  string
	Args []string
	// DelayedAutoStart: started at boot, after the automatic services
	// (the network among them).
	DelayedAutoStart bool
	// Restarts are the delays of the SCM's recovery actions, one per
	// failure in a row (the last repeats); ResetAfter is how long
	// without a failure resets the count.
	Restarts   []time.Duration
	ResetAfter time.Duration
	// RestartOnExitCode makes the recovery actions apply when the service
	// stops with a non-zero exit code too, not only when it crashes: the
	// agent's exit status 3 after a self-update.
	RestartOnExitCode bool
}

// scmStatus is what the SCM says of a service.
type scmStatus struct {
	State    svcState
	PID      uint32
	ExitCode uint32
}

// errNoService is the scm's answer for a service it does not have.
var errNoService = errors.New("no such service")

// scm is the Windows Service Control Manager and event log registry, as
// the manager below uses them; scm_windows.go adapts
// golang.org/x/sys/windows/svc/mgr and svc/eventlog.
type scm interface {
	// Query gives errNoService when the service is not installed.
	Query(name string) (scmStatus, error)
	Create(spec winSpec) error
	// Update changes an installed service's command line, start type
	// and description to the spec's.
	Update(spec winSpec) error
	// SetRecovery sets the restarts and RestartOnExitCode.
	SetRecovery(spec winSpec) error
	// Delete marks the service for deletion.
	Delete(name string) error
	Start(name string) error
	// Stop sends the stop control.
	Stop(name string) error
	// AddEventSource registers name as an event log source; one already
	// registered is kept.
	AddEventSource(name string) error
	RemoveEventSource(name string) error
}

// windowsSpec is the agent's service for cfg: automatic (delayed) start,
// restarts 10 s, 1 min and 5 min after failures, counted afresh after a
// day without one.
func windowsSpec(cfg Config) winSpec {
	return winSpec{
		Name:              WindowsService,
		DisplayName:       "Patchline agent",
		Description:       "Reports this endpoint's updates to the Patchline controller and installs what its patch policy approves.",
		Exe:               cfg.Exe,
		Args:              []string{"run", "--config", cfg.ConfigPath},
		DelayedAutoStart:  true,
		Restarts:          []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute},
		ResetAfter:        24 * time.Hour,
		RestartOnExitCode: true,
	}
}

// scmManager is the agent's service on Windows.
type scmManager struct {
	cfg Config
	// connect opens the SCM (as Administrator); the caller closes it.
	connect func() (scm, func() error, error)
	// poll is how often Stop looks whether the service has stopped.
	poll time.Duration
}

func (m scmManager) open() (scm, func() error, error) {
	s, closeFn, err := m.connect()
	if err != nil {
		return nil, nil, fmt.Errorf("connect to the service control manager (run as Administrator): %w", err)
	}
	return s, closeFn, nil
}

// Install creates the service, or updates the one installed, sets its
// recovery actions and registers the event log source. A service it
// created is deleted again when a later step fails.
func (m scmManager) Install(ctx context.Context) error {
	if err := checkPaths(m.cfg.Exe, m.cfg.ConfigPath); err != nil {
		return err
	}
	s, closeFn, err := m.open()
	if err != nil {
		return err
	}
	defer closeFn()
	spec := windowsSpec(m.cfg)
	_, err = s.Query(spec.Name)
	created := false
	switch {
	case errors.Is(err, errNoService):
		if err := s.Create(spec); err != nil {
			return fmt.Errorf("create service %s: %w", spec.Name, err)
		}
		created = true
	case err != nil:
		return fmt.Errorf("service %s: %w", spec.Name, err)
	default:
		if err := s.Update(spec); err != nil {
			return fmt.Errorf("update service %s: %w", spec.Name, err)
		}
	}
	err = s.SetRecovery(spec)
	if err != nil {
		err = fmt.Errorf("service %s: set recovery actions: %w", spec.Name, err)
	} else if err = s.AddEventSource(spec.Name); err != nil {
		err = fmt.Errorf("register event log source %s: %w", spec.Name, err)
	}
	if err != nil && created {
		if derr := s.Delete(spec.Name); derr != nil {
			err = fmt.Errorf("%w (and deleting the half-installed service: %v)", err, derr)
		}
	}
	return err
}

// Uninstall stops the service, deletes it and removes its event log
// source.
func (m scmManager) Uninstall(ctx context.Context) error {
	s, closeFn, err := m.open()
	if err != nil {
		return err
	}
	defer closeFn()
	if err := m.stop(ctx, s); err != nil {
		return err
	}
	if err := s.Delete(WindowsService); err != nil {
		return fmt.Errorf("delete service %s: %w", WindowsService, err)
	}
	if err := s.RemoveEventSource(WindowsService); err != nil {
		return fmt.Errorf("remove event log source %s: %w", WindowsService, err)
	}
	return nil
}

func (m scmManager) Start(ctx context.Context) error {
	s, closeFn, err := m.open()
	if err != nil {
		return err
	}
	defer closeFn()
	st, err := s.Query(WindowsService)
	if err != nil {
		return m.queryErr(err)
	}
	if st.State == stateRunning || st.State == stateStartPending {
		return nil
	}
	if err := s.Start(WindowsService); err != nil {
		return fmt.Errorf("start service %s: %w", WindowsService, err)
	}
	return nil
}

func (m scmManager) Stop(ctx context.Context) error {
	s, closeFn, err := m.open()
	if err != nil {
		return err
	}
	defer closeFn()
	return m.stop(ctx, s)
}

// stop sends the stop control unless the service is stopped or stopping,
// and waits until it has stopped or ctx ends.
func (m scmManager) stop(ctx context.Context, s scm) error {
	st, err := s.Query(WindowsService)
	if err != nil {
		return m.queryErr(err)
	}
	if st.State != stateStopped && st.State != stateStopPending {
		if err := s.Stop(WindowsService); err != nil {
			return fmt.Errorf("stop service %s: %w", WindowsService, err)
		}
		st.State = stateStopPending
	}
	for st.State != stateStopped {
		stillErr := func() error {
			return fmt.Errorf("service %s is still %s (it finishes the install in progress first; see patch-agent service status): %w", WindowsService, st.State, ctx.Err())
		}
		if ctx.Err() != nil {
			return stillErr()
		}
		t := time.NewTimer(m.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return stillErr()
		case <-t.C:
		}
		if st, err = s.Query(WindowsService); err != nil {
			return m.queryErr(err)
		}
	}
	return nil
}

func (m scmManager) queryErr(err error) error {
	if errors.Is(err, errNoService) {
		return ErrNotInstalled
	}
	return fmt.Errorf("service %s: %w", WindowsService, err)
}

func (m scmManager) Status(ctx context.Context) (Status, error) {
	out := Status{Manager: "Windows service " + WindowsService}
	s, closeFn, err := m.open()
	if err != nil {
		return Status{}, err
	}
	defer closeFn()
	st, err := s.Query(WindowsService)
	if errors.Is(err, errNoService) {
		return out, nil
	}
	if err != nil {
		return Status{}, m.queryErr(err)
	}
	out.Installed = true
	out.State = st.State.String()
	out.Running = st.State == stateRunning
	if st.State != stateStopped {
		out.PID = int(st.PID)
	}
	if st.State == stateStopped && st.ExitCode != 0 {
		out.Detail = fmt.Sprintf("last exit code %d", st.ExitCode)
	}
	return out, nil
}
