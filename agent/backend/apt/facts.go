package apt

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/agent/backend/apt/internal/changelog"
	"github.com/patchline/patchline/internal/atomicfile"
	"github.com/patchline/patchline/protocol"
)

// What the backend learns from the candidates' changelogs, and how much
// it spends learning it.
const (
	// factsFile, under Options.CacheDir, keeps what was learned per
	// upgrade, so a package is downloaded once per candidate version.
	factsFile = "changelog-facts.json"
	// fetchBudget bounds the time one inventory spends downloading and
	// reading packages; what it did not reach waits for the next
	// inventory, so a slow mirror delays a report by at most this.
	fetchBudget = 2 * time.Minute
	// triesPerSource bounds the packages of one source tried for its
	// changelog: a package whose doc directory is a symlink to a sibling's
	// ships none, and the next one is tried.
	triesPerSource = 3
	// maxCVEs is the most CVE ids one update reports: the controller
	// refuses a report with more.
	maxCVEs = 1000
)

// facts are what the candidate's changelog says about one upgrade, as the
// cache keeps them.
type facts struct {
	// Installed is the installed version the facts were read against:
	// the changelog entries counted are those after it.
	Installed     string    `json:"installed"`
	SourcePackage string    `json:"sourcePackage,omitempty"`
	CVEs          []string  `json:"cves,omitempty"`
	Urgency       string    `json:"urgency,omitempty"`
	Released      time.Time `json:"released,omitzero"`
}

func (f facts) apply(u *protocol.Update) {
	u.SourcePackage, u.CVEs, u.Urgency, u.Released = f.SourcePackage, f.CVEs, f.Urgency, f.Released
}

// cacheFile is the content of factsFile.
type cacheFile struct {
	// Updates maps update ids ("name@candidate") to their facts.
	Updates map[string]facts `json:"updates"`
}

// addFacts fills in each upgrade's SourcePackage, and the CVEs, Urgency
// and Released its candidate's changelog gives (see the package
// documentation), from the cache or by downloading the candidate. What it
// cannot learn stays empty and is logged: only the end of ctx makes it
// fail. The cache keeps the current upgrades' facts and nothing else.
func (b *Backend) addFacts(ctx context.Context, env []string, native string, upgrades []*protocol.Update) error {
	cached := b.loadFacts()
	kept := map[string]facts{}
	var todo []*protocol.Update
	for _, u := range upgrades {
		if f, ok := cached[u.ID]; ok && f.Installed == u.InstalledVersion {
			f.apply(u)
			kept[u.ID] = f
			continue
		}
		todo = append(todo, u)
	}
	if len(todo) > 0 {
		learned, err := b.learnFacts(ctx, env, native, todo)
		if err != nil {
			return err
		}
		for id, f := range learned {
			kept[id] = f
		}
	}
	b.saveFacts(kept)
	return nil
}

// loadFacts reads the cache; a missing or unreadable one is an empty one.
func (b *Backend) loadFacts() map[string]facts {
	if b.cacheDir == "" {
		return nil
	}
	path := filepath.Join(b.cacheDir, factsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var c cacheFile
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	if err != nil {
		b.log.Warn("changelog facts cache unreadable; starting afresh", "file", path, "err", err)
		return nil
	}
	return c.Updates
}

// saveFacts replaces the cache with kept.
func (b *Backend) saveFacts(kept map[string]facts) {
	if b.cacheDir == "" {
		return
	}
	path := filepath.Join(b.cacheDir, factsFile)
	data, err := json.MarshalIndent(cacheFile{Updates: kept}, "", "  ")
	if err == nil {
		err = os.MkdirAll(b.cacheDir, 0o700)
	}
	if err == nil {
		err = atomicfile.WriteFile(path, append(data, '\n'), 0o600)
	}
	if err != nil {
		b.log.Warn("cannot keep changelog facts; the next inventory reads the packages again", "file", path, "err", err)
	}
}

// candidate is what `apt-cache show` says of an upgrade's candidate.
type candidate struct {
	update *protocol.Update
	// pkg and arch name the .deb (pkg without an ":arch" qualifier).
	pkg, arch string
	// source and sourceVersion are the source package and its version;
	// sourceVersion differs from the candidate's only for a binNMU or a
	// package such as linux-signed-amd64's that versions its binaries
	// apart.
	source, sourceVersion string
	size                  int64
}

// learnFacts reads the candidates' changelogs for todo and returns the
// facts it established; an update missing from the result had none
// learned this time. Upgrades built from the same source package at the
// same version share one changelog, read from one of their packages.
func (b *Backend) learnFacts(ctx context.Context, env []string, native string, todo []*protocol.Update) (map[string]facts, error) {
	cands, err := b.showCandidates(ctx, env, native, todo)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		b.log.Warn("no changelog facts this inventory", "err", err)
		return nil, nil
	}
	dl, cleanup, err := b.downloadDir()
	if err != nil {
		b.log.Warn("no changelog facts this inventory", "err", err)
		return nil, nil
	}
	defer cleanup()

	fetchCtx, cancel := context.WithTimeout(ctx, fetchBudget)
	defer cancel()
	learned := map[string]facts{}
	var missing []string
	var fetchErr error // the first, to say why in the summary
	for _, group := range bySource(todo, cands) {
		entries, err := b.sourceEntries(fetchCtx, env, dl, group)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, errFetch) {
			b.log.Debug("cannot read the changelog", "source", group[0].source, "version", group[0].update.Version, "err", err)
			if fetchErr == nil {
				fetchErr = err
			}
		}
		for _, c := range group {
			f := facts{Installed: c.update.InstalledVersion, SourcePackage: c.source}
			if errors.Is(err, errFetch) {
				// Not kept: the next inventory tries again.
				f.apply(c.update)
				missing = append(missing, c.update.ID)
				continue
			}
			f, why := factsFromEntries(f, c, entries, err)
			if why != "" {
				b.log.Debug("no changelog facts", "update", c.update.ID, "why", why)
				missing = append(missing, c.update.ID)
			}
			f.apply(c.update)
			learned[c.update.ID] = f
		}
	}
	for _, u := range todo {
		if _, ok := cands[u.ID]; !ok {
			missing = append(missing, u.ID)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		attrs := []any{"count", len(missing), "updates", strings.Join(missing[:min(len(missing), 10)], " ")}
		if fetchErr != nil {
			attrs = append(attrs, "err", fetchErr)
		}
		b.log.Warn("updates reported without changelog facts (CVEs, urgency, release time)", attrs...)
	}
	return learned, nil
}

