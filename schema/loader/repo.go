package loader

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"
	"cuelang.org/go/mod/modfile"

	"github.com/patchline/patchline/schema"
)

// The schema in a fleet repository: the package patchline.dev/schema that
// the cue command and editors read (schema.PackageFile), and that the root
// files of a repository made by patchctl init import to embed #Fleet.
// The loader never evaluates that copy: it gives the files its own
// definitions instead, so patchd applies the schema it was built with
// whatever a commit does to the copy, and it warns when the copy differs.

// localPackageDirs are where the cue command looks for a package no module
// provides, relative to the repository root.
var localPackageDirs = []string{"cue.mod/pkg/", "cue.mod/usr/", "cue.mod/gen/"}

// inSchemaPackage says whether the repository path p is a file of the
// schema's package, in any of the directories the cue command reads it
// from.
func inSchemaPackage(p string) bool {
	for _, d := range localPackageDirs {
		if path.Dir(p) == d+schema.PackagePath {
			return true
		}
	}
	return false
}

// schemaValue is the text of a CUE struct holding every definition of the
// schema, with #Fleet left open ({...}): what the loader binds a file's
// import of the schema's package to. The loader unifies its own #Fleet
// with each client, filling the default lists in Go (see fleet.cue), so
// the #Fleet the root files embed must add nothing; a file that uses
// another definition (schema.#Ring) gets the real one.
var schemaValue = sync.OnceValue(func() []byte {
	f, err := parser.ParseFile("fleet.cue", schema.CUE)
	if err != nil {
		// fleet.cue is embedded and parsed by every test: a failure here
		// is a build mistake.
		panic(fmt.Sprintf("parse embedded schema: %v", err))
	}
	st := &ast.StructLit{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.Field)
		if !ok {
			continue
		}
		if id, ok := fd.Label.(*ast.Ident); ok && id.Name == "#Fleet" {
			fd.Value = ast.NewStruct(&ast.Ellipsis{})
		}
		st.Elts = append(st.Elts, fd)
	}
	b, err := format.Node(st, format.Simplify())
	if err != nil {
		panic(fmt.Sprintf("format the schema's definitions: %v", err))
	}
	return b
})

// withSchema returns the text of the file name, b, with its import of the
// schema's package (if any) replaced by spaces and a let clause of the
// import's name appended that binds the schema's definitions
// (schemaValue). Every position in the file stays where it was; the
// appended text lies past the file's end, where no position is shown.
// unused is the position of an import that nothing in the file uses,
// which CUE would refuse, or nil.
//
// The package cannot be given to CUE's loader as a file: with files from
// an fs.FS it does not resolve a package under cue.mod/pkg (CUE v0.17).
func withSchema(name string, b []byte) (text []byte, unused *token.Pos) {
	if !bytes.Contains(b, []byte(schema.PackagePath)) {
		return b, nil
	}
	f, err := parser.ParseFile(name, b)
	if err != nil {
		// Loading the file reports the syntax error.
		return b, nil
	}
	out := bytes.Clone(b)
	var lets []string
	for decl := range f.ImportDecls() {
		for _, spec := range decl.Specs {
			if p, err := strconv.Unquote(spec.Path.Value); err != nil || p != schema.PackagePath {
				continue
			}
			ident := path.Base(schema.PackagePath)
			if spec.Name != nil {
				ident = spec.Name.Name
			}
			from, to := spec.Pos().Offset(), spec.End().Offset()
			if !decl.Lparen.IsValid() {
				from = decl.Import.Offset()
			}
			for i := from; i < to && i < len(out); i++ {
				if out[i] != '\n' {
					out[i] = ' '
				}
			}
			if uses(f, ident, spec) {
				lets = append(lets, ident)
			} else if unused == nil {
				p := spec.Pos()
				unused = &p
			}
		}
	}
	for _, ident := range lets {
		out = append(out, "\nlet "+ident+" = "...)
		out = append(out, schemaValue()...)
		out = append(out, '\n')
	}
	return out, unused
}

