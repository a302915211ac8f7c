package loader

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"

	"github.com/patchline/patchline/schema"
)

// checkFields reports every field of v, the files' own value at path,
// that the schema sch does not allow there, with the field probably
// meant, and every field sch requires that v leaves out. CUE reports
// both too, but not while another error is in the same struct or above
// it, and without a suggestion.
func (ev *evaluation) checkFields(sch, v cue.Value, path []string) {
	var elem cue.Value
	if l, err := v.List(); err == nil {
		if elem = sch.LookupPath(cue.MakePath(cue.AnyIndex)); !elem.Exists() {
			return
		}
		for i := 0; l.Next(); i++ {
			ev.checkFields(elem, l.Value(), append(path[:len(path):len(path)], strconv.Itoa(i)))
		}
		return
	}
	// A list or struct with an error inside is bottom, and List fails on
	// it; Fields still iterates it, with index selectors for a list.
	it, err := v.Fields()
	if err != nil {
		return
	}
	for it.Next() {
		sel := it.Selector()
		switch {
		case sel.Type() == cue.IndexLabel:
			if !elem.Exists() {
				elem = sch.LookupPath(cue.MakePath(cue.AnyIndex))
			}
			if elem.Exists() {
				ev.checkFields(elem, it.Value(), append(path[:len(path):len(path)], strconv.Itoa(sel.Index())))
			}
		case sel.IsString():
			fpath := append(path[:len(path):len(path)], sel.Unquoted())
			if !sch.Allows(sel) {
				ev.notAllowed(sch, it.Value(), fpath)
			} else if child, ok := ev.schemaField(sch, sel); ok {
				ev.checkFields(child, it.Value(), fpath)
			}
		}
	}
	if elem.Exists() {
		return
	}
	// The fields the schema requires here and the files leave out, but
	// for one written under another name, which notAllowed reported.
	req, err := sch.Fields(cue.Optional(true))
	if err != nil {
		return
	}
	for req.Next() {
		sel := req.Selector()
		if sel.ConstraintType() != cue.RequiredConstraint {
			continue
		}
		fpath := append(path[:len(path):len(path)], sel.Unquoted())
		dotted := strings.Join(fpath, ".")
		if v.LookupPath(cue.MakePath(cue.Str(sel.Unquoted()))).Exists() || ev.suggested[dotted] {
			continue
		}
		ev.bad[dotted] = true
		ev.failed = true
		ev.problems = append(ev.problems, ev.problem(schema.LevelError, ev.pos(cuePath(fpath)), dotted+": "+ev.missing(dotted)))
	}
}

// schemaField returns the schema of field sel of sch: a field it
// declares (optional and required ones too) or one its pattern allows.
func (ev *evaluation) schemaField(sch cue.Value, sel cue.Selector) (cue.Value, bool) {
	for _, s := range []cue.Selector{sel, sel.Optional(), sel.Required()} {
		if v := sch.LookupPath(cue.MakePath(s)); v.Exists() {
			return v, true
		}
	}
	// A field a pattern allows (a window's name) has no declaration of
	// its own: adding it applies the pattern.
	if !ev.top.Exists() {
		ev.top = ev.ctx.CompileString("_")
	}
	v := sch.FillPath(cue.MakePath(sel), ev.top).LookupPath(cue.MakePath(sel))
	return v, v.Exists()
}

// notAllowed records a field at path that the schema sch of its struct
// does not allow.
func (ev *evaluation) notAllowed(sch, field cue.Value, path []string) {
	dotted := strings.Join(path, ".")
	ev.bad[dotted] = true
	names := fieldNames(sch)
	if len(path) >= 2 && path[len(path)-2] == "sla" {
		// sla's severities are a pattern, not fields.
		names = append(slices.Clone(severities), names...)
	}
	msg := dotted + ": field not allowed"
	if near := nearest(path[len(path)-1], names); near != "" {
		msg += fmt.Sprintf(": did you mean %q?", near)
		meant := strings.Join(append(path[:len(path)-1:len(path)-1], near), ".")
		if ev.suggested == nil {
			ev.suggested = make(map[string]bool)
		}
		ev.suggested[meant] = true
		// The field meant is as good as bad: whatever a check would say
		// about it missing, the misspelling explains.
		ev.bad[meant] = true
	} else if len(names) > 0 {
		msg += ": the fields here are " + strings.Join(names, ", ")
	}
	p := ev.pickPos([]token.Pos{field.Pos()})
	if p.File == "" {
		p = ev.pos(cuePath(path[:len(path)-1]))
	}
	ev.failed = true
	ev.problems = append(ev.problems, ev.problem(schema.LevelError, p, msg))
}

// fieldNames lists the fields sch declares, in the schema's order.
func fieldNames(sch cue.Value) []string {
	it, err := sch.Fields(cue.Optional(true))
	if err != nil {
		return nil
	}
	var names []string
	for it.Next() {
		if s := it.Selector(); s.IsString() {
			names = append(names, s.Unquoted())
		}
	}
	return names
}

// severities are the keys of sla besides knownExploited.
var severities = []string{"low", "moderate", "important", "critical"}
