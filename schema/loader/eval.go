package loader

import (
	"fmt"
	"maps"
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
	// partial is what decoded of a client with errors: enough for the
	// expiry warnings, never planned.
	partial *schema.Client
}

// defaultable are the lists a client takes from defaults.<field> when it
// does not write them; see the convention in fleet.cue.
var defaultable = []string{
	"freezes", "rings", "exclusions", "resume", "baseline.approve", "baseline.require", "agent",
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
//
// It finds every problem of the client at once: the schema's errors, the
// fields the schema does not know, then, on whatever part of the policy
// decodes, the checks the schema cannot express. A check is left out
// where a value it needs has an error already, so that no problem is a
// consequence of another.
func evaluate(ec *evalContext, files map[string][]byte, c clientFiles, sum string) evalResult {
	ev := &evaluation{files: files, c: c, fleet: ec.fleet, bad: make(map[string]bool)}
	insts := load.Instances([]string{"./" + c.dir}, ev.loadConfig())
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
	ev.ctx = ctx
	ev.inst = ctx.BuildInstance(insts[0])
	if _, err := ev.inst.Fields(); err != nil {
		// Nothing evaluates (a reference to nothing, say): there is no
		// value to check further.
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

	verr := u.Validate(cue.Concrete(true))
	if verr == nil {
		verr = ev.inst.Err()
	}
	if verr != nil {
		// Fields the schema does not know first: they explain some of
		// the schema's errors (a required field written under another
		// name). CUE reports such a field by itself, so a client without
		// errors has none.
		ev.checkFields(ec.fleet, ev.inst, nil)
		// CUE leaves out what is missing (a default no file sets; a
		// required field, which checkFields finds too) when there are
		// other errors: each top-level field is validated again on its
		// own, for those. Its other incomplete values follow from the
		// errors already found.
		errs := errors.Errors(verr)
		if it, err := u.Fields(); err == nil {
			for it.Next() {
				for _, e := range errors.Errors(it.Value().Validate(cue.Concrete(true))) {
					if isRequired(e) || undefined.MatchString(e.Error()) {
						errs = append(errs, e)
					}
				}
			}
		}
		ev.problems = append(ev.problems, ev.fromCUEErrors(errs)...)
	}

	var raw rawFleet
	if ev.failed {
		ev.decodeLeniently(u, &raw)
	} else if err := u.Decode(&raw); err != nil {
		return ev.fail(ev.fromCUE(err)...)
	}
	if !ev.bad["client"] && !u.LookupPath(cue.ParsePath("client")).Exists() {
		ev.addError(schema.Pos{}, "client: missing: say which client this directory holds, e.g. client: {id: %q, name: %q, timezone: %q}", c.id, examples["client.name"], examples["client.timezone"])
		ev.bad["client"] = true
	}
	client := ev.decode(&raw)
	client.Digest = sum
	ev.vet(client)
	if ev.failed {
		return evalResult{problems: ev.problems, partial: client}
	}
	return evalResult{problems: ev.problems, client: client}
}

// loadConfig is the CUE loader's configuration for the client's files:
// an in-memory file system holding them alone, so that a revision load
// reads the commit's files and nothing of the host. The package
// patchline.dev/schema is the loader's own (see withSchema), whatever
// copy of it the repository has.
func (ev *evaluation) loadConfig() *load.Config {
	fsys := make(fstest.MapFS, len(ev.files))
	for _, n := range slices.Sorted(maps.Keys(ev.files)) {
		if inSchemaPackage(n) {
			continue
		}
		b, unused := withSchema(n, ev.files[n])
		if unused != nil {
			ev.addError(ev.repoPos(*unused), "imported and not used: %q: remove the import, or embed schema.#Fleet", schema.PackagePath)
		}
		fsys[n] = &fstest.MapFile{Data: b}
	}
	return &load.Config{
		FS:         fsys,
		Dir:        "/",
		ModuleRoot: "/",
		FromFSPath: func(p string) string { return strings.TrimPrefix(p, "/") },
	}
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
	// bad holds the dotted paths (rings.1.soak) of values with an error:
	// the checks that need them are left out.
	bad map[string]bool
	// fleet is the schema's #Fleet.
	fleet cue.Value
	// ctx is the evaluation's CUE context, and top CUE's top value, _,
	// compiled in it when first needed.
	ctx *cue.Context
	top cue.Value
	// suggested holds the dotted paths of the fields a field the schema
	// does not know was probably meant to be (reason for reasn): CUE's
	// "required" for them says the same again.
	suggested map[string]bool
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
// Pos when it is not in one of the client's files (or in the schema,
// which is the loader's own).
func (ev *evaluation) repoPos(tp token.Pos) schema.Pos {
	if !tp.IsValid() {
		return schema.Pos{}
	}
	b, ok := ev.files[tp.Filename()]
	if !ok || tp.Offset() > len(b) {
		// Past the file's end is the schema withSchema appends.
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

// fromCUE turns a CUE error into problems, one per distinct message, and
// marks the values they are about as bad.
func (ev *evaluation) fromCUE(err error) []schema.Problem {
	return ev.fromCUEErrors(errors.Errors(err))
}

// fromCUEErrors is fromCUE of a list of CUE's errors.
func (ev *evaluation) fromCUEErrors(errs []errors.Error) []schema.Problem {
	if len(errs) == 0 {
		return nil
	}
	ev.failed = true
	var out []schema.Problem
	seen := make(map[string]bool)
	for _, e := range simplify(errs) {
		path := userPath(e.Path())
		switch {
		case isNotAllowed(e) && ev.bad[path]:
			// checkFields reported it, with a suggestion.
			continue
		case isRequired(e) && (ev.suggested[path] || ev.bad[path]):
			// checkFields reported it, or a field the schema does not
			// know was probably meant for this one: that problem says
			// what to do.
			continue
		}
		cands := append([]token.Pos{e.Position()}, e.InputPositions()...)
		p := ev.pickPos(cands)
		if p.File == "" && ev.inst.Exists() || isShapeError(e) {
			// A required field the user left out has only schema
			// positions: point at the value that should hold it. A
			// duration or date of the wrong shape points at its field,
			// like one whose value does not parse.
			if q := ev.pos(cuePath(e.Path())); q.File != "" || p.File == "" {
				p = q
			}
		}
		msg := ev.describe(path, e, p)
		if path != "" {
			msg = path + ": " + msg
			ev.bad[path] = true
		}
		pr := ev.problem(schema.LevelError, p, msg)
		if key := pr.String(); !seen[key] {
			seen[key] = true
			out = append(out, pr)
		}
	}
	return out
}

// conjunct is one of the values the files give a field, where it is
// written and, when short, its text.
type conjunct struct {
	pos  schema.Pos
	text string
}

// conjuncts returns the values the files give the field at the dotted
// path, in the user's files.
func (ev *evaluation) conjuncts(path string) []conjunct {
	if !ev.inst.Exists() || path == "" {
		return nil
	}
	v := ev.inst.LookupPath(cue.ParsePath(cuePath(strings.Split(path, "."))))
	op, args := v.Expr()
	if op != cue.AndOp {
		args = []cue.Value{v}
	}
	var out []conjunct
	for _, a := range args {
		p := ev.pickPos([]token.Pos{a.Pos()})
		if p.File == "" {
			continue
		}
		c := conjunct{pos: p}
		if f, ok := a.Source().(*ast.Field); ok {
			// The text as written, when short.
			from, to := f.Value.Pos(), f.Value.End()
			b := ev.files[from.Filename()]
			if from.Filename() == to.Filename() && 0 <= from.Offset() && from.Offset() < to.Offset() && to.Offset() <= len(b) && to.Offset()-from.Offset() <= 60 {
				if t := string(b[from.Offset():to.Offset()]); !strings.Contains(t, "\n") {
					c.text = t
				}
			}
		}
		out = append(out, c)
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
	path = ev.sourcePath(path)
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

// sourcePath is the path of the value the client's field at path comes
// from: the defaults.<field> it took, when it wrote none itself.
func (ev *evaluation) sourcePath(path string) string {
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
	return path
}

// writtenPos is where a repository file writes the value at path (the
// client's own or the default it took), or the zero Pos when no file
// does and the schema's default applies. Unlike pos, it never points at
// an enclosing value.
func (ev *evaluation) writtenPos(path string) schema.Pos {
	v := ev.inst.LookupPath(cue.ParsePath(ev.sourcePath(path)))
	if !v.Exists() {
		return schema.Pos{}
	}
	return ev.valuePos(v)
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
	if err != nil && !ev.isBad(path) {
		ev.addError(ev.pos(path), "%s: %v", showPath(path), err)
		ev.bad[showPath(path)] = true
	}
	return d
}

// parseDate parses the date s found at path in the client's zone.
func (ev *evaluation) parseDate(path, s string, loc *time.Location, b schema.DateBound) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := schema.ParseDate(s, loc, b)
	if err != nil && !ev.isBad(path) {
		ev.addError(ev.pos(path), "%s: %v", showPath(path), err)
		ev.bad[showPath(path)] = true
	}
	return t
}