// uses says whether f refers to the import spec by its name ident.
func uses(f *ast.File, ident string, spec *ast.ImportSpec) bool {
	found := false
	ast.Walk(f, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok && id.Name == ident && id != spec.Name && (id.Node == nil || id.Node == spec) {
			found = true
		}
		return !found
	}, nil)
	return found
}

// copyWarnings are the warnings about the repository's copy of the
// schema: it differs from this binary's, it is missing although a file
// imports it, or the module's language version is too old for it.
func copyWarnings(files map[string][]byte) []schema.Problem {
	warn := func(file, msg string) schema.Problem {
		return schema.Problem{Pos: schema.Pos{File: file, Line: 1, Col: 1}, Level: schema.LevelWarning, Message: msg}
	}
	var out []schema.Problem
	var copies []string
	for n := range files {
		if inSchemaPackage(n) {
			copies = append(copies, n)
		}
	}
	slices.Sort(copies)
	importer := importerOfSchema(files)
	for _, n := range copies {
		switch {
		case n != schema.PackageFile:
			out = append(out, warn(n, fmt.Sprintf("not part of the Patchline schema's copy (%s is): remove it; `patchctl schema update` does", schema.PackageFile)))
		case !bytes.Equal(files[n], schema.Package()):
			out = append(out, warn(n, fmt.Sprintf("this copy of the Patchline schema (%s) differs from patchctl's (%s), so cue vet and editors check other rules than patchctl: run `patchctl schema update`", copyDigest(files[n]), schema.Digest())))
		}
	}
	if importer == "" {
		return out
	}
	if !slices.Contains(copies, schema.PackageFile) {
		out = append(out, warn(importer, fmt.Sprintf("imports %s, but the repository has no copy of it (%s), so cue vet and editors cannot check it (patchctl uses its own): run `patchctl schema update`", schema.PackagePath, schema.PackageFile)))
	}
	if v := languageVersion(files[schema.ModuleFile]); v != "" && olderVersion(v, schema.MinLanguageVersion) {
		out = append(out, warn(schema.ModuleFile, fmt.Sprintf("language version %s is older than %s, which the Patchline schema's copy needs for cue vet and editors: run `patchctl schema update`", v, schema.MinLanguageVersion)))
	}
	return out
}

// copyDigest reads the digest a copy of the schema names in its header,
// or says it names none.
func copyDigest(b []byte) string {
	for _, line := range strings.SplitN(string(b), "\n", 4) {
		if i := strings.Index(line, "sha256:"); i >= 0 {
			return strings.TrimRight(strings.Fields(line[i:])[0], ".,")
		}
	}
	return "no digest: edited by hand"
}

// importerOfSchema returns the first fleet file (by path) that imports the
// schema's package, or "".
func importerOfSchema(files map[string][]byte) string {
	var names []string
	for n := range files {
		if wanted(n, false) && !strings.HasPrefix(n, "cue.mod/") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		if !bytes.Contains(files[n], []byte(schema.PackagePath)) {
			continue
		}
		f, err := parser.ParseFile(n, files[n], parser.ImportsOnly)
		if err != nil {
			continue
		}
		for im := range f.ImportSpecs() {
			if p, err := strconv.Unquote(im.Path.Value); err == nil && p == schema.PackagePath {
				return n
			}
		}
	}
	return ""
}

// languageVersion is the CUE language version module.cue declares, or "".
func languageVersion(module []byte) string {
	mf, err := modfile.ParseNonStrict(module, schema.ModuleFile)
	if err != nil || mf.Language == nil {
		return ""
	}
	return mf.Language.Version
}

// SchemaUpdate says what WriteSchema changed in a repository.
type SchemaUpdate struct {
	// Written lists the repository paths written, Removed those removed.
	Written, Removed []string
	// LanguageVersion is the language version module.cue was raised
	// from, or "" when it was new enough.
	LanguageVersion string
	// Imported says whether a fleet file imports the schema already; when
	// none does, the cue command does not check the repository with it.
	Imported bool
}

