//go:build windows

package service

import (
	"errors"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/registry"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// winSCM adapts golang.org/x/sys/windows/svc/mgr and svc/eventlog to scm.
type winSCM struct{ m *mgr.Mgr }

func connectSCM() (scm, func() error, error) {
	m, err := mgr.Connect()
	if err != nil {
		return nil, nil, err
	}
	return winSCM{m}, m.Disconnect, nil
}

func (w winSCM) open(name string) (*mgr.Service, error) {
	s, err := w.m.OpenService(name)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return nil, errNoService
	}
	return s, err
}

func (w winSCM) Query(name string) (scmStatus, error) {
	s, err := w.open(name)
	if err != nil {
		return scmStatus{}, err
	}
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		return scmStatus{}, err
	}
	code := st.Win32ExitCode
	if code == uint32(windows.ERROR_SERVICE_SPECIFIC_ERROR) {
		code = st.ServiceSpecificExitCode
	}
	return scmStatus{State: svcState(st.State), PID: st.ProcessId, ExitCode: code}, nil
}

func (w winSCM) Create(spec winSpec) error {
	s, err := w.m.CreateService(spec.Name, spec.Exe, mgr.Config{
		StartType:        mgr.StartAutomatic,
		ErrorControl:     mgr.ErrorNormal,
		DisplayName:      spec.DisplayName,
		Description:      spec.Description,
		DelayedAutoStart: spec.DelayedAutoStart,
	}, spec.Args...)
	if err != nil {
		return err
	}
	return s.Close()
}

func (w winSCM) Update(spec winSpec) error {
	s, err := w.open(spec.Name)
	if err != nil {
		return err
	}
	defer s.Close()
	c, err := s.Config()
	if err != nil {
		return err
	}
	c.BinaryPathName = windows.ComposeCommandLine(append([]string{spec.Exe}, spec.Args...))
	c.StartType = mgr.StartAutomatic
	c.DisplayName = spec.DisplayName
	c.Description = spec.Description
	c.DelayedAutoStart = spec.DelayedAutoStart
	return s.UpdateConfig(c)
}

func (w winSCM) SetRecovery(spec winSpec) error {
	s, err := w.open(spec.Name)
	if err != nil {
		return err
	}
	defer s.Close()
	actions := make([]mgr.RecoveryAction, 0, len(spec.Restarts))
	for _, d := range spec.Restarts {
		actions = append(actions, mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d})
	}
	if err := s.SetRecoveryActions(actions, uint32(spec.ResetAfter/time.Second)); err != nil {
		return err
	}
	return s.SetRecoveryActionsOnNonCrashFailures(spec.RestartOnExitCode)
}

func (w winSCM) Delete(name string) error {
	s, err := w.open(name)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Delete()
}

func (w winSCM) Start(name string) error {
	s, err := w.open(name)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Start()
}

func (w winSCM) Stop(name string) error {
	s, err := w.open(name)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Control(svc.Stop)
	return err
}

// eventSourceKey is where eventlog.Install registers a source.
const eventSourceKey = `SYSTEM\CurrentControlSet\Services\EventLog\Application\`

func (w winSCM) AddEventSource(name string) error {
	if k, err := registry.OpenKey(registry.LOCAL_MACHINE, eventSourceKey+name, registry.QUERY_VALUE); err == nil {
		return k.Close()
	}
	return eventlog.InstallAsEventCreate(name, eventlog.Error|eventlog.Warning|eventlog.Info)
}

func (w winSCM) RemoveEventSource(name string) error {
	err := eventlog.Remove(name)
	if errors.Is(err, registry.ErrNotExist) {
		return nil
	}
	return err
}
