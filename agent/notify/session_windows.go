package notify

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

// consoleSession is the real SessionRunner: it takes the console user's
// token (WTSQueryUserToken, which a service running as LocalSystem may
// call), starts the command as that user on the user's desktop with the
// user's environment, and waits for it, killing it when ctx ends.
func consoleSession(ctx context.Context, name string, args []string) (uint32, error) {
	session := windows.WTSGetActiveConsoleSessionId()
	if session == 0xFFFFFFFF {
		return 0, ErrNoUser
	}
	var token windows.Token
	if err := windows.WTSQueryUserToken(session, &token); err != nil {
		if errors.Is(err, windows.ERROR_NO_TOKEN) {
			return 0, ErrNoUser
		}
		return 0, fmt.Errorf("user token of session %d: %w", session, err)
	}
	defer token.Close()
	var env *uint16
	if err := windows.CreateEnvironmentBlock(&env, token, false); err != nil {
		return 0, fmt.Errorf("user environment: %w", err)
	}
	defer windows.DestroyEnvironmentBlock(env)
	cmdline, err := windows.UTF16PtrFromString(windows.ComposeCommandLine(append([]string{name}, args...)))
	if err != nil {
		return 0, err
	}
	desktop, _ := windows.UTF16PtrFromString(`winsta0\default`)
	si := windows.StartupInfo{Desktop: desktop, Flags: windows.STARTF_USESHOWWINDOW, ShowWindow: windows.SW_HIDE}
	si.Cb = uint32(unsafe.Sizeof(si))
	var pi windows.ProcessInformation
	if err := windows.CreateProcessAsUser(token, nil, cmdline, nil, nil, false,
		windows.CREATE_UNICODE_ENVIRONMENT|windows.CREATE_NO_WINDOW, env, nil, &si, &pi); err != nil {
		return 0, fmt.Errorf("start %s in session %d: %w", name, session, err)
	}
	defer windows.CloseHandle(pi.Process)
	windows.CloseHandle(pi.Thread)
	for {
		ev, err := windows.WaitForSingleObject(pi.Process, 1000)
		if err != nil {
			return 0, fmt.Errorf("wait for %s: %w", name, err)
		}
		if ev == windows.WAIT_OBJECT_0 {
			break
		}
		if ctx.Err() != nil {
			windows.TerminateProcess(pi.Process, 1)
			return 0, ctx.Err()
		}
	}
	var code uint32
	if err := windows.GetExitCodeProcess(pi.Process, &code); err != nil {
		return 0, fmt.Errorf("exit status of %s: %w", name, err)
	}
	return code, nil
}
