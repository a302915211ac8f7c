package loader

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing/fstest"
	"time"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/errors"
	"cuelang.org/go/cue/load"
	"cuelang.org/go/cue/token"

	"github.com/patchline/patchline/schema"

	// Time zones must resolve the same on every machine, including
	// Windows hosts without a zoneinfo database.
	_ "time/tzdata"
)

// schemaFile is the name positions in the embedded schema carry; it
// cannot be a repository path, so such positions are never shown.
const schemaFile = "<patchline schema>/fleet.cue"

// maxContextUses bounds how many clients one cue.Context evaluates: a
// context keeps every instance built in it, so it is dropped after a
// while to return that memory.
const maxContextUses = 64

// evalContext is a cue.Context with the schema compiled into it, so the
// schema is compiled once per context rather than once per client. One
// evaluation uses it at a time.
type evalContext struct {
	ctx *cue.Context
	// fleet is the schema's #Fleet definition.
	fleet cue.Value
	uses  int
}

func newEvalContext() (*evalContext, error) {
	ctx := cuecontext.New()
	sch := ctx.CompileString(schema.CUE, cue.Filename(schemaFile))
	fleet := sch.LookupPath(cue.MakePath(cue.Def("#Fleet")))
	if err := fleet.Err(); err != nil {
		return nil, fmt.Errorf("compile embedded schema: %w", err)
	}
	return &evalContext{ctx: ctx, fleet: fleet}, nil
}

// packageName is the CUE package of every fleet file.
const packageName = "fleet"

// evalResult is the outcome of evaluating one client: the client when it
// has no error-level problem, and its problems (minus the expiry warnings,
// which depend on the time of the load).
type evalResult struct {
	client   *schema.Client
	problems []schema.Problem
}

// defaultable are the lists a client takes from defaults.<field> when it
// does not write them; see the convention in fleet.cue.
var defaultable = []string{
	"freezes", "rings", "exclusions", "resume", "baseline.approve", "baseline.require",
}

// evaluateSafely is evaluate with a panic inside CUE turned into a problem
// of the client, so that it takes down neither the controller nor a child
// evaluator's answer. ok is false after a panic: ec must not be reused.
func evaluateSafely(ec *evalContext, files map[string][]byte, c clientFiles, sum string) (res evalResult, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			res, ok = c.fail(fmt.Sprintf("internal error evaluating the client: %v", r)), false
		}
	}()
	return evaluate(ec, files, c, sum), true
}

// evaluate loads, validates and decodes one client from files, which hold
// only the files that make it up, in ec, which it uses alone.
func evaluate(ec *evalContext, files map[string][]byte, c clientFiles, sum string) evalResult {
	ev := &evaluation{files: files, c: c}
	fsys := make(fstest.MapFS, len(files))
	for n, b := range files {
		fsys[n] = &fstest.MapFile{Data: b}
	}
	// FS keeps the loader off the host filesystem: a revision load reads
	// the commit's files and nothing else.
	cfg := &load.Config{
		FS:         fsys,
		Dir:        "/",
		ModuleRoot: "/",
		FromFSPath: func(p string) string { return strings.TrimPrefix(p, "/") },
	}
	insts := load.Instances([]string{"./" + c.dir}, cfg)
	if len(insts) != 1 {
		return ev.fail(ev.errorf(schema.Pos{}, "%s: expected one CUE instance, got %d", c.dir, len(insts)))
	}
	if err := insts[0].Err; err != nil {
		return ev.fail(ev.fromCUE(err)...)
	}
	if name := insts[0].PkgName; name != packageName {
		// A different package would silently leave out the root files.
		return ev.fail(ev.errorf(ev.packagePos(insts[0].Files), "package %s: client files must be in package %s, like the root files", name, packageName))
	}
	ctx := ec.ctx
	ev.inst = ctx.BuildInstance(insts[0])
	if err := ev.inst.Err(); err != nil {
		return ev.fail(ev.fromCUE(err)...)
	}
	// Lists the client leaves out come from defaults.<field>. They are
	// gathered in one small struct so that applying them costs one
	// unification, however many lists the client inherits.
	ev.source = make(map[string]string)
	fill := ctx.CompileString("{}")
	for _, f := range defaultable {
		if ev.inst.LookupPath(cue.ParsePath(f)).Exists() {
			continue
		}
		d := ev.inst.LookupPath(cue.ParsePath("defaults." + f))
		if d.Exists() {
			fill = fill.FillPath(cue.ParsePath(f), d)
			ev.source[f] = "defaults." + f
		}
	}
	u := ec.fleet
	if len(ev.source) > 0 {
		u = u.Unify(fill)
	}
	u = u.Unify(ev.inst)
	if err := u.Validate(cue.Concrete(true)); err != nil {
		return ev.fail(ev.fromCUE(err)...)
	}
	var raw rawFleet
	if err := u.Decode(&raw); err != nil {
		return ev.fail(ev.fromCUE(err)...)
	}
	client := ev.decode(&raw)
	client.Digest = sum
	ev.vet(client)
	res := evalResult{problems: ev.problems}
	if !ev.failed {
		res.client = client
	}
	return res
}

