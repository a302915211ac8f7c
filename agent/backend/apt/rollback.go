package apt

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/protocol"
)

// Rollback takes each update's version away by downgrading its package to
// the newest older version the endpoint can still get: one its apt sources
// offer (`apt-cache policy`'s version table), or else a package file in
// apt's archive cache (var/cache/apt/archives). The downgrade is
// `apt-get install --allow-downgrades name=version` (or the cached file's
// path), and dpkg-query confirms it. A package not at the version to take
// away, or with no older version to return to, fails with a clear error
// and nothing run. A job holding an update Check refuses runs nothing.
func (b *Backend) Rollback(ctx context.Context, updates []*protocol.Update) ([]run.Result, error) {
	return b.each(ctx, updates, b.rollback)
}

func (b *Backend) rollback(ctx context.Context, u *protocol.Update, env []string) run.Result {
	res := run.Result{Update: u.ID}
	if u.Source != Source {
		res.Error = fmt.Sprintf("update %q is from %q, not %s", u.ID, u.Source, Source)
		return res
	}
	current, err := b.installedVersion(ctx, u.Name)
	if err != nil {
		res.Error = fmt.Sprintf("cannot roll back %s %s: %v", u.Name, u.Version, err)
		return res
	}
	if current != u.Version {
		res.Error = fmt.Sprintf("cannot roll back %s %s: the installed version is %s", u.Name, u.Version, current)
		return res
	}
	target, file, err := b.previousVersion(ctx, u.Name, u.Version, env)
	if err != nil {
		res.Error = fmt.Sprintf("cannot roll back %s %s: %v", u.Name, u.Version, err)
		return res
	}
	if target == "" {
		res.Error = fmt.Sprintf("cannot roll back %s %s: no older version available in this endpoint's apt sources or cache", u.Name, u.Version)
		return res
	}
	stdout, stderr, err := b.run.Run(ctx, "apt-get", downgradeArgs(u.Name, target, file), env)
	res.Output = run.Trim(stdout, stderr)
	if err != nil {
		res.Error = fmt.Sprintf("apt-get install --allow-downgrades %s=%s: %v", u.Name, target, err)
		return res
	}
	now, err := b.installedVersion(ctx, u.Name)
	if err != nil || now != target {
		res.Error = fmt.Sprintf("apt-get install --allow-downgrades %s=%s left version %q (%v)", u.Name, target, now, err)
		return res
	}
	res.Succeeded = true
	res.Output = strings.TrimSpace(fmt.Sprintf("rolled back %s from %s to %s\n%s", u.Name, u.Version, target, res.Output))
	return res
}

// installedVersion is the version of name dpkg has installed.
func (b *Backend) installedVersion(ctx context.Context, name string) (string, error) {
	out, stderr, err := b.run.Run(ctx, "dpkg-query", b.dpkgQueryArgs("-W", "-f=${Version}\t${db:Status-Status}", "--", name), nil)
	if code, ok := run.ExitCode(err); ok && code == 1 {
		return "", fmt.Errorf("dpkg knows no package named exactly %q", name)
	}
	if err != nil {
		return "", fmt.Errorf("dpkg-query %s: %v: %s", name, err, bytes.TrimSpace(stderr))
	}
	version, status, _ := strings.Cut(strings.TrimSpace(string(out)), "\t")
	if status != "installed" {
		return "", fmt.Errorf("it is not installed (dpkg status %q)", status)
	}
	return version, nil
}

// previousVersion is the newest version of name older than current that
// apt's sources offer, or else that apt's archive cache holds (then file
// is its path).
func (b *Backend) previousVersion(ctx context.Context, name, current string, env []string) (version, file string, err error) {
	out, stderr, err := b.run.Run(ctx, "apt-cache", []string{"policy", "--", name}, env)
	if err != nil {
		return "", "", fmt.Errorf("apt-cache policy %s: %v: %s", name, err, bytes.TrimSpace(stderr))
	}
	var older []string
	for _, v := range parsePolicy(out) {
		if lt, err := b.versionLess(ctx, v, current); err != nil {
			return "", "", err
		} else if lt {
			older = append(older, v)
		}
	}
	// The version table is newest first; confirm rather than trust it.
	best, err := b.newest(ctx, older)
	if err != nil || best != "" {
		return best, "", err
	}
	cached := map[string]string{}
	for v, f := range b.cachedDebs(name) {
		if lt, err := b.versionLess(ctx, v, current); err != nil {
			return "", "", err
		} else if lt {
			older = append(older, v)
			cached[v] = f
		}
	}
	best, err = b.newest(ctx, older)
	return best, cached[best], err
}

