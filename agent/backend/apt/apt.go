// Package apt is the backend for Debian and Ubuntu endpoints: it reads the
// dpkg database for what is installed, asks apt-get for the candidate
// versions it would upgrade to, reads what the candidates' changelogs say
// about them, and installs exact package versions with apt-get.
//
// Candidates come from a simulated upgrade (`apt-get -s dist-upgrade`),
// whose "Inst name [current] (candidate releases [arch])" lines are apt-get's
// stable, locale-independent report; the `apt` command's own output is
// documented as unstable for scripts and is not used. An update whose
// candidate comes from a security suite (a release string such as
// "Debian-Security:12/stable-security" or "Ubuntu:24.04/noble-security") has
// category "security"; every other upgrade is "bugfix". Kernel images
// (linux-image-*) are reported as needing a reboot.
//
// apt knows no severities: the backend reports none (the controller
// derives them from public feeds), and does not turn an upload urgency
// into one. What an upgrade fixes comes from the Debian changelog its
// candidate package ships (/usr/share/doc/<package>/changelog.Debian.gz,
// with a binNMU's own changelog.Debian.<arch>.gz, or changelog.gz for a
// native package): the CVE ids and the highest upload urgency of the
// entries from the candidate's down to, not including, the installed
// version's, and the candidate entry's date as the release time. The
// source package is apt's (`apt-cache show`). Upgrades built from one
// source at one version share a changelog, read from the smallest of
// their packages: apt's archive cache holds it when apt already fetched
// it, or `apt-get download` fetches it from the endpoint's own sources,
// through coreutils' `env --chdir` (apt-get downloads to its working
// directory), and `dpkg-deb --fsys-tarfile` yields just the changelog. With
// Options.CacheDir set, what was learned is kept per upgrade, so each
// candidate is downloaded once. A package that ships no changelog, or one
// that cannot be fetched, is reported without those facts, never failing
// the inventory.
//
// A job asks for exact package names and versions in Debian policy's
// syntax, passed so that apt-get never reads an option, a pattern or a
// removal into them (see Check); the inventory leaves out what a job could
// not ask for.
//
// With Options.Root set, the backend works on an isolated tree instead of
// the host: dpkg's database and files, apt's sources, lists, caches, logs
// and configuration all live under the root, and the host's apt
// configuration is not read. Tests and demos use this; an agent leaves Root
// empty.
package apt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/patchline/patchline/agent/backend/run"
	"github.com/patchline/patchline/protocol"
)

// Source is the protocol.Update.Source of updates this backend reports.
const Source = "apt"

// Options configure the apt backend.
type Options struct {
	// Root is an isolated tree to manage instead of the host ("" or "/").
	// It must hold a dpkg database (var/lib/dpkg/status) and apt's
	// directories (etc/apt with a sources.list, var/lib/apt/lists/partial,
	// var/cache/apt/archives/partial, var/log/apt). The backend writes its
	// apt configuration to etc/apt/patchline-root.conf under it.
	Root string
	// CacheDir keeps what the candidates' changelogs said
	// (changelog-facts.json) and receives the packages downloaded to read
	// them; the agent gives a directory in its state directory. Empty:
	// packages are downloaded to a temporary directory and nothing is
	// kept.
	CacheDir string
	// Logger says which updates lack changelog facts, and why; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Backend manages packages with dpkg and apt-get.
type Backend struct {
	run      run.Runner
	root     string // "" for the host
	cacheDir string
	log      *slog.Logger
}

// New returns an apt backend that runs its commands through r.
func New(r run.Runner, opts Options) *Backend {
	root := opts.Root
	if root == "/" {
		root = ""
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Backend{run: r, root: root, cacheDir: opts.CacheDir, log: log.With("backend", Source)}
}

// aptEnv returns the environment that points apt at the isolated root, and
// writes the configuration it names. apt reads the file named by APT_CONFIG
// before its configuration directory, so setting Dir there keeps the host's
// apt.conf.d (and its hooks) out of the isolated root's commands.
func (b *Backend) aptEnv() ([]string, error) {
	if b.root == "" {
		return nil, nil
	}
	root, err := filepath.Abs(b.root)
	if err != nil {
		return nil, fmt.Errorf("apt root %q: %w", b.root, err)
	}
	conf := fmt.Sprintf(`// Written by Patchline's apt backend: apt works on this tree only.
Dir "%[1]s/";
Dir::State::status "%[1]s/var/lib/dpkg/status";
Dir::Etc::sourcelist "%[1]s/etc/apt/sources.list";
Dir::Etc::sourceparts "%[1]s/etc/apt/sources.list.d";
APT::Sandbox::User "root";
DPkg::Options { "--root=%[1]s"; };
`, root)
	path := filepath.Join(root, "etc", "apt", "patchline-root.conf")
	if old, err := os.ReadFile(path); err != nil || string(old) != conf {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("apt root %q: %w", root, err)
		}
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return nil, fmt.Errorf("apt root %q: %w", root, err)
		}
	}
	return []string{"APT_CONFIG=" + path}, nil
}

