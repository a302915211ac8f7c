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

// DefaultTimeout is how long one client's evaluation may run when
// Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Options configure a Loader.
type Options struct {
	// Now is the time exclusion expiry warnings are computed against;
	// zero means time.Now() at each load.
	Now time.Time
	// Timeout bounds one client's evaluation; zero means DefaultTimeout.
	Timeout time.Duration
}

// Loader loads fleet repositories. It is safe for concurrent use. It
// caches each client's evaluation by schema.Client.Digest, so reloading a
// fleet after editing one client re-evaluates only that client.
type Loader struct {
	opts Options

	// slots holds one token per evaluation goroutine that is still running,
	// including those abandoned after their deadline. Its capacity bounds
	// the CPU and memory a pathological repository can tie up.
	slots chan struct{}
	// contexts holds idle evaluation contexts for reuse.
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
	return l.LoadFiles(ctx, files, "")
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
		return first == "cue.mod" || first == "clients"
	}
	if strings.HasPrefix(p, "cue.mod/") {
		return strings.HasSuffix(p, ".cue")
	}
	if !strings.HasSuffix(p, ".cue") {
		return false
	}
	return !strings.Contains(p, "/") || strings.HasPrefix(p, "clients/")
}

// LoadFiles loads a fleet repository given as its files, keyed by
// slash-separated path relative to the repository root. revision is
// recorded in schema.Fleet.Revision. LoadDir calls it, and so does
// reconciler/source's LoadRevision with the files of a Git revision.
//
// Fleets loaded by one Loader share the *schema.Client of every client
// whose files did not change, so callers must treat clients as read-only.
func (l *Loader) LoadFiles(ctx context.Context, files map[string][]byte, revision string) (*schema.Fleet, error) {
	if _, ok := files[schema.ModuleFile]; !ok {
		return nil, ErrNotFleetRepo
	}
	now := l.opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	fleet := &schema.Fleet{Revision: revision, Clients: make(map[string]*schema.Client)}

	shared, clients, problems := layout(files)
	fleet.Problems = append(fleet.Problems, problems...)

	l.mu.Lock()
	l.loads++
	gen := l.loads
	l.mu.Unlock()

	results := make([]evalResult, len(clients))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(clients)) {
		wg.Go(func() {
			for i := range jobs {
				results[i] = l.client(ctx, files, shared, clients[i], gen)
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
	l.evict(gen, len(clients))

	for i, c := range clients {
		r := results[i]
		fleet.Problems = append(fleet.Problems, r.problems...)
		if r.client == nil {
			continue
		}
		fleet.Clients[c.id] = r.client
		fleet.Problems = append(fleet.Problems, expiryWarnings(r.client, now)...)
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
// (cue.mod/ and the .cue files of the root and clients/ directories, which
// CUE unifies into every client below them) and the client directories.
func layout(files map[string][]byte) (shared []string, clients []clientFiles, problems []schema.Problem) {
	byDir := make(map[string][]string)
	dirs := make(map[string]bool)
	for p := range files {
		if !wanted(p, false) {
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
func (l *Loader) client(ctx context.Context, files map[string][]byte, shared []string, c clientFiles, gen uint64) evalResult {
	names := append(slices.Clone(shared), c.own...)
	sum := digest(files, names)

	l.mu.Lock()
	if e, ok := l.cache[sum]; ok {
		e.lastUsed = gen
		l.mu.Unlock()
		return e.res
	}
	l.mu.Unlock()

	res, ok := l.evaluateWithDeadline(ctx, files, names, c, sum)
	if !ok {
		return res
	}
	l.mu.Lock()
	l.cache[sum] = &cacheEntry{res: res, lastUsed: gen}
	l.mu.Unlock()
	return res
}

// evaluateWithDeadline evaluates one client in its own goroutine and gives
// up waiting after Options.Timeout. ok is false when the outcome must not
// be cached because ctx ended first.
//
// CUE evaluation cannot be interrupted, so a client past its deadline is
// abandoned: its goroutine runs on with its own cue.Context, touching no
// shared state, and its result is dropped. That is acceptable because the
// goroutine holds one of the Loader's slots until it ends, so at most
// GOMAXPROCS evaluations run at any time, abandoned or not, and because the
// timeout outcome is cached by digest: reloading the same files reports the
// timeout again without starting another evaluation.
func (l *Loader) evaluateWithDeadline(ctx context.Context, files map[string][]byte, names []string, c clientFiles, sum string) (evalResult, bool) {
	timer := time.NewTimer(l.opts.Timeout)
	defer timer.Stop()
	timedOut := evalResult{problems: []schema.Problem{{
		Pos:     schema.Pos{File: c.own[0], Line: 1, Col: 1},
		Level:   schema.LevelError,
		Message: fmt.Sprintf("evaluation exceeded %s; simplify disjunctions/comprehensions", l.opts.Timeout),
		Client:  c.id,
	}}}

	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return evalResult{}, false
	case <-timer.C:
		// Every slot is held by an evaluation still running past its
		// own deadline.
		timedOut.problems[0].Message = fmt.Sprintf("evaluation could not start within %s: earlier evaluations are still running past their deadline", l.opts.Timeout)
		return timedOut, false
	}

	sub := make(map[string][]byte, len(names))
	for _, n := range names {
		sub[n] = files[n]
	}
	done := make(chan evalResult, 1)
	go func() {
		defer func() { <-l.slots }()
		// A panic inside CUE must not take the controller down: it
		// becomes a problem of this client.
		defer func() {
			if r := recover(); r != nil {
				done <- evalResult{problems: []schema.Problem{{
					Pos:     schema.Pos{File: c.own[0], Line: 1, Col: 1},
					Level:   schema.LevelError,
					Message: fmt.Sprintf("internal error evaluating the client: %v", r),
					Client:  c.id,
				}}}
			}
		}()
		ec := l.context()
		if ec == nil {
			var err error
			if ec, err = newEvalContext(); err != nil {
				done <- evalResult{problems: []schema.Problem{{Pos: timedOut.problems[0].Pos, Level: schema.LevelError, Message: err.Error(), Client: c.id}}}
				return
			}
		}
		res := evaluate(ec, sub, c, sum)
		l.release(ec)
		done <- res
	}()
	select {
	case res := <-done:
		return res, true
	case <-ctx.Done():
		return evalResult{}, false
	case <-timer.C:
		return timedOut, true
	}
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
