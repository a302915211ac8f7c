package loader

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cuelang.org/go/cue/cuecontext"
	"cuelang.org/go/cue/format"
	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/schema"
)

// embedSchema is a root file that imports the schema and embeds #Fleet,
// as the root files of a repository made by patchctl init do.
const embedSchema = "package fleet\n\nimport \"patchline.dev/schema\"\n\nschema.#Fleet\n"

// writeFleet writes files into a new directory and returns it.
func writeFleet(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	for n, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestSchemaInRepo: a repository that imports the schema loads as one
// that does not, whatever its copy of the schema holds; the loader warns
// about a copy that differs, is missing or needs a newer language
// version, and WriteSchema puts every warning right.
func TestSchemaInRepo(t *testing.T) {
	base := readFleet(t, "testdata/fleets/valid")
	want, err := New(Options{Now: testNow}).LoadFiles(context.Background(), base, "")
	if err != nil {
		t.Fatal(err)
	}
	current := schema.Package()
	tests := []struct {
		name  string
		edit  func(files map[string][]byte)
		warns []string // what each warning's "file: message" contains
		err   string   // an error-level problem's text, when the repo is wrong
	}{
		{name: "current copy", edit: func(f map[string][]byte) {
			f[schema.PackageFile] = current
			f[schema.ModuleFile] = bytes.Replace(f[schema.ModuleFile], []byte("v0.12.0"), []byte(schema.MinLanguageVersion), 1)
		}},
		{name: "copy from another version", edit: func(f map[string][]byte) {
			f[schema.PackageFile] = bytes.Replace(current, []byte("#Ratio: number & >=0 & <=1"), []byte("#Ratio: number"), 1)
		}, warns: []string{"module.cue: language version v0.12.0 is older than v0.14.0", schema.PackageFile + ": this copy of the Patchline schema (" + schema.Digest() + ") differs"}},
		{name: "copy edited by hand", edit: func(f map[string][]byte) {
			f[schema.PackageFile] = []byte("package schema\n\n#Fleet: {...}\n")
		}, warns: []string{"module.cue: language version", schema.PackageFile + ": this copy of the Patchline schema (no digest: edited by hand) differs from patchctl's (" + schema.Digest() + ")"}},
		{name: "no copy", warns: []string{"module.cue: language version", "schema.cue: imports patchline.dev/schema, but the repository has no copy of it"}},
		{name: "stray file in the package", edit: func(f map[string][]byte) {
			f[schema.PackageFile] = current
			f["cue.mod/usr/patchline.dev/schema/mine.cue"] = []byte("package schema\n\n#Fleet: mode: \"report\"\n")
		}, warns: []string{"module.cue: language version", "cue.mod/usr/patchline.dev/schema/mine.cue: not part of the Patchline schema's copy"}},
		{name: "a client uses a definition of the schema", edit: func(f map[string][]byte) {
			f[schema.PackageFile] = current
			f[schema.ModuleFile] = bytes.Replace(f[schema.ModuleFile], []byte("v0.12.0"), []byte("v0.17.0"), 1)
			f["clients/acme/check.cue"] = []byte("package fleet\n\nimport s \"patchline.dev/schema\"\n\n_ring: s.#Ring & rings[0]\n")
		}},
		{name: "import not used", edit: func(f map[string][]byte) {
			f[schema.PackageFile] = current
			f[schema.ModuleFile] = bytes.Replace(f[schema.ModuleFile], []byte("v0.12.0"), []byte("v0.17.0"), 1)
			f["clients/acme/check.cue"] = []byte("package fleet\n\nimport \"patchline.dev/schema\"\n")
		}, err: `clients/acme/check.cue:3:8: imported and not used: "patchline.dev/schema"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := maps.Clone(base)
			files["schema.cue"] = []byte(embedSchema)
			if tt.edit != nil {
				tt.edit(files)
			}
			got, err := New(Options{Now: testNow}).LoadFiles(context.Background(), files, "")
			if err != nil {
				t.Fatal(err)
			}
			var warns, errs []string
			for _, p := range got.Problems {
				if p.Level == schema.LevelWarning {
					warns = append(warns, p.Pos.File+": "+p.Message)
				} else {
					errs = append(errs, p.String())
				}
			}
			if len(warns) != len(tt.warns) {
				t.Errorf("warnings:\n%s\nwant %d containing %q", strings.Join(warns, "\n"), len(tt.warns), tt.warns)
			}
			for i := range min(len(warns), len(tt.warns)) {
				if !strings.Contains(warns[i], tt.warns[i]) {
					t.Errorf("warning %q does not contain %q", warns[i], tt.warns[i])
				}
			}
			if tt.err != "" {
				if len(errs) != 1 || !strings.HasPrefix(errs[0], tt.err) {
					t.Errorf("errors %q, want one starting %q", errs, tt.err)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatalf("errors: %q", errs)
			}
			for id, c := range got.Clients {
				c.Digest = want.Clients[id].Digest
			}
			if diff := cmp.Diff(want.Clients, got.Clients, clientCmp); diff != "" {
				t.Errorf("clients differ from the repository's without the schema (-without +with):\n%s", diff)
			}

			// WriteSchema puts the copy right; the warnings go.
			dir := writeFleet(t, files)
			if _, err := WriteSchema(dir); err != nil {
				t.Fatal(err)
			}
			again, err := New(Options{Now: testNow}).LoadDir(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range again.Problems {
				t.Errorf("after WriteSchema: %s", p)
			}
		})
	}
}

func TestWriteSchema(t *testing.T) {
	files := readFleet(t, "testdata/fleets/valid")
	files["cue.mod/pkg/patchline.dev/schema/old.cue"] = []byte("package schema\n")
	dir := writeFleet(t, files)

	up, err := WriteSchema(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := SchemaUpdate{
		Written:         []string{schema.PackageFile, schema.ModuleFile},
		Removed:         []string{"cue.mod/pkg/patchline.dev/schema/old.cue"},
		LanguageVersion: "v0.12.0",
	}
	if diff := cmp.Diff(want, up); diff != "" {
		t.Errorf("first update (-want +got):\n%s", diff)
	}
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(schema.PackageFile)))
	if err != nil || !bytes.Equal(b, schema.Package()) {
		t.Errorf("%s does not hold the schema (err %v)", schema.PackageFile, err)
	}
	mod, err := os.ReadFile(filepath.Join(dir, "cue.mod", "module.cue"))
	if err != nil {
		t.Fatal(err)
	}
	if got := languageVersion(mod); got != schema.MinLanguageVersion || !strings.HasPrefix(string(mod), `module: "example.com/fleet"`) {
		t.Errorf("module.cue after the update:\n%s", mod)
	}

	if err := os.WriteFile(filepath.Join(dir, "schema.cue"), []byte(embedSchema), 0o644); err != nil {
		t.Fatal(err)
	}
	up, err = WriteSchema(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(SchemaUpdate{Imported: true}, up); diff != "" {
		t.Errorf("second update changed something (-want +got):\n%s", diff)
	}

	if _, err := WriteSchema(t.TempDir()); !errors.Is(err, ErrNotFleetRepo) {
		t.Errorf("WriteSchema of an empty directory: error %v, want ErrNotFleetRepo", err)
	}
}

// TestSchemaPackage: the copy a repository gets is formatted as cue fmt
// writes it, compiles, and its #Fleet accepts exactly the fields of the
// loader's #Fleet in a package that embeds it.
func TestSchemaPackage(t *testing.T) {
	pkg := schema.Package()
	formatted, err := format.Source(pkg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(formatted), string(pkg)); diff != "" {
		t.Errorf("the schema's copy is not formatted (-cue fmt +copy):\n%s", diff)
	}
	ec, err := newEvalContext()
	if err != nil {
		t.Fatal(err)
	}
	names := fieldNames(ec.fleet)
	if len(names) < 10 {
		t.Fatalf("#Fleet has fields %q", names)
	}
	ctx := cuecontext.New()
	for _, name := range append(names, "mdoe") {
		v := ctx.CompileString(string(pkg) + "\nembeds: {#Fleet, " + name + ": _}\n")
		err := v.Validate()
		allowed := err == nil || !strings.Contains(err.Error(), "field not allowed")
		if allowed != (name != "mdoe") {
			t.Errorf("field %s: allowed %v (%v)", name, allowed, err)
		}
	}
}