// rootDir is the root apt works on.
func (b *Backend) rootDir() string {
	if b.root == "" {
		return "/"
	}
	return b.root
}

func (b *Backend) dpkgQueryArgs(args ...string) []string {
	if b.root == "" {
		return args
	}
	return append([]string{"--admindir=" + filepath.Join(b.root, "var", "lib", "dpkg")}, args...)
}

// installedFormat is the dpkg-query format parseInstalled reads.
const installedFormat = `${Package}\t${Architecture}\t${Version}\t${db:Status-Status}\n`

// Inventory refreshes apt's package lists, then reports every installed
// package (Installed set) and every upgrade apt would make to one, with
// what its candidate's changelog says. A package whose name or version
// Check would refuse in a job is left out, with a warning in the log.
func (b *Backend) Inventory(ctx context.Context) ([]*protocol.Update, error) {
	env, err := b.aptEnv()
	if err != nil {
		return nil, err
	}
	if _, stderr, err := b.run.Run(ctx, "apt-get", []string{"update", "-q"}, env); err != nil {
		return nil, fmt.Errorf("apt-get update: %w: %s", err, bytes.TrimSpace(stderr))
	}
	out, stderr, err := b.run.Run(ctx, "dpkg", []string{"--print-architecture"}, nil)
	if err != nil {
		return nil, fmt.Errorf("dpkg --print-architecture: %w: %s", err, bytes.TrimSpace(stderr))
	}
	native := strings.TrimSpace(string(out))
	out, stderr, err = b.run.Run(ctx, "dpkg-query", b.dpkgQueryArgs("-W", "-f="+installedFormat), nil)
	if err != nil {
		return nil, fmt.Errorf("dpkg-query: %w: %s", err, bytes.TrimSpace(stderr))
	}
	installed, err := parseInstalled(out, native)
	if err != nil {
		return nil, err
	}
	out, stderr, err = b.run.Run(ctx, "apt-get", []string{"-s", "-q", "dist-upgrade"}, env)
	if err != nil {
		return nil, fmt.Errorf("apt-get -s dist-upgrade: %w: %s", err, bytes.TrimSpace(stderr))
	}
	upgrades, err := parseSimulation(out)
	if err != nil {
		return nil, err
	}
	updates := make([]*protocol.Update, 0, len(installed)+len(upgrades))
	available := make([]*protocol.Update, 0, len(upgrades))
	for _, p := range installed {
		if err := checkPackage(p.name, p.version); err != nil {
			b.log.Warn("installed package left out of the inventory: no job could name it to apt-get", "err", err)
			continue
		}
		updates = append(updates, &protocol.Update{
			ID:               p.name + "@" + p.version,
			Source:           Source,
			Name:             p.name,
			Version:          p.version,
			InstalledVersion: p.version,
			RebootRequired:   needsReboot(p.name),
			Installed:        true,
		})
	}
	for _, u := range upgrades {
		err := checkPackage(u.name, u.candidate)
		if err == nil {
			err = checkPackage(u.name, u.current)
		}
		if err != nil {
			b.log.Warn("upgrade left out of the inventory: no job could name it to apt-get", "err", err)
			continue
		}
		up := &protocol.Update{
			ID:               u.name + "@" + u.candidate,
			Source:           Source,
			Name:             u.name,
			Version:          u.candidate,
			InstalledVersion: u.current,
			Category:         "bugfix",
			RebootRequired:   needsReboot(u.name),
		}
		if u.security() {
			up.Category = "security"
		}
		updates = append(updates, up)
		available = append(available, up)
	}
	if err := b.addFacts(ctx, env, native, available); err != nil {
		return nil, err
	}
	sort.SliceStable(updates, func(i, j int) bool {
		if updates[i].Name != updates[j].Name {
			return updates[i].Name < updates[j].Name
		}
		return updates[i].Installed && !updates[j].Installed
	})
	return updates, nil
}

