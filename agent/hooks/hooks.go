// Package hooks runs a job's reviewed pre and post scripts.
//
// A script travels whole in the signed job with the SHA-256 of its
// content; Verify refuses one whose content does not hash to it, and Run
// runs exactly that content: written to a file in a private directory
// (mode 0700, removed afterwards), run by sh on Unix or by Windows
// PowerShell (-NoProfile -NonInteractive -ExecutionPolicy Bypass -File) on
// Windows, in a process group of its own that is killed whole at the
// timeout, with its output bounded to the last MaxOutput bytes.
package hooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/patchline/patchline/protocol"
)

// MaxOutput bounds the output kept of a script.
const MaxOutput = 4 << 10

// ErrHashMismatch is Verify's error for a script whose content is not the
// content that was signed.
var ErrHashMismatch = errors.New("script content does not match its signed hash")

// Verify checks that s's content hashes to its signed SHA-256 and that
// this OS runs its shell.
func Verify(s *protocol.Script, goos string) error {
	sum := sha256.Sum256([]byte(s.Content))
	if !strings.EqualFold(hex.EncodeToString(sum[:]), s.SHA256) {
		return fmt.Errorf("script %s: %w", s.Path, ErrHashMismatch)
	}
	if _, _, err := Command(goos, s.Shell, "script"); err != nil {
		return fmt.Errorf("script %s: %w", s.Path, err)
	}
	return nil
}

// Command is the command line that runs the script file in shell on
// goos.
func Command(goos, shell, file string) (name string, args []string, err error) {
	switch {
	case goos == "windows" && shell == protocol.ShellPowerShell:
		return "powershell.exe", []string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", file}, nil
	case goos != "windows" && shell == protocol.ShellSh:
		return "/bin/sh", []string{file}, nil
	case shell != protocol.ShellPowerShell && shell != protocol.ShellSh:
		return "", nil, fmt.Errorf("unknown shell %q (want %s or %s)", shell, protocol.ShellSh, protocol.ShellPowerShell)
	default:
		return "", nil, fmt.Errorf("a %s script does not run on %s (PowerShell scripts run on Windows, sh scripts elsewhere)", shell, goos)
	}
}

// Run verifies and runs script s as the hook named hook ("pre" or
// "post"), in a private directory made under dir, for at most timeout,
// with env added to the agent's environment. The result's Error is empty
// only when the script ran and exited 0.
func Run(ctx context.Context, hook string, s *protocol.Script, timeout time.Duration, dir string, env []string) protocol.HookResult {
	res := protocol.HookResult{Hook: hook, Path: s.Path, ExitCode: -1}
	if err := Verify(s, runtime.GOOS); err != nil {
		res.Error = err.Error()
		return res
	}
	tmp, err := os.MkdirTemp(dir, ".hook-")
	if err != nil {
		res.Error = fmt.Sprintf("script %s: private directory: %v", s.Path, err)
		return res
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o700); err != nil {
		res.Error = fmt.Sprintf("script %s: private directory: %v", s.Path, err)
		return res
	}
	ext := ".sh"
	if s.Shell == protocol.ShellPowerShell {
		ext = ".ps1"
	}
	file := filepath.Join(tmp, hook+ext)
	if err := os.WriteFile(file, []byte(s.Content), 0o600); err != nil {
		res.Error = fmt.Sprintf("script %s: %v", s.Path, err)
		return res
	}
	name, args, _ := Command(runtime.GOOS, s.Shell, file)
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, name, args...)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), env...)
	out := &tailBuffer{max: MaxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	ownGroup(cmd)
	// A script's children may keep its output pipes open after the group
	// is killed; WaitDelay stops waiting for them.
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	res.Output = out.String()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	switch {
	case cctx.Err() == context.DeadlineExceeded && ctx.Err() == nil:
		res.Error = fmt.Sprintf("script %s: timed out after %s; its processes were killed", s.Path, timeout)
	case ctx.Err() != nil:
		res.Error = fmt.Sprintf("script %s: stopped: %v", s.Path, ctx.Err())
	case err != nil && res.ExitCode > 0:
		res.Error = fmt.Sprintf("script %s: exit status %d", s.Path, res.ExitCode)
	case err != nil:
		res.Error = fmt.Sprintf("script %s: %v", s.Path, err)
	}
	return res
}

// tailBuffer keeps the last max bytes written to it and counts the rest.
type tailBuffer struct {
	max     int
	buf     []byte
	dropped int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - 2*t.max; over > 0 {
		t.dropped += over
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	b, dropped := t.buf, t.dropped
	if len(b) > t.max {
		dropped += len(b) - t.max
		b = b[len(b)-t.max:]
	}
	if dropped == 0 {
		return string(b)
	}
	return fmt.Sprintf("[%d bytes of earlier output trimmed]\n%s", dropped, b)
}