// errFetch marks failures to get or read a package, which may pass: their
// outcome is not cached.
var errFetch = errors.New("cannot read the package")

// factsFromEntries completes f, the facts of c's upgrade, from its
// source's changelog entries and the error that ended reading them. The
// entries counted are the candidate's own and the older ones down to, not
// including, the installed version's: changelogs list entries newest
// first, so no version comparison is needed. why says what could not be
// learned, or is "".
func factsFromEntries(f facts, c *candidate, entries []*changelog.Entry, readErr error) (facts, string) {
	if errors.Is(readErr, errNoChangelog) {
		return f, readErr.Error()
	}
	first := slices.IndexFunc(entries, func(e *changelog.Entry) bool {
		return e.Version == c.update.Version || e.Version == c.sourceVersion
	})
	switch {
	case first < 0 && readErr != nil:
		return f, readErr.Error()
	case first < 0:
		return f, fmt.Sprintf("the changelog has no entry for %s", c.update.Version)
	case entries[first].Source != c.source:
		return f, fmt.Sprintf("the changelog is of source %s, not %s", entries[first].Source, c.source)
	}
	// A binNMU ("1.2-3+b1") carries its source's entries: the installed
	// rebuild's source version ends the range too.
	installed := c.update.InstalledVersion
	installedSource := binNMU.ReplaceAllString(installed, "")
	end := first + 1
	for end < len(entries) && entries[end].Version != installed && entries[end].Version != installedSource {
		end++
	}
	if end == len(entries) {
		// The installed version never appears (a local build, a changelog
		// trimmed past it, or one that could not be read that far): only
		// the candidate's own entry is known to be news.
		end = first + 1
	}
	in := entries[first:end]
	f.CVEs = changelog.CVEs(in)
	if len(f.CVEs) > maxCVEs {
		f.CVEs = f.CVEs[len(f.CVEs)-maxCVEs:] // the newest
	}
	f.Urgency = changelog.Urgency(in)
	f.Released = entries[first].Date
	return f, ""
}

// binNMU matches the suffix of a binary-only rebuild's version.
var binNMU = regexp.MustCompile(`\+b[0-9]+$`)

// bySource groups the upgrades apt-cache described by (source package,
// candidate version), in the order of todo, each group's packages in the
// order to try them in: the smallest download first.
func bySource(todo []*protocol.Update, cands map[string]*candidate) [][]*candidate {
	index := map[string]int{}
	var groups [][]*candidate
	for _, u := range todo {
		c, ok := cands[u.ID]
		if !ok {
			continue
		}
		key := c.source + " " + u.Version
		i, ok := index[key]
		if !ok {
			i = len(groups)
			index[key] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], c)
	}
	for _, g := range groups {
		slices.SortStableFunc(g, func(a, b *candidate) int { return cmp.Compare(a.size, b.size) })
	}
	return groups
}

// sourceEntries reads the changelog entries of a group's source from the
// first of its packages (at most triesPerSource) that ships a changelog.
// An error wrapping errFetch says no package could be read.
func (b *Backend) sourceEntries(ctx context.Context, env []string, dl string, group []*candidate) ([]*changelog.Entry, error) {
	for _, c := range group[:min(len(group), triesPerSource)] {
		d, err := b.fetchDocs(ctx, env, dl, c)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", errFetch, c.update.ID, err)
		}
		entries, perr := d.entries()
		if !errors.Is(perr, errNoChangelog) {
			if perr != nil {
				perr = fmt.Errorf("package %s %s: %w", c.pkg, c.update.Version, perr)
			}
			return entries, perr
		}
	}
	return nil, errNoChangelog
}

