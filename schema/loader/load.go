package loader

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/patchline/patchline/schema"
)

// ErrNotFleetRepo is returned when a directory or revision has no
// cue.mod/module.cue.
var ErrNotFleetRepo = errors.New("not a fleet repository: no " + schema.ModuleFile)

// Default limits of one client's evaluation in a child evaluator.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMemoryLimit = 512 * MiB
)

// Options configure a Loader.
type Options struct {
	// Now is the time the warnings that depend on it (exclusions that
	// expire, resume entries dated later) are computed against;
	// zero means time.Now() at each load.
	Now time.Time
	// Evaluator, when set, evaluates each client in a child process of
	// its own, run from it, under Timeout and MemoryLimit: what patchd and
	// patchctl do (SelfEvaluator). When nil, clients are evaluated in the
	// calling process with no limit at all, which only tests and
	// benchmarks of trusted files may do: CUE evaluation cannot be
	// interrupted, so a runaway comprehension would run on in the caller.
	Evaluator *Command
	// Timeout is how long a child evaluator may run before it is killed
	// and its client refused; zero means DefaultTimeout.
	Timeout time.Duration
	// MemoryLimit is the resident memory a child evaluator may use before
	// it is killed and its client refused; zero means DefaultMemoryLimit.
	MemoryLimit Bytes
}

// Loader loads fleet repositories. It is safe for concurrent use. It
// caches each client's evaluation by schema.Client.Digest, so reloading a
// fleet after editing one client re-evaluates only that client.
type Loader struct {
	opts Options

	// slots holds one token per evaluation under way, across every load
	// of this Loader: at most GOMAXPROCS run at once. A child's token is
	// given back once the child has been reaped, which its limits bound,
	// so a runaway never keeps its slot past its deadline.
	slots chan struct{}
	// contexts holds idle evaluation contexts for reuse by in-process
	// evaluations.
	contexts chan *evalContext

	// mu guards cache and loads.
	mu    sync.Mutex
	cache map[string]*cacheEntry
	// loads counts loads; cache entries remember the last load that used
	// them so the oldest can be evicted.
	loads uint64
}

// cacheEntry is the outcome of evaluating one client's files.
type cacheEntry struct {
	res      evalResult
	lastUsed uint64
}

// New returns a Loader with opts.
func New(opts Options) *Loader {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MemoryLimit <= 0 {
		opts.MemoryLimit = DefaultMemoryLimit
	}
	return &Loader{
		opts:     opts,
		slots:    make(chan struct{}, runtime.GOMAXPROCS(0)),
		contexts: make(chan *evalContext, runtime.GOMAXPROCS(0)),
		cache:    make(map[string]*cacheEntry),
	}
}

// LoadDir loads the fleet repository in the working tree dir. Only the
// files that make up the fleet are read: cue.mod/, root *.cue files and
// clients/**. The returned error says the repository could not be read at
// all; policy problems are in schema.Fleet.Problems.
func (l *Loader) LoadDir(ctx context.Context, dir string) (*schema.Fleet, error) {
	files, err := readFleetFiles(dir)
	if err != nil {
		return nil, err
	}
	return l.LoadFiles(ctx, files, "")
}

// readFleetFiles reads the files of the fleet repository in dir that make
// up the fleet, keyed by slash-separated path.
func readFleetFiles(dir string) (map[string][]byte, error) {
	files := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && !wanted(rel, true) {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !wanted(rel, false) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[rel] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read fleet repository %s: %w", dir, err)
	}
	return files, nil
}

// Wants says whether the file at a slash-separated repository path is
// one that makes up a fleet: a .cue file under cue.mod/, in the root
// directory or under clients/. LoadFiles ignores every other file, so a
// caller that reads a repository itself need read only these.
func (l *Loader) Wants(path string) bool { return wanted(path, false) }

// wanted says whether a slash-separated repository path (a directory when
// dir is set) can hold files that make up the fleet.
func wanted(p string, dir bool) bool {
	if dir {
		first, _, _ := strings.Cut(p, "/")
		return first == "cue.mod" || first == "clients" || first == "scripts"
	}
	if isScript(p) {
		return true
	}
	if strings.HasPrefix(p, "cue.mod/") {
		return strings.HasSuffix(p, ".cue")
	}
	if !strings.HasSuffix(p, ".cue") {
		return false
	}
	return !strings.Contains(p, "/") || strings.HasPrefix(p, "clients/")
}

// isScript says whether the repository path p is in one of the
// directories hook scripts live in: scripts/ or clients/<id>/scripts/.
func isScript(p string) bool {
	if strings.HasPrefix(p, "scripts/") {
		return true
	}
	parts := strings.SplitN(p, "/", 4)
	return len(parts) == 4 && parts[0] == "clients" && parts[2] == "scripts"
}