// needsReboot reports the packages whose new version only takes effect
// after a reboot.
func needsReboot(name string) bool { return strings.HasPrefix(name, "linux-image-") }

// Install installs each update's exact version with apt-get, one update at
// a time and in order. dpkg-query first confirms that dpkg knows the exact
// name, and afterwards that the version is installed: apt-get exits 0 when
// --only-upgrade skips a package that is not installed, so its exit status
// alone does not prove the install. A job holding an update Check refuses
// runs nothing; otherwise a failed update does not stop the following
// ones. The returned error is set only when ctx ends; the results then
// cover the updates tried so far.
func (b *Backend) Install(ctx context.Context, updates []*protocol.Update) ([]run.Result, error) {
	return b.each(ctx, updates, b.install)
}

// each checks every update of a job (one Check refuses runs nothing) and
// then runs step for each in turn, in apt's non-interactive environment.
// The error is set only when ctx ends; the results then cover the
// updates tried so far.
func (b *Backend) each(ctx context.Context, updates []*protocol.Update, step func(context.Context, *protocol.Update, []string) run.Result) ([]run.Result, error) {
	if refused := run.RefuseJob(updates, func(u *protocol.Update) error {
		if u.Source != Source {
			return nil // answered on its own by step
		}
		return Check(u)
	}); refused != nil {
		return refused, nil
	}
	env, err := b.aptEnv()
	if err != nil {
		return nil, err
	}
	env = append(env, "DEBIAN_FRONTEND=noninteractive")
	results := make([]run.Result, 0, len(updates))
	for _, u := range updates {
		if err := ctx.Err(); err != nil {
			return results, err
		}
		results = append(results, step(ctx, u, env))
	}
	return results, nil
}

func (b *Backend) install(ctx context.Context, u *protocol.Update, env []string) run.Result {
	res := run.Result{Update: u.ID}
	if u.Source != Source {
		res.Error = fmt.Sprintf("update %q is from %q, not %s", u.ID, u.Source, Source)
		return res
	}
	// apt-get reads a name no package has as a pattern over every name
	// (see args.go). dpkg-query reads "." and "+" literally, so a name it
	// knows is one apt-get finds exactly, whatever apt's version.
	_, stderr, err := b.run.Run(ctx, "dpkg-query", b.dpkgQueryArgs("-W", "--", u.Name), nil)
	if code, ok := run.ExitCode(err); ok && code == 1 {
		res.Error = fmt.Sprintf("update %q: dpkg knows no package named exactly %q; not passed to apt-get, which would read it as a pattern", u.ID, u.Name)
		return res
	}
	if err != nil {
		res.Error = fmt.Sprintf("before apt-get install: dpkg-query %s: %v: %s", u.Name, err, bytes.TrimSpace(stderr))
		return res
	}
	stdout, stderr, err := b.run.Run(ctx, "apt-get", installArgs(u.Name, u.Version), env)
	res.Output = run.Trim(stdout, stderr)
	if err != nil {
		res.Error = fmt.Sprintf("apt-get install %s=%s: %v", u.Name, u.Version, err)
		return res
	}
	out, stderr, err := b.run.Run(ctx, "dpkg-query", b.dpkgQueryArgs("-W", "-f=${Version}\t${db:Status-Status}", "--", u.Name), nil)
	if err != nil {
		res.Error = fmt.Sprintf("after apt-get install: dpkg-query %s: %v: %s", u.Name, err, bytes.TrimSpace(stderr))
		return res
	}
	version, status, _ := strings.Cut(strings.TrimSpace(string(out)), "\t")
	if version != u.Version || status != "installed" {
		res.Error = fmt.Sprintf("apt-get install %s=%s left version %q (%s)", u.Name, u.Version, version, status)
		return res
	}
	res.Succeeded = true
	return res
}

