package wua

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/protocol"
)

// kbNumber admits the KB numbers wusa can uninstall.
var kbNumber = regexp.MustCompile(`^KB([0-9]{4,10})$`)

// wusa's exit statuses for /uninstall.
const (
	wusaRebootRequired = 3010    // ERROR_SUCCESS_REBOOT_REQUIRED
	wusaNotInstalled   = 2359303 // 0x00240007 WU_S_ALREADY_UNINSTALLED: the update is not installed
	wusaAnotherInstall = 1618    // ERROR_INSTALL_ALREADY_RUNNING
)

// Rollback uninstalls each update by its KB number with the Windows Update
// standalone installer: `wusa.exe /uninstall /kb:NNN /quiet /norestart`.
// Windows Update's own API cannot uninstall most updates offered today,
// and wusa can only name an update by KB, so an update known only by its
// GUID cannot be rolled back. A job holding an update Check refuses runs
// nothing.
func (b *Backend) Rollback(ctx context.Context, updates []*protocol.Update) ([]run.Result, error) {
	if refused := run.RefuseJob(updates, func(u *protocol.Update) error {
		if u.Source != Source {
			return nil
		}
		return Check(u)
	}); refused != nil {
		return refused, nil
	}
	results := make([]run.Result, 0, len(updates))
	for _, u := range updates {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		results = append(results, b.uninstall(ctx, u))
	}
	return results, nil
}

// UninstallArgs is the wusa command line that uninstalls KB number kb
// (digits only).
func UninstallArgs(kb string) []string {
	return []string{"/uninstall", "/kb:" + kb, "/quiet", "/norestart"}
}

func (b *Backend) uninstall(ctx context.Context, u *protocol.Update) run.Result {
	res := run.Result{Update: u.ID}
	if u.Source != Source {
		res.Error = fmt.Sprintf("update %q is from %q, not %s", u.ID, u.Source, Source)
		return res
	}
	m := kbNumber.FindStringSubmatch(strings.ToUpper(u.Name))
	if m == nil {
		res.Error = fmt.Sprintf("cannot roll back %s: wusa uninstalls by KB number only, and %q is an update id", u.ID, u.Name)
		return res
	}
	stdout, stderr, err := b.run.Run(ctx, "wusa.exe", UninstallArgs(m[1]), nil)
	res.Output = run.Trim(stdout, stderr)
	code, exited := run.ExitCode(err)
	switch {
	case err == nil:
		res.Succeeded, res.Output = true, strings.TrimSpace("uninstalled "+u.Name+"\n"+res.Output)
	case exited && code == wusaRebootRequired:
		res.Succeeded, res.Output = true, strings.TrimSpace("uninstalled "+u.Name+"; a restart finishes it\n"+res.Output)
	case exited && code == wusaNotInstalled:
		res.Error = fmt.Sprintf("cannot roll back %s: it is not installed", u.Name)
	case exited && code == wusaAnotherInstall:
		res.Error = fmt.Sprintf("cannot roll back %s now: another installation is in progress (wusa exit status 1618)", u.Name)
	case exited:
		res.Error = fmt.Sprintf("cannot roll back %s: wusa exit status %d (0x%08X): %s", u.Name, code, uint32(code), bytes.TrimSpace(stderr))
	default:
		res.Error = fmt.Sprintf("cannot roll back %s: %v", u.Name, err)
	}
	return res
}