// LoadFiles loads a fleet repository given as its files, keyed by
// slash-separated path relative to the repository root. revision is
// recorded in schema.Fleet.Revision. LoadDir calls it, and so does
// reconciler/source's LoadRevision with the files of a Git revision.
//
// A client that exceeds a child evaluator's limits is refused with a
// problem at its first file. The error says the fleet could not be loaded
// at all: ctx ended, the files are not a fleet repository (ErrNotFleetRepo)
// or the child evaluator could not run (ErrEvaluator).
//
// Fleets loaded by one Loader share the *schema.Client of every client
// whose files did not change, so callers must treat clients as read-only.
func (l *Loader) LoadFiles(ctx context.Context, files map[string][]byte, revision string) (*schema.Fleet, error) {
	return l.load(ctx, files, revision, nil)
}

// LoadClients is LoadFiles for the clients named in ids alone: the
// others are not evaluated, and the fleet holds only the named clients
// and their problems. patchd uses it after a restart to evaluate each
// client at the revision it last applied.
func (l *Loader) LoadClients(ctx context.Context, files map[string][]byte, revision string, ids []string) (*schema.Fleet, error) {
	if ids == nil {
		ids = []string{}
	}
	return l.load(ctx, files, revision, ids)
}

// load loads the clients named in only, or every client when only is nil.
func (l *Loader) load(ctx context.Context, files map[string][]byte, revision string, only []string) (*schema.Fleet, error) {
	if _, ok := files[schema.ModuleFile]; !ok {
		return nil, ErrNotFleetRepo
	}
	now := l.opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	fleet := &schema.Fleet{Revision: revision, Clients: make(map[string]*schema.Client)}

	shared, clients, problems := layout(files)
	if only != nil {
		clients = slices.DeleteFunc(clients, func(c clientFiles) bool { return !slices.Contains(only, c.id) })
		problems = slices.DeleteFunc(problems, func(p schema.Problem) bool { return !slices.Contains(only, p.Client) })
	}
	fleet.Problems = append(fleet.Problems, problems...)

	l.mu.Lock()
	l.loads++
	gen := l.loads
	l.mu.Unlock()

	results := make([]evalResult, len(clients))
	errs := make([]error, len(clients))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(clients)) {
		wg.Go(func() {
			for i := range jobs {
				results[i], errs[i] = l.client(ctx, files, shared, clients[i], gen)
			}
		})
	}
	for i := range clients {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load fleet: %w", err)
	}
	for _, err := range errs {
		if err != nil {
			// One is enough: an evaluator that cannot run fails every
			// client the same way.
			return nil, fmt.Errorf("load fleet: %w", err)
		}
	}
	l.evict(gen, len(clients))

	for i, c := range clients {
		r := results[i]
		fleet.Problems = append(fleet.Problems, r.problems...)
		if r.client == nil {
			// The warnings of a client with errors still show, so that
			// fixing the errors brings no surprise.
			if r.partial != nil {
				fleet.Problems = append(fleet.Problems, timeWarnings(r.partial, now)...)
				_, ps := withScripts(files, r.partial)
				fleet.Problems = append(fleet.Problems, ps...)
			}
			continue
		}
		client, ps := withScripts(files, r.client)
		fleet.Problems = append(fleet.Problems, ps...)
		if client == nil {
			continue
		}
		fleet.Clients[c.id] = client
		fleet.Problems = append(fleet.Problems, timeWarnings(r.client, now)...)
	}
	if only == nil {
		fleet.Problems = append(fleet.Problems, copyWarnings(files)...)
	}
	fleet.Problems = sortProblems(fleet.Problems)
	return fleet, nil
}

// clientFiles names one client directory and the files that make it up.
type clientFiles struct {
	id  string
	dir string
	// own are the .cue files directly in dir.
	own []string
}

// layout splits a repository into the files every client shares
// (cue.mod/, but for the schema's copy, and the .cue files of the root and
// clients/ directories, which CUE unifies into every client below them)
// and the client directories.
func layout(files map[string][]byte) (shared []string, clients []clientFiles, problems []schema.Problem) {
	byDir := make(map[string][]string)
	dirs := make(map[string]bool)
	for p := range files {
		if isScript(p) && !strings.HasSuffix(p, ".cue") {
			// Hook scripts are read after evaluation (scripts.go).
			continue
		}
		// The schema's copy is never evaluated (see repo.go): leaving it
		// out of every client's files keeps it out of their digests and
		// of the requests to child evaluators.
		if !wanted(p, false) || inSchemaPackage(p) {
			continue
		}
		switch d := path.Dir(p); {
		case d == "." || d == "clients" || strings.HasPrefix(p, "cue.mod/"):
			shared = append(shared, p)
		case strings.HasPrefix(d, "clients/"):
			parts := strings.Split(d, "/")
			dirs[parts[0]+"/"+parts[1]] = true
			if len(parts) == 2 {
				byDir[d] = append(byDir[d], p)
			}
		}
	}
	slices.Sort(shared)
	for d := range dirs {
		own := byDir[d]
		if len(own) == 0 {
			problems = append(problems, schema.Problem{
				Pos:     schema.Pos{File: d},
				Level:   schema.LevelWarning,
				Message: "directory has no .cue files of its own; it is not loaded as a client",
				Client:  path.Base(d),
			})
			continue
		}
		slices.Sort(own)
		clients = append(clients, clientFiles{id: path.Base(d), dir: d, own: own})
	}
	slices.SortFunc(clients, func(a, b clientFiles) int { return cmp.Compare(a.id, b.id) })
	return shared, clients, problems
}