// evaluation is the state of evaluating one client.
type evaluation struct {
	files map[string][]byte
	c     clientFiles
	// inst is the client instance before the schema is applied; its
	// positions are the user's.
	inst cue.Value
	// source maps a top-level field taken from defaults to the path it
	// came from, so positions point at the root file that wrote it.
	source   map[string]string
	problems []schema.Problem
	failed   bool
}

func (ev *evaluation) fail(ps ...schema.Problem) evalResult {
	ev.problems = append(ev.problems, ps...)
	return evalResult{problems: ev.problems}
}

// problem builds a Problem at p, attributed to the client when p is in its
// directory and to the whole fleet otherwise.
func (ev *evaluation) problem(level schema.ProblemLevel, p schema.Pos, msg string) schema.Problem {
	if p.File == "" {
		p = schema.Pos{File: ev.c.own[0], Line: 1, Col: 1}
	}
	pr := schema.Problem{Pos: p, Level: level, Message: msg}
	if strings.HasPrefix(p.File, ev.c.dir+"/") {
		pr.Client = ev.c.id
	}
	return pr
}

func (ev *evaluation) errorf(p schema.Pos, format string, args ...any) schema.Problem {
	return ev.problem(schema.LevelError, p, fmt.Sprintf(format, args...))
}

// addError records an error-level problem; the client will not load.
func (ev *evaluation) addError(p schema.Pos, format string, args ...any) {
	ev.failed = true
	ev.problems = append(ev.problems, ev.errorf(p, format, args...))
}

func (ev *evaluation) addWarning(p schema.Pos, format string, args ...any) {
	ev.problems = append(ev.problems, ev.problem(schema.LevelWarning, p, fmt.Sprintf(format, args...)))
}

// repoPos converts a CUE position to a repository position, or the zero
// Pos when it is not in one of the client's files.
func (ev *evaluation) repoPos(tp token.Pos) schema.Pos {
	if !tp.IsValid() {
		return schema.Pos{}
	}
	if _, ok := ev.files[tp.Filename()]; !ok {
		return schema.Pos{}
	}
	return schema.Pos{File: tp.Filename(), Line: tp.Line(), Col: tp.Column()}
}

// pickPos chooses the position to report among candidates: the first in
// the client's own directory, else the first in a root file.
func (ev *evaluation) pickPos(cands []token.Pos) schema.Pos {
	var shared schema.Pos
	for _, tp := range cands {
		p := ev.repoPos(tp)
		if p.File == "" {
			continue
		}
		if strings.HasPrefix(p.File, ev.c.dir+"/") {
			return p
		}
		if shared.File == "" {
			shared = p
		}
	}
	return shared
}

