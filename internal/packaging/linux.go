package packaging

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"
)

// The fields every Linux package shares.
const (
	maintainer = "Patchline maintainers <maintainers@patchline.example>"
	homepage   = "https://github.com/patchline/patchline"
	// The repository has no license file yet; packaging/copyright says so
	// and this is what rpm's License tag carries until it has one.
	license = "LicenseRef-none-yet"
)

// linuxPackage is what differs between the patchd and patch-agent
// packages. The maintainer scripts' templates (packaging/scripts) read
// its fields.
type linuxPackage struct {
	// Name is the package's, the binary's and the unit's name.
	Name    string
	Summary string
	// Description is the long description, one paragraph.
	Description string
	// Sub is the subcommand the unit runs: patchd serve, patch-agent run.
	Sub string
	// Config is the configuration file's path; ConfigSrc its example in
	// examples/config.
	Config, ConfigSrc string
	// ReadyKeys are the config keys of which one must be set before the
	// first install starts the service.
	ReadyKeys []string
	// StateDir is the service's state directory (the unit's
	// StateDirectory), StateMode its mode.
	StateDir  string
	StateMode fs.FileMode
	// User is the system user the service runs as; "" for root.
	User string
}

// Owner is the user the service runs as, who owns its state directory.
func (p linuxPackage) Owner() string {
	if p.User == "" {
		return "root"
	}
	return p.User
}

// Unit is the systemd unit's file name.
func (p linuxPackage) Unit() string { return p.Name + ".service" }

// ReadyRegexp is ReadyKeys as an extended regular expression's
// alternatives.
func (p linuxPackage) ReadyRegexp() string { return strings.Join(p.ReadyKeys, "|") }

// ReadyText is ReadyKeys for a sentence: "repo: or repo-dir:".
func (p linuxPackage) ReadyText() string { return strings.Join(p.ReadyKeys, ": or ") + ":" }

var linuxPackages = []linuxPackage{
	{
		Name:    "patchd",
		Summary: "Patchline controller",
		Description: "patchd follows a fleet repository of patch policy in Git, " +
			"plans which updates each endpoint installs and when, and hands " +
			"signed jobs to the patch-agent of every endpoint.",
		Sub:       "serve",
		Config:    "/etc/patchline/patchd.yaml",
		ConfigSrc: "examples/config/patchd.yaml",
		ReadyKeys: []string{"repo", "repo-dir"},
		StateDir:  "/var/lib/patchd",
		StateMode: 0o700,
		User:      "patchd",
	},
	{
		Name:    "patch-agent",
		Summary: "Patchline agent",
		Description: "patch-agent reports an endpoint's installed and available " +
			"updates to the Patchline controller (patchd) and installs the " +
			"updates its signed jobs name, with the system's package manager.",
		Sub:       "run",
		Config:    "/etc/patch-agent/agent.yaml",
		ConfigSrc: "examples/config/agent.yaml",
		ReadyKeys: []string{"controller"},
		StateDir:  "/var/lib/patch-agent",
		StateMode: 0o700,
	},
}

// buildLinux writes the .deb and .rpm of every Linux package for arch.
func buildLinux(opts Options, bins, arch, stage string) ([]string, error) {
	var written []string
	for _, p := range linuxPackages {
		bin, err := binary(bins, p.Name)
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(stage, p.Name+"_"+arch)
		info, err := p.info(opts, bin, arch, dir)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		for _, pkgr := range []struct {
			format string
			nfpm.Packager
		}{{"deb", deb.Default}, {"rpm", rpm.DefaultRPM}} {
			path, err := writePackage(opts.OutDir, pkgr.format, pkgr.Packager, info)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", p.Name, pkgr.format, err)
			}
			written = append(written, path)
		}
	}
	return written, nil
}