// RebootPending reports whether the root holds /run/reboot-required (or
// its older spelling under /var/run), which Debian and Ubuntu packages
// create when an upgrade needs a reboot.
func (b *Backend) RebootPending(ctx context.Context) (bool, error) {
	for _, p := range []string{"run/reboot-required", "var/run/reboot-required"} {
		_, err := os.Stat(filepath.Join(b.rootDir(), p))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("reboot flag: %w", err)
		}
	}
	return false, nil
}

// pkg is one installed package from dpkg-query.
type pkg struct{ name, version string }

// parseInstalled reads dpkg-query lines in installedFormat and keeps the
// packages whose status is "installed". Names carry an ":arch" qualifier
// when the package's architecture is neither native nor "all", as apt-get
// prints them.
func parseInstalled(out []byte, native string) ([]pkg, error) {
	var pkgs []pkg
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[0] == "" {
			return nil, fmt.Errorf("dpkg-query line %d: want 4 tab-separated fields, got %q", n, line)
		}
		if f[3] != "installed" {
			continue
		}
		name := f[0]
		if f[1] != native && f[1] != "all" && f[1] != "" {
			name += ":" + f[1]
		}
		pkgs = append(pkgs, pkg{name: name, version: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("dpkg-query output: %w", err)
	}
	return pkgs, nil
}

// upgrade is one "Inst" line of a simulated upgrade.
type upgrade struct {
	name, current, candidate string
	// releases name where the candidate comes from, e.g.
	// "Debian-Security:12/stable-security".
	releases []string
}

// security reports whether the candidate comes from a security suite.
func (u upgrade) security() bool {
	for _, r := range u.releases {
		if strings.Contains(strings.ToLower(r), "security") {
			return true
		}
	}
	return false
}

// parseSimulation reads apt-get -s output and returns the upgrades of
// installed packages, in apt's order. Lines that install a package not yet
// installed (a new dependency) have no "[current]" and are left out: apt
// installs them with the upgrade that needs them.
func parseSimulation(out []byte) ([]upgrade, error) {
	var ups []upgrade
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line, ok := strings.CutPrefix(sc.Text(), "Inst ")
		if !ok {
			continue
		}
		u, err := parseInst(line)
		if err != nil {
			return nil, fmt.Errorf("apt-get -s line %d: %w", n, err)
		}
		if u.current != "" {
			ups = append(ups, u)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("apt-get -s output: %w", err)
	}
	return ups, nil
}

// parseInst parses the part of an Inst line after "Inst ":
// "name [current] (candidate release, release [arch])", where "[current]"
// is absent for a new package and the line may end in further bracketed
// notes.
func parseInst(line string) (upgrade, error) {
	var u upgrade
	name, rest, ok := strings.Cut(line, " ")
	if !ok || name == "" {
		return u, fmt.Errorf("no version in %q", line)
	}
	u.name = name
	if cur, ok := strings.CutPrefix(rest, "["); ok {
		v, after, ok := strings.Cut(cur, "] ")
		if !ok || v == "" {
			return u, fmt.Errorf("unterminated installed version in %q", line)
		}
		u.current, rest = v, after
	}
	body, ok := strings.CutPrefix(rest, "(")
	if !ok {
		return u, fmt.Errorf("no candidate in %q", line)
	}
	body, _, ok = strings.Cut(body, ")")
	if !ok {
		return u, fmt.Errorf("unterminated candidate in %q", line)
	}
	cand, rels, _ := strings.Cut(body, " ")
	if cand == "" {
		return u, fmt.Errorf("empty candidate in %q", line)
	}
	u.candidate = cand
	// Drop the trailing "[arch]".
	if i := strings.LastIndex(rels, "["); i >= 0 {
		rels = rels[:i]
	}
	for _, r := range strings.Split(rels, ",") {
		if r = strings.TrimSpace(r); r != "" {
			u.releases = append(u.releases, r)
		}
	}
	return u, nil
}