// fromCUE turns a CUE error into problems, one per distinct message.
func (ev *evaluation) fromCUE(err error) []schema.Problem {
	ev.failed = true
	var out []schema.Problem
	seen := make(map[string]bool)
	for _, e := range simplify(errors.Errors(err)) {
		format, args := e.Msg()
		msg := explain(fmt.Sprintf(format, args...))
		if p := userPath(e.Path()); p != "" {
			msg = p + ": " + msg
		}
		cands := append([]token.Pos{e.Position()}, e.InputPositions()...)
		p := ev.pickPos(cands)
		if p.File == "" && ev.inst.Exists() {
			// A required field the user left out has only schema
			// positions: point at the value that should hold it.
			p = ev.pos(cuePath(e.Path()))
		}
		pr := ev.problem(schema.LevelError, p, msg)
		if key := pr.String(); !seen[key] {
			seen[key] = true
			out = append(out, pr)
		}
	}
	return out
}

// userPath formats a CUE error path as the user wrote it, without the
// schema's #Fleet prefix.
func userPath(p []string) string {
	if len(p) > 0 && p[0] == "#Fleet" {
		p = p[1:]
	}
	return strings.Join(p, ".")
}

// cuePath turns the path of a CUE error into a path string for
// LookupPath: ["#Fleet", "rings", "0", "window"] becomes rings[0].window.
func cuePath(segs []string) string {
	if len(segs) > 0 && segs[0] == "#Fleet" {
		segs = segs[1:]
	}
	var b strings.Builder
	for _, s := range segs {
		if _, err := strconv.Atoi(s); err == nil {
			b.WriteString("[" + s + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(label(s))
	}
	return b.String()
}

// packagePos returns the position of the first package clause in files
// that is in the client's directory.
func (ev *evaluation) packagePos(files []*ast.File) schema.Pos {
	for _, f := range files {
		for _, d := range f.Decls {
			if pkg, ok := d.(*ast.Package); ok {
				if p := ev.repoPos(pkg.Pos()); strings.HasPrefix(p.File, ev.c.dir+"/") {
					return p
				}
			}
		}
	}
	return schema.Pos{}
}

// defaultedScalars are the fields the schema itself takes from
// defaults.<field> when no file writes them (the `*defaults.x | ...` marks
// in fleet.cue).
var defaultedScalars = []string{"mode", "staleAfter", "sla"}

// pos returns the user's position of the value at path (e.g.
// "rings[1].window"). A field that came from defaults points at the root
// file that wrote it; a field the user left out points at the nearest
// enclosing value the user wrote.
func (ev *evaluation) pos(path string) schema.Pos {
	for f, src := range ev.source {
		if path == f || strings.HasPrefix(path, f+".") || strings.HasPrefix(path, f+"[") {
			path = src + path[len(f):]
			break
		}
	}
	top, _, _ := strings.Cut(path, ".")
	if slices.Contains(defaultedScalars, top) && !ev.inst.LookupPath(cue.ParsePath(top)).Exists() {
		path = "defaults." + path
	}
	for {
		v := ev.inst.LookupPath(cue.ParsePath(path))
		if v.Exists() {
			if p := ev.valuePos(v); p.File != "" {
				return p
			}
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return schema.Pos{}
		}
		path = path[:i]
	}
}

// valuePos finds a user position for v, looking through its operands when
// v's own position is not in a repository file.
func (ev *evaluation) valuePos(v cue.Value) schema.Pos {
	if p := ev.pickPos([]token.Pos{v.Pos()}); p.File != "" {
		return p
	}
	// A value built by a call such as list.Concat has no position of its
	// own; its operands do.
	_, args := v.Expr()
	cands := make([]token.Pos, 0, len(args))
	for _, a := range args {
		cands = append(cands, a.Pos())
	}
	return ev.pickPos(cands)
}

// parseDuration parses the duration s found at path, recording a problem
// when it is invalid.
func (ev *evaluation) parseDuration(path, s string) time.Duration {
	if s == "" {
		return 0
	}
	d, err := schema.ParseDuration(s)
	if err != nil {
		ev.addError(ev.pos(path), "%s: %v", showPath(path), err)
	}
	return d
}

// parseDate parses the date s found at path in the client's zone.
func (ev *evaluation) parseDate(path, s string, loc *time.Location, b schema.DateBound) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := schema.ParseDate(s, loc, b)
	if err != nil {
		ev.addError(ev.pos(path), "%s: %v", showPath(path), err)
	}
	return t
}