// writePackage writes the package of info in format into dir under its
// conventional name.
func writePackage(dir, format string, pkgr nfpm.Packager, cfg *nfpm.Config) (string, error) {
	info, err := cfg.Get(format)
	if err != nil {
		return "", err
	}
	info = nfpm.WithDefaults(info)
	path := filepath.Join(dir, pkgr.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := pkgr.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, nil
}

// info is the nfpm description of p for arch. The files it renders (the
// unit, the scripts, the changelog) are written into stage.
func (p linuxPackage) info(opts Options, bin, arch, stage string) (*nfpm.Config, error) {
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return nil, err
	}
	read := func(rel string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(opts.Root, rel))
		if err != nil {
			return nil, fmt.Errorf("reading the repository: %w", err)
		}
		return b, nil
	}
	write := func(name string, b []byte) (string, error) {
		path := filepath.Join(stage, name)
		return path, os.WriteFile(path, b, 0o644)
	}

	unitSrc, err := read("examples/systemd/" + p.Unit())
	if err != nil {
		return nil, err
	}
	unitText, err := RenderUnit("examples/systemd/"+p.Unit(), unitSrc, "/usr/bin/"+p.Name, p.Sub)
	if err != nil {
		return nil, err
	}
	unit, err := write(p.Unit(), unitText)
	if err != nil {
		return nil, err
	}
	if _, err := read(p.ConfigSrc); err != nil {
		return nil, err
	}
	changelog, err := write("changelog.yaml", p.changelog(opts.Version, opts.Time))
	if err != nil {
		return nil, err
	}
	overrides, err := write("lintian-overrides", p.lintianOverrides())
	if err != nil {
		return nil, err
	}

	scripts := map[string]string{}
	for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
		if s == "preinst" && p.User == "" {
			continue
		}
		src, err := read("packaging/scripts/" + s + ".tmpl")
		if err != nil {
			return nil, err
		}
		tmpl, err := template.New(s).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("packaging/scripts/%s.tmpl: %w", s, err)
		}
		var buf bytes.Buffer
		if err := tmpl.Execute(&buf, p); err != nil {
			return nil, fmt.Errorf("packaging/scripts/%s.tmpl: %w", s, err)
		}
		if scripts[s], err = write(s, buf.Bytes()); err != nil {
			return nil, err
		}
	}

	// The state directory is not in the package: systemd-tmpfiles makes it
	// in postinst from the file below, with its owner and mode, as at boot
	// (and the unit's StateDirectory as the service starts).
	tmpfiles, err := write("tmpfiles.conf", fmt.Appendf(nil, "d %s %04o %s %s -\n", p.StateDir, p.StateMode, p.Owner(), p.Owner()))
	if err != nil {
		return nil, err
	}
	doc := "/usr/share/doc/" + p.Name
	contents := files.Contents{
		{Source: bin, Destination: "/usr/bin/" + p.Name, FileInfo: &files.ContentFileInfo{Mode: 0o755}},
		{Source: unit, Destination: "/usr/lib/systemd/system/" + p.Unit(), FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		{Source: filepath.Join(opts.Root, p.ConfigSrc), Destination: p.Config, Type: files.TypeConfigNoReplace,
			FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		{Source: tmpfiles, Destination: "/usr/lib/tmpfiles.d/" + p.Name + ".conf", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		{Source: filepath.Join(opts.Root, "packaging/copyright"), Destination: doc + "/copyright", Packager: "deb",
			FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		{Source: filepath.Join(opts.Root, "packaging/copyright"), Destination: "/usr/share/licenses/" + p.Name + "/copyright",
			Type: files.TypeRPMLicense, Packager: "rpm", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
		{Source: overrides, Destination: "/usr/share/lintian/overrides/" + p.Name, Packager: "deb",
			FileInfo: &files.ContentFileInfo{Mode: 0o644}},
	}
	if p.User != "" {
		// preinst makes the user from the same line; systemd-sysusers
		// reads this file at boot too.
		sysusers, err := write("sysusers.conf", fmt.Appendf(nil, "u %s - %q %s /usr/sbin/nologin\n", p.User, p.Summary, p.StateDir))
		if err != nil {
			return nil, err
		}
		contents = append(contents,
			&files.Content{Source: sysusers, Destination: "/usr/lib/sysusers.d/" + p.Name + ".conf", FileInfo: &files.ContentFileInfo{Mode: 0o644}})
	}

	cfg := &nfpm.Config{Info: nfpm.Info{
		Name:        p.Name,
		Arch:        arch,
		Platform:    "linux",
		Version:     opts.Version,
		Release:     "1",
		Section:     "admin",
		Priority:    "optional",
		Maintainer:  maintainer,
		Vendor:      "Patchline",
		Homepage:    homepage,
		License:     license,
		Description: p.Summary + "\n" + wrap(p.Description, 72),
		Changelog:   changelog,
		MTime:       opts.Time,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Umask:    0o022,
			Scripts: nfpm.Scripts{
				PreInstall:  scripts["preinst"],
				PostInstall: scripts["postinst"],
				PreRemove:   scripts["prerm"],
				PostRemove:  scripts["postrm"],
			},
			RPM: nfpm.RPM{Summary: p.Summary, Group: "Applications/System", Packager: maintainer, BuildHost: "patchline"},
		},
	}}
	return cfg, nil
}

// changelog is the nfpm (chglog) changelog of the release: one entry,
// pointing to the project's notes.
func (p linuxPackage) changelog(version string, t time.Time) []byte {
	return fmt.Appendf(nil, `- semver: %q
  date: %q
  packager: %q
  deb:
    urgency: medium
    distributions: [stable]
  changes:
    - note: "Patchline %s."
`, version+"-1", t.UTC().Format(time.RFC3339), maintainer, version)
}

// lintianOverrides is the lintian-overrides file: the tags that do not
// apply, each with its reason.
func (p linuxPackage) lintianOverrides() []byte {
	var b strings.Builder
	tag := func(reason, tag string) {
		fmt.Fprintf(&b, "# %s\n%s: %s\n", reason, p.Name, tag)
	}
	tag("Go links the binary statically (CGO_ENABLED=0), so one file runs on every distribution.",
		"statically-linked-binary [usr/bin/"+p.Name+"]")
	tag("The maintainer scripts are shared with the .rpm, which has no deb-systemd-helper;\n"+
		"# every call is guarded (no running systemd: none; DPKG_ROOT: --root only).",
		"maintainer-script-calls-systemctl")
	tag("Built from the project's repository, never uploaded to Debian: there is no bug to close.",
		"initial-upload-closes-no-bugs")
	if p.Name == "patch-agent" {
		tag("The apt backend names var/lib/dpkg/status inside an isolated root (tests, --root);\n"+
			"# on the host it reads dpkg's database through dpkg-query and apt-get only.",
			"uses-dpkg-database-directly [usr/bin/patch-agent]")
	}
	return []byte(b.String())
}

// wrap breaks s into lines of at most width bytes at spaces, as the
// packages' long descriptions must be.
func wrap(s string, width int) string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return strings.Join(append(lines, line), "\n")
}