// fetchDocs reads the changelogs of c's candidate package, from apt's
// archive cache when the package is there, or else downloaded with
// `apt-get download` from the endpoint's own sources.
func (b *Backend) fetchDocs(ctx context.Context, env []string, dl string, c *candidate) (docs, error) {
	if err := ctx.Err(); err != nil {
		return docs{}, err
	}
	// apt names its archives so, with the epoch's colon escaped.
	archived := filepath.Join(b.rootDir(), "var", "cache", "apt", "archives",
		c.pkg+"_"+strings.ReplaceAll(c.update.Version, ":", "%3a")+"_"+c.arch+".deb")
	if _, err := os.Stat(archived); err == nil {
		return readDocs(ctx, archived, c.pkg, c.arch)
	}
	dir := filepath.Join(dl, c.update.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return docs{}, err
	}
	defer os.RemoveAll(dir)
	// apt-get download writes to its working directory, and a Runner runs
	// commands in the agent's: env (coreutils, in every Debian and Ubuntu
	// since 2018) changes it without a shell.
	_, stderr, err := b.run.Run(ctx, "env", []string{"--chdir=" + dir, "apt-get", "download", "-q", c.update.Name + "=" + c.update.Version}, env)
	if err != nil {
		return docs{}, fmt.Errorf("apt-get download %s=%s: %w: %s", c.update.Name, c.update.Version, err, bytes.TrimSpace(stderr))
	}
	debs, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil || len(debs) != 1 {
		return docs{}, fmt.Errorf("apt-get download %s=%s left %d packages, want 1", c.update.Name, c.update.Version, len(debs))
	}
	return readDocs(ctx, debs[0], c.pkg, c.arch)
}

// downloadDir returns where packages are downloaded to be read, and a
// function that removes what is left there.
func (b *Backend) downloadDir() (string, func(), error) {
	if b.cacheDir == "" {
		dir, err := os.MkdirTemp("", "patchline-apt-")
		if err != nil {
			return "", nil, fmt.Errorf("download directory: %w", err)
		}
		return dir, func() { os.RemoveAll(dir) }, nil
	}
	dir := filepath.Join(b.cacheDir, "download")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("download directory: %w", err)
	}
	return dir, func() {}, nil
}

// showCandidates asks apt-cache for the candidates of todo, and returns
// them by update id. A candidate apt-cache does not describe, or whose
// name or version could not be passed safely on a command line, is left
// out.
func (b *Backend) showCandidates(ctx context.Context, env []string, native string, todo []*protocol.Update) (map[string]*candidate, error) {
	args := []string{"show"}
	for _, u := range todo {
		if checkPackage(u.Name, u.Version) == nil {
			args = append(args, u.Name+"="+u.Version)
		}
	}
	if len(args) == 1 {
		return nil, nil
	}
	out, stderr, err := b.run.Run(ctx, "apt-cache", args, env)
	if err != nil {
		return nil, fmt.Errorf("apt-cache show: %w: %s", err, bytes.TrimSpace(stderr))
	}
	return parseShow(out, native, todo)
}

// parseShow reads `apt-cache show` records (Debian control paragraphs)
// and returns those of todo's candidates by update id.
func parseShow(out []byte, native string, todo []*protocol.Update) (map[string]*candidate, error) {
	want := map[string]*protocol.Update{}
	for _, u := range todo {
		want[u.ID] = u
	}
	cands := map[string]*candidate{}
	rec := map[string]string{}
	flush := func() error {
		defer clear(rec)
		pkg, arch, version := rec["Package"], rec["Architecture"], rec["Version"]
		if pkg == "" {
			return nil
		}
		name := pkg
		if arch != native && arch != "all" {
			name += ":" + arch
		}
		id := name + "@" + version
		u, ok := want[id]
		if !ok || cands[id] != nil {
			return nil
		}
		c := &candidate{update: u, pkg: pkg, arch: arch, source: pkg, sourceVersion: version}
		// "Source: linux-signed-amd64 (6.1.128+1)"; absent when the
		// source package has the binary's name and version.
		if s := rec["Source"]; s != "" {
			src, ver, _ := strings.Cut(s, " ")
			c.source = src
			if v := strings.Trim(ver, "()"); v != "" {
				c.sourceVersion = v
			}
		}
		if s := rec["Size"]; s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fmt.Errorf("apt-cache show %s: size %q", id, s)
			}
			c.size = n
		}
		cands[id] = c
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			if err := flush(); err != nil {
				return nil, err
			}
		case line[0] == ' ' || line[0] == '\t':
			// A continuation line of a multi-line field.
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("apt-cache show: not a field: %q", line)
			}
			rec[k] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("apt-cache show output: %w", err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return cands, nil
}