// WriteSchema lays this binary's schema into the fleet repository in dir
// as the CUE package patchline.dev/schema (schema.PackageFile), removes
// any other file of that package, and raises module.cue's language
// version to schema.MinLanguageVersion when it is older. patchctl init
// and patchctl schema update call it.
func WriteSchema(dir string) (SchemaUpdate, error) {
	var up SchemaUpdate
	modPath := filepath.Join(dir, filepath.FromSlash(schema.ModuleFile))
	module, err := os.ReadFile(modPath)
	if errors.Is(err, fs.ErrNotExist) {
		return up, fmt.Errorf("%s: %w", dir, ErrNotFleetRepo)
	}
	if err != nil {
		return up, fmt.Errorf("read %s: %w", modPath, err)
	}
	for _, d := range localPackageDirs {
		pkgDir := d + schema.PackagePath
		entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(pkgDir)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return up, fmt.Errorf("read %s: %w", pkgDir, err)
		}
		for _, e := range entries {
			rel := pkgDir + "/" + e.Name()
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".cue") || rel == schema.PackageFile {
				continue
			}
			if err := os.Remove(filepath.Join(dir, filepath.FromSlash(rel))); err != nil {
				return up, fmt.Errorf("remove %s: %w", rel, err)
			}
			up.Removed = append(up.Removed, rel)
		}
	}
	pkgPath := filepath.Join(dir, filepath.FromSlash(schema.PackageFile))
	if old, err := os.ReadFile(pkgPath); err != nil || !bytes.Equal(old, schema.Package()) {
		if err := os.MkdirAll(filepath.Dir(pkgPath), 0o755); err != nil {
			return up, fmt.Errorf("write %s: %w", schema.PackageFile, err)
		}
		if err := os.WriteFile(pkgPath, schema.Package(), 0o644); err != nil {
			return up, fmt.Errorf("write %s: %w", schema.PackageFile, err)
		}
		up.Written = append(up.Written, schema.PackageFile)
	}
	if v := languageVersion(module); v != "" && olderVersion(v, schema.MinLanguageVersion) {
		raised, err := raiseLanguageVersion(module, v)
		if err != nil {
			return up, err
		}
		if err := os.WriteFile(modPath, raised, 0o644); err != nil {
			return up, fmt.Errorf("write %s: %w", schema.ModuleFile, err)
		}
		up.LanguageVersion = v
		up.Written = append(up.Written, schema.ModuleFile)
	}
	files, err := readFleetFiles(dir)
	if err != nil {
		return up, err
	}
	up.Imported = importerOfSchema(files) != ""
	return up, nil
}

// raiseLanguageVersion rewrites the language version old in module.cue's
// text as schema.MinLanguageVersion, leaving the rest of the file as it
// is.
func raiseLanguageVersion(module []byte, old string) ([]byte, error) {
	quoted := []byte(strconv.Quote(old))
	if bytes.Count(module, quoted) != 1 {
		return nil, fmt.Errorf("%s: cannot find its language version %s to raise it to %s: edit it by hand", schema.ModuleFile, old, schema.MinLanguageVersion)
	}
	return bytes.Replace(module, quoted, []byte(strconv.Quote(schema.MinLanguageVersion)), 1), nil
}

// olderVersion says whether the language version a ("v0.12.0") is older
// than b. A version that does not parse is not older: the cue command
// reports it.
func olderVersion(a, b string) bool {
	var x, y [3]int
	if _, err := fmt.Sscanf(a, "v%d.%d.%d", &x[0], &x[1], &x[2]); err != nil {
		return false
	}
	if _, err := fmt.Sscanf(b, "v%d.%d.%d", &y[0], &y[1], &y[2]); err != nil {
		return false
	}
	return slices.Compare(x[:], y[:]) < 0
}
