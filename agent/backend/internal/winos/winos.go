// Package winos holds what the Windows backends (windows-update, winget,
// choco) share: running a PowerShell script and asking Windows whether it
// waits for a reboot. It only builds command lines, so it compiles on every
// OS; it has not yet been exercised on a real Windows machine.
package winos

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf16"

	"github.com/patchline/patchline/agent/backend/run"
)

// prelude makes every script stop at its first error, keep progress bars
// out of stdout, and print UTF-8 whatever the console code page.
const prelude = "$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'\n[Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false\n"

// Command returns the command line that runs script in Windows PowerShell.
// The script travels base64-encoded (-EncodedCommand) so that no quoting of
// the command line can change it.
func Command(script string) (name string, args []string) {
	u := utf16.Encode([]rune(prelude + script))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return "powershell.exe", []string{"-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
		"-EncodedCommand", base64.StdEncoding.EncodeToString(b)}
}

// PowerShell runs script and returns its stdout. env passes data to the
// script (read as $env:NAME), which keeps data out of the script text.
func PowerShell(ctx context.Context, r run.Runner, script string, env []string) ([]byte, error) {
	name, args := Command(script)
	stdout, stderr, err := r.Run(ctx, name, args, env)
	if err != nil {
		return stdout, fmt.Errorf("powershell: %w: %s", err, bytes.TrimSpace(stderr))
	}
	// Some hosts still start UTF-8 output with a byte-order mark, which
	// JSON decoders reject.
	return bytes.TrimPrefix(stdout, []byte("\xef\xbb\xbf")), nil
}

// RebootScript is the script RebootPending runs. It prints true when any of
// Windows' reboot markers is set: the component-servicing and Windows Update
// registry keys, Windows Update's own flag, and file renames queued for the
// next boot.
const RebootScript = `$keys = @(
  'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending',
  'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired'
)
$pending = $false
foreach ($k in $keys) { if (Test-Path -LiteralPath $k) { $pending = $true } }
if ((New-Object -ComObject Microsoft.Update.SystemInfo).RebootRequired) { $pending = $true }
$renames = Get-ItemProperty -LiteralPath 'HKLM:\SYSTEM\CurrentControlSet\Control\Session Manager' -Name PendingFileRenameOperations -ErrorAction SilentlyContinue
if ($renames) { $pending = $true }
if ($pending) { 'true' } else { 'false' }
`

// RebootPending reports whether Windows waits for a reboot.
func RebootPending(ctx context.Context, r run.Runner) (bool, error) {
	out, err := PowerShell(ctx, r, RebootScript, nil)
	if err != nil {
		return false, fmt.Errorf("reboot check: %w", err)
	}
	switch s := strings.TrimSpace(string(out)); s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, fmt.Errorf("reboot check: unexpected output %q", s)
	}
}