func (b *Backend) newest(ctx context.Context, vs []string) (string, error) {
	best := ""
	for _, v := range vs {
		if best == "" {
			best = v
			continue
		}
		if lt, err := b.versionLess(ctx, best, v); err != nil {
			return "", err
		} else if lt {
			best = v
		}
	}
	return best, nil
}

// versionLess asks dpkg whether a is older than b, by Debian's rules.
func (b *Backend) versionLess(ctx context.Context, a, v string) (bool, error) {
	_, stderr, err := b.run.Run(ctx, "dpkg", []string{"--compare-versions", a, "lt", v}, nil)
	if err == nil {
		return true, nil
	}
	if code, ok := run.ExitCode(err); ok && code == 1 {
		return false, nil
	}
	return false, fmt.Errorf("dpkg --compare-versions %s lt %s: %v: %s", a, v, err, bytes.TrimSpace(stderr))
}

// parsePolicy reads the versions of apt-cache policy's version table that
// some source offers (a version only in dpkg's status file cannot be
// fetched again).
//
//	Version table:
//	 *** 2.0 500
//	        500 file:/srv/repo ./ Packages
//	        100 /var/lib/dpkg/status
//	     1.0 500
//	        500 file:/srv/repo ./ Packages
func parsePolicy(out []byte) []string {
	var versions []string
	in, cur, offered := false, "", false
	flush := func() {
		if cur != "" && offered {
			versions = append(versions, cur)
		}
		cur, offered = "", false
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "Version table:" {
			in = true
			continue
		}
		if !in || strings.TrimSpace(line) == "" {
			continue
		}
		rest, star := strings.CutPrefix(line, " *** ")
		if !star && strings.HasPrefix(line, "     ") && len(line) > 5 && line[5] != ' ' {
			rest = line[5:]
		} else if !star {
			f := strings.Fields(line)
			if len(f) >= 2 && !strings.HasSuffix(f[1], "/dpkg/status") {
				offered = true
			}
			continue
		}
		flush()
		if f := strings.Fields(rest); len(f) >= 1 {
			cur = f[0]
		}
	}
	flush()
	return versions
}

// cachedDebs maps the versions of name in apt's archive cache to their
// files ("name_version_arch.deb", an epoch's colon written %3a).
func (b *Backend) cachedDebs(name string) map[string]string {
	pkg, _, _ := strings.Cut(name, ":")
	dir := filepath.Join(b.rootDir(), "var", "cache", "apt", "archives")
	files, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	out := map[string]string{}
	for _, f := range files {
		parts := strings.Split(strings.TrimSuffix(filepath.Base(f), ".deb"), "_")
		if len(parts) != 3 || parts[0] != pkg {
			continue
		}
		v := strings.ReplaceAll(parts[1], "%3a", ":")
		if checkVersion(v) != nil {
			continue
		}
		if abs, err := filepath.Abs(f); err == nil {
			if _, err := os.Stat(abs); err == nil {
				out[v] = abs
			}
		}
	}
	return out
}

// downgradeArgs is the apt-get command line that installs version of
// name, older than the installed one: from the sources by name=version,
// or from a cached package file by its path.
func downgradeArgs(name, version, file string) []string {
	args := []string{"install", "-y", "-q", "--allow-downgrades", "-o", "Dpkg::Options::=--force-confold"}
	if file != "" {
		return append(args, "--", file)
	}
	return append(args, "-o", "APT::Cmd::Pattern-Only=true", "--", name+"="+version)
}
