// Package guard tells whether any of a job's guard processes runs, so the
// agent can hold the job back while, say, a clinic's records application
// is open.
//
// Processes are named by their executable's file name and compared
// without case; a name without ".exe" also matches the Windows
// executable with it ("Zoom" matches Zoom.exe). The process list comes
// from /proc on Linux (each process's comm and the base name of its exe
// link, since comm is cut at 15 bytes), from `ps -axo comm=` on macOS, and
// from a CreateToolhelp32Snapshot on Windows.
package guard

import (
	"context"
	"path"
	"slices"
	"strings"
)

// Running returns the guard names (as given) that match a running
// process, in the order given.
func Running(ctx context.Context, names []string) ([]string, error) {
	procs, err := processes(ctx)
	if err != nil {
		return nil, err
	}
	return Match(names, procs), nil
}

// Match returns the names that match one of the running executable names
// procs.
func Match(names, procs []string) []string {
	var out []string
	for _, n := range names {
		if slices.ContainsFunc(procs, func(p string) bool { return matches(n, p) }) {
			out = append(out, n)
		}
	}
	return out
}

// linuxComm is how many bytes of a name Linux keeps in comm.
const linuxComm = 15

func matches(name, proc string) bool {
	name, proc = strings.ToLower(name), strings.ToLower(proc)
	if name == "" || proc == "" {
		return false
	}
	return name == proc || name+".exe" == proc ||
		(len(proc) == linuxComm && len(name) > linuxComm && strings.HasPrefix(name, proc))
}

// parsePS reads `ps -axo comm=` output: one executable path per line
// (macOS prints the full path), kept by its base name.
func parsePS(out []byte) []string {
	var procs []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			procs = append(procs, path.Base(line))
		}
	}
	return procs
}
