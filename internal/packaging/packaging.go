// Package packaging writes Patchline's release archives into a directory:
// the .deb and .rpm of patch-agent and of patchd (built with nfpm), and
// patch-agent's .tar.gz for macOS and .zip for Windows, each holding the
// binary and an install script. It packages binaries built beforehand
// (by the Makefile's package target, or by a test) and compiles nothing.
//
// What goes into each archive is read from the repository: the systemd
// units of examples/systemd (their ExecStart pointed at /usr/bin), the
// configuration files of examples/config, and packaging/ (the maintainer
// scripts' templates, the copyright file, the install scripts).
package packaging

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Target is a platform to package for, in Go's names ("linux", "amd64").
type Target struct {
	OS, Arch string
}

// String is the target as GOOS/GOARCH.
func (t Target) String() string { return t.OS + "/" + t.Arch }

// ParseTargets reads targets written "linux/amd64 darwin/arm64" (spaces or
// commas between them). Only the platforms Build knows are accepted.
func ParseTargets(s string) ([]Target, error) {
	var out []Target
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		os, arch, ok := strings.Cut(w, "/")
		t := Target{os, arch}
		if !ok || !supported(t) {
			return nil, fmt.Errorf("target %q: want one of linux/amd64, linux/arm64, darwin/amd64, darwin/arm64, windows/amd64", w)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("no target given: name at least one, e.g. linux/amd64")
	}
	return out, nil
}

func supported(t Target) bool {
	switch t.OS {
	case "linux", "darwin":
		return t.Arch == "amd64" || t.Arch == "arm64"
	case "windows":
		return t.Arch == "amd64"
	}
	return false
}

// Options says what Build packages and where it writes.
type Options struct {
	// Root is the repository's root directory.
	Root string
	// BinDir holds the binaries, one directory per target named
	// GOOS_GOARCH as `go build -o` writes them: linux_amd64/patchd,
	// windows_amd64/patch-agent.exe. Linux targets need patchd and
	// patch-agent, the others patch-agent.
	BinDir string
	// OutDir receives the archives; it is created if missing.
	OutDir string
	// Version is the release's version, "0.9.0" (a leading "v" is
	// dropped); the packages' revision is 1.
	Version string
	Targets []Target
	// Time stamps every file and the changelog entry, so that the same
	// inputs give the same archives.
	Time time.Time
}

// Build writes the archives of every target into opts.OutDir and returns
// their paths: for a Linux target a .deb and an .rpm of each of patchd
// and patch-agent, for macOS a .tar.gz and for Windows a .zip of
// patch-agent.
func Build(opts Options) ([]string, error) {
	opts.Version = strings.TrimPrefix(opts.Version, "v")
	if !validVersion(opts.Version) {
		return nil, fmt.Errorf("version %q: want a release version such as 0.9.0 (digits and dots, a -suffix allowed)", opts.Version)
	}
	if opts.Time.IsZero() {
		return nil, errors.New("no time given for the archives' files")
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("output directory: %w", err)
	}
	stage, err := os.MkdirTemp("", "patchline-packaging-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)

	var written []string
	for _, t := range opts.Targets {
		if !supported(t) {
			return nil, fmt.Errorf("target %s: not a platform Patchline is packaged for", t)
		}
		bins := filepath.Join(opts.BinDir, t.OS+"_"+t.Arch)
		var paths []string
		switch t.OS {
		case "linux":
			paths, err = buildLinux(opts, bins, t.Arch, stage)
		case "darwin":
			var p string
			p, err = buildDarwin(opts, bins, t.Arch)
			paths = []string{p}
		case "windows":
			var p string
			p, err = buildWindows(opts, bins, t.Arch)
			paths = []string{p}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t, err)
		}
		written = append(written, paths...)
	}
	return written, nil
}

// validVersion accepts what both dpkg and rpm order as intended: digits
// and dots, then optionally "-" and letters, digits or dots ("1.0.0-rc1").
func validVersion(v string) bool {
	base, pre, _ := strings.Cut(v, "-")
	if base == "" || base[0] < '0' || base[0] > '9' {
		return false
	}
	for _, r := range base {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	for _, r := range pre {
		if (r < '0' || r > '9') && (r < 'a' || r > 'z') && r != '.' {
			return false
		}
	}
	return !strings.HasSuffix(v, "-")
}

// binary checks that the binary name is in dir and returns its path.
func binary(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("binary %s: %w (build it first: make package builds every target)", name, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("binary %s: not a regular file", p)
	}
	return p, nil
}
