package cliconf

import (
	"bytes"
	"fmt"
	"strings"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/literal"
	"cuelang.org/go/cue/token"
	"cuelang.org/go/encoding/yaml"
)

// Entry is one setting of a config file: a flag name, its value as the
// flag would take it on the command line, and the line it is on.
type Entry struct {
	Key   string
	Value string
	Line  int
}

// Parse reads a config file: a YAML mapping of flag names to scalar
// values (strings, numbers, booleans). A list of scalars is joined with
// commas, as the flags that take several values (--controller, --labels)
// want them. An empty file holds no settings. Errors name the file and
// line.
func Parse(filename string, data []byte) (entries []Entry, err error) {
	// CUE's YAML decoder (v0.17) indexes out of range on some inputs with
	// bare carriage returns (the fuzz target found one, kept in testdata):
	// lines end in \n for it, and a panic it still has is this file's
	// error, not patchd's crash.
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	data = bytes.ReplaceAll(data, []byte("\r"), []byte("\n"))
	defer func() {
		if r := recover(); r != nil {
			entries, err = nil, fmt.Errorf("%s: the YAML decoder failed on this file (%v); check its syntax", filename, r)
		}
	}()
	f, err := yaml.Extract(filename, data)
	if err != nil {
		return nil, fmt.Errorf("config file %w", err)
	}
	var out []Entry
	seen := map[string]int{}
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.Field:
			key, _, err := ast.LabelName(d.Label)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: a key must be a flag name", filename, d.Pos().Line())
			}
			line := d.Label.Pos().Line()
			if first, dup := seen[key]; dup {
				return nil, fmt.Errorf("%s:%d: key %q given twice (first on line %d)", filename, line, key, first)
			}
			seen[key] = line
			v, err := scalar(data, d.Value, true)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %v", filename, line, key, err)
			}
			out = append(out, Entry{Key: key, Value: v, Line: line})
		case *ast.EmbedDecl:
			// An empty document (or one of comments only) comes out as
			// null, or as CUE's "null or anything": no settings.
			if lit, ok := d.Expr.(*ast.BasicLit); ok && lit.Kind == token.NULL {
				continue
			}
			if _, ok := d.Expr.(*ast.BinaryExpr); ok && len(f.Decls) == 1 {
				continue
			}
			return nil, fmt.Errorf("%s:%d: want settings as `flag-name: value` lines", filename, d.Pos().Line())
		default:
			return nil, fmt.Errorf("%s:%d: want settings as `flag-name: value` lines", filename, d.Pos().Line())
		}
	}
	return out, nil
}

// scalar is the command-line text of a YAML value; a list (when allowed)
// is its items joined with commas.
func scalar(src []byte, e ast.Expr, listOK bool) (string, error) {
	switch e := e.(type) {
	case *ast.BasicLit:
		switch e.Kind {
		case token.STRING:
			s, err := literal.Unquote(e.Value)
			if err != nil {
				return "", fmt.Errorf("bad string: %v", err)
			}
			return s, nil
		case token.INT, token.FLOAT:
			// As written: CUE rewrites YAML's 0600 as 0o600, which is not
			// what a flag expects.
			return rawToken(src, e.Pos().Offset(), e.Value), nil
		case token.TRUE, token.FALSE:
			return e.Value, nil
		case token.NULL:
			return "", fmt.Errorf("no value; give one or remove the key")
		}
	case *ast.Ident:
		// YAML's true/false come out as CUE identifiers in some forms.
		if e.Name == "true" || e.Name == "false" {
			return e.Name, nil
		}
	case *ast.UnaryExpr:
		// A negative number.
		if lit, ok := e.X.(*ast.BasicLit); ok && e.Op == token.SUB && (lit.Kind == token.INT || lit.Kind == token.FLOAT) {
			return rawToken(src, e.Pos().Offset(), "-"+lit.Value), nil
		}
	case *ast.ListLit:
		if listOK {
			var items []string
			for _, el := range e.Elts {
				s, err := scalar(src, el, false)
				if err != nil {
					return "", err
				}
				if strings.Contains(s, ",") {
					return "", fmt.Errorf("list item %q holds a comma; give the list as one string instead", s)
				}
				items = append(items, s)
			}
			return strings.Join(items, ","), nil
		}
	case *ast.StructLit:
		return "", fmt.Errorf("want a single value, not a mapping (keys are flag names, e.g. labels: ring=pilot,site=hq)")
	}
	return "", fmt.Errorf("want a string, a number, true/false, or a list of those")
}

// rawToken is the number that starts at offset in src as the file spells
// it, or fallback when the offset does not point at one.
func rawToken(src []byte, offset int, fallback string) string {
	if offset < 0 || offset >= len(src) {
		return fallback
	}
	end := offset
	for end < len(src) && strings.IndexByte(" \t\r\n#,]}", src[end]) < 0 {
		end++
	}
	if end == offset {
		return fallback
	}
	return string(src[offset:end])
}