// digest hashes the schema and the named files, sorted by path.
func digest(files map[string][]byte, names []string) string {
	names = slices.Clone(names)
	slices.Sort(names)
	h := sha256.New()
	fmt.Fprintf(h, "schema %d\n", len(schema.CUE))
	io.WriteString(h, schema.CUE)
	for _, n := range names {
		fmt.Fprintf(h, "\nfile %q %d\n", n, len(files[n]))
		h.Write(files[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// client returns the evaluation of one client, from the cache when its
// files are unchanged.
func (l *Loader) client(ctx context.Context, files map[string][]byte, shared []string, c clientFiles, gen uint64) (evalResult, error) {
	names := append(slices.Clone(shared), c.own...)
	sum := digest(files, names)

	l.mu.Lock()
	if e, ok := l.cache[sum]; ok {
		e.lastUsed = gen
		l.mu.Unlock()
		return e.res, nil
	}
	l.mu.Unlock()

	sub := make(map[string][]byte, len(names))
	for _, n := range names {
		sub[n] = files[n]
	}
	res, cache, err := l.evaluateInSlot(ctx, sub, c, sum)
	if err != nil || !cache {
		return res, err
	}
	// An outcome at a limit is cached too: reloading the same files
	// refuses the client again without running it again.
	l.mu.Lock()
	l.cache[sum] = &cacheEntry{res: res, lastUsed: gen}
	l.mu.Unlock()
	return res, nil
}

// evaluateInSlot evaluates one client from files, which hold only the
// files that make it up, in a slot: in a child evaluator when the Loader has
// one, else in this process. cache is false when the outcome must not be
// cached (see evaluateInChild).
func (l *Loader) evaluateInSlot(ctx context.Context, files map[string][]byte, c clientFiles, sum string) (res evalResult, cache bool, err error) {
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return evalResult{}, false, ctx.Err()
	}
	defer func() { <-l.slots }()
	if l.opts.Evaluator != nil {
		return l.evaluateInChild(ctx, files, c, sum)
	}
	ec := l.context()
	if ec == nil {
		if ec, err = newEvalContext(); err != nil {
			return c.fail(err.Error()), true, nil
		}
	}
	res, ok := evaluateSafely(ec, files, c, sum)
	if ok {
		l.release(ec)
	}
	return res, true, nil
}

// context returns an idle evaluation context, or nil when there is none.
func (l *Loader) context() *evalContext {
	select {
	case ec := <-l.contexts:
		return ec
	default:
		return nil
	}
}

// release hands ec back for reuse after an evaluation that ended normally.
func (l *Loader) release(ec *evalContext) {
	ec.uses++
	if ec.uses >= maxContextUses {
		return
	}
	select {
	case l.contexts <- ec:
	default:
	}
}

// evict drops the cache entries least recently used once the cache holds
// more than twice the clients of the latest load, so a long-running
// controller keeps the current and the previous revision's clients.
func (l *Loader) evict(gen uint64, n int) {
	limit := max(2*n, 64)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cache) <= limit {
		return
	}
	type kv struct {
		key  string
		used uint64
	}
	all := make([]kv, 0, len(l.cache))
	for k, e := range l.cache {
		all = append(all, kv{k, e.lastUsed})
	}
	slices.SortFunc(all, func(a, b kv) int { return cmp.Compare(a.used, b.used) })
	for _, e := range all[:len(all)-limit] {
		if e.used == gen {
			break
		}
		delete(l.cache, e.key)
	}
}

// sortProblems sorts problems by file, line, column and message and drops
// duplicates: a problem in the root files is found once per client.
func sortProblems(ps []schema.Problem) []schema.Problem {
	slices.SortFunc(ps, func(a, b schema.Problem) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Level, b.Level),
			cmp.Compare(a.Message, b.Message),
			cmp.Compare(a.Client, b.Client),
		)
	})
	return slices.Compact(ps)
}
