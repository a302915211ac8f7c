package main

import (
	"bytes"
	"context"
	"encoding/json"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

// initRepo runs patchctl init into a new directory and returns it.
func initRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fleet")
	if code, _, errOut := run(t, "init", dir, "--author", "Tess Technician <tess@msp.example>"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	return dir
}

// TestSchemaUpdate: patchctl init lays the schema's copy down, vet warns
// once the copy differs from patchctl's, and patchctl schema update puts
// it right; in a repository that does not import the schema yet, update
// says how to.
func TestSchemaUpdate(t *testing.T) {
	dir := initRepo(t)
	copyPath := filepath.Join(dir, filepath.FromSlash(schema.PackageFile))
	if b, err := os.ReadFile(copyPath); err != nil || !bytes.Equal(b, schema.Package()) {
		t.Fatalf("init did not lay down the schema's copy (%v)", err)
	}
	if code, out, errOut := run(t, "vet", dir); code != 0 || out != "" {
		t.Fatalf("vet of a new repository: exit %d:\n%s%s", code, out, errOut)
	}

	old := bytes.Replace(schema.Package(), []byte("#Ratio: number & >=0 & <=1"), []byte("#Ratio: number"), 1)
	if err := os.WriteFile(copyPath, old, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "vet", dir)
	if want := schema.PackageFile + ":1:1: warning: this copy of the Patchline schema (" + schema.Digest() + ") differs from patchctl's"; code != 0 || !strings.HasPrefix(out, want) {
		t.Errorf("vet of a stale copy: exit %d, output %q, want a warning starting %q", code, out, want)
	}

	code, out, errOut := run(t, "schema", "update", dir)
	if want := "wrote " + schema.PackageFile + " (" + schema.Digest() + ")\nCommit the change.\n"; code != 0 || out != want {
		t.Errorf("schema update: exit %d, output %q, want %q (%s)", code, out, want, errOut)
	}
	if code, out, _ := run(t, "vet", dir); code != 0 || out != "" {
		t.Errorf("vet after schema update: exit %d: %s", code, out)
	}
	if code, out, _ := run(t, "schema", "update", dir); code != 0 || out != schema.PackageFile+" is up to date ("+schema.Digest()+")\n" {
		t.Errorf("second schema update: exit %d, output %q", code, out)
	}

	// A repository from before the schema's copy.
	legacy := filepath.Join(t.TempDir(), "fleet")
	copyDir(t, "../../examples/fleet", legacy)
	code, out, errOut = run(t, "schema", "update", legacy)
	for _, want := range []string{"wrote " + schema.PackageFile, "raised the language version in cue.mod/module.cue from v0.12.0 to " + schema.MinLanguageVersion, `import "patchline.dev/schema"`, "schema.#Fleet"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("schema update of examples/fleet: exit %d, output does not say %q:\n%s%s", code, want, out, errOut)
		}
	}

	if code, _, errOut := run(t, "schema", "update", t.TempDir()); code == 0 || !strings.Contains(errOut, "cue.mod/module.cue") {
		t.Errorf("schema update of an empty directory: exit %d: %s", code, errOut)
	}
}

// cueCommand returns the upstream cue command at the version of
// cuelang.org/go that patchctl is built with, which make test installs
// with go install; without it the test fails under CI=true and is skipped,
// loudly, otherwise.
func cueCommand(t *testing.T) string {
	t.Helper()
	want := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "cuelang.org/go" {
				want = d.Version
			}
		}
	}
	if want == "" {
		t.Fatal("the test binary does not say which cuelang.org/go it is built with")
	}
	var cands []string
	if p, err := exec.LookPath("cue"); err == nil {
		cands = append(cands, p)
	}
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		cands = append(cands, filepath.Join(gobin, "cue"))
	}
	cands = append(cands, filepath.Join(build.Default.GOPATH, "bin", "cue"))
	var seen []string
	for _, c := range cands {
		out, err := exec.Command(c, "version").Output()
		if err != nil {
			continue
		}
		first, _, _ := strings.Cut(string(out), "\n")
		if first == "cue version "+want {
			return c
		}
		seen = append(seen, c+": "+first)
	}
	gittest.SkipOrFail(t, "no cue command at %s (found: %q); install it with go install cuelang.org/go/cmd/cue@%s", want, seen, want)
	return ""
}

// cue runs the cue command in dir and returns its exit code and output.
func cue(t *testing.T, bin, dir string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	// No module registry: a fleet repository needs none, and the test
	// must not reach the network.
	cmd.Env = append(os.Environ(), "CUE_REGISTRY=none", "CUE_CACHE_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("cue %s: %v", strings.Join(args, " "), err)
		}
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// TestInitRepoWorksWithCUECommand: in a repository made by patchctl init,
// the upstream cue command checks what patchctl vet checks. cue vet -c
// accepts the repository and rejects the mistakes patchctl vet rejects;
// cue eval and cue export show the client with the same defaults the
// loader fills in; cue fmt --check finds nothing to format.
func TestInitRepoWorksWithCUECommand(t *testing.T) {
	bin := cueCommand(t)
	dir := initRepo(t)
	if code, out := cue(t, bin, dir, "vet", "-c", "./..."); code != 0 {
		t.Fatalf("cue vet -c ./... of a new repository: exit %d:\n%s", code, out)
	}
	if code, out := cue(t, bin, dir, "fmt", "--check", "./..."); code != 0 {
		t.Errorf("cue fmt --check ./... of a new repository: exit %d:\n%s", code, out)
	}
	if code, out := cue(t, bin, dir, "eval", "./clients/example", "-e", "rings"); code != 0 || !strings.Contains(out, `name: "broad"`) || !strings.Contains(out, `reboot:      "if-required"`) {
		t.Errorf("cue eval ./clients/example -e rings: exit %d, no defaulted rings:\n%s", code, out)
	}

	// cue export gives the values the loader decodes.
	code, out := cue(t, bin, dir, "export", "./clients/example", "--out", "json")
	if code != 0 {
		t.Fatalf("cue export: exit %d:\n%s", code, out)
	}
	got := exportView(t, []byte(out))
	fleet, err := loader.New(loader.Options{}).LoadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fleet.Problems) > 0 || fleet.Clients["example"] == nil {
		t.Fatalf("the loader: %v", fleet.Problems)
	}
	if diff := cmp.Diff(viewOf(fleet.Clients["example"]), got); diff != "" {
		t.Errorf("cue export and the loader differ (-loader +cue):\n%s", diff)
	}

	mistakes := []struct {
		name, file string
		// cueSays and vetSays are what the two outputs must hold.
		cueSays, vetSays string
	}{
		{"misspelt top-level field", `mdoe: "enforce"`, "mdoe: field not allowed", `mdoe: field not allowed: did you mean "mode"?`},
		{"duration in words", `staleAfter: "7 days"`, "staleAfter", `staleAfter: invalid duration "7 days"`},
		{"misspelt field in a list", `resume: [{update: "KB5034441", aftr: "2026-11-20"}]`, "resume.0.aftr: field not allowed", `resume.0.aftr: field not allowed: did you mean "after"?`},
		{"ratio above 1", `rings: [{name: "all", select: {}, window: "weekend", minSuccess: 1.5}]`, "rings", "rings.0.minSuccess: 1.5 is above 1"},
		{"unknown mode", `mode: "enforcing"`, "mode", `mode: invalid value "enforcing": use one of enforce, report`},
	}
	for _, m := range mistakes {
		t.Run(m.name, func(t *testing.T) {
			broken := filepath.Join(t.TempDir(), "fleet")
			copyDir(t, dir, broken)
			if err := os.WriteFile(filepath.Join(broken, "clients/example/mistake.cue"), []byte("package fleet\n\n"+m.file+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if code, out := cue(t, bin, broken, "vet", "-c", "./..."); code == 0 || !strings.Contains(out, m.cueSays) {
				t.Errorf("cue vet -c ./...: exit %d, output does not say %q:\n%s", code, m.cueSays, out)
			}
			if code, out, _ := run(t, "vet", broken); code != 1 || !strings.Contains(out, m.vetSays) {
				t.Errorf("patchctl vet: exit %d, output does not say %q:\n%s", code, m.vetSays, out)
			}
		})
	}
}

// policyView is what of a client's policy the loader fills in from
// defaults, as the loader decodes it and as cue export shows it.
type policyView struct {
	Mode       string
	StaleAfter time.Duration
	SLA        map[string]time.Duration
	Rings      []ringView
	Approve    []string
	Exclusions int
}

type ringView struct {
	Name, Window, Reboot    string
	Soak                    time.Duration
	MinSuccess, MaxFailures float64
}

// viewOf is the loader's client as a policyView.
func viewOf(c *schema.Client) policyView {
	v := policyView{Mode: string(c.Mode), StaleAfter: c.StaleAfter, SLA: c.SLA, Exclusions: len(c.Exclusions)}
	for _, r := range c.Rings {
		v.Rings = append(v.Rings, ringView{r.Name, r.Window, string(r.Reboot), r.Soak, r.MinSuccess, r.MaxFailures})
	}
	for _, a := range c.Baseline.Approve {
		v.Approve = append(v.Approve, a.Name)
	}
	return v
}

// exportView is the policyView of cue export's JSON of a client.
func exportView(t *testing.T, b []byte) policyView {
	t.Helper()
	var e struct {
		Mode       string            `json:"mode"`
		StaleAfter string            `json:"staleAfter"`
		SLA        map[string]string `json:"sla"`
		Rings      []struct {
			Name        string  `json:"name"`
			Window      string  `json:"window"`
			Soak        string  `json:"soak"`
			MinSuccess  float64 `json:"minSuccess"`
			MaxFailures float64 `json:"maxFailures"`
			Reboot      string  `json:"reboot"`
		} `json:"rings"`
		Baseline struct {
			Approve []struct {
				Name string `json:"name"`
			} `json:"approve"`
		} `json:"baseline"`
		Exclusions []json.RawMessage `json:"exclusions"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("cue export: %v\n%s", err, b)
	}
	dur := func(s string) time.Duration {
		d, err := schema.ParseDuration(s)
		if err != nil {
			t.Errorf("cue export: %v", err)
		}
		return d
	}
	v := policyView{Mode: e.Mode, StaleAfter: dur(e.StaleAfter), SLA: make(map[string]time.Duration), Exclusions: len(e.Exclusions)}
	for k, d := range e.SLA {
		v.SLA[k] = dur(d)
	}
	for _, r := range e.Rings {
		v.Rings = append(v.Rings, ringView{r.Name, r.Window, r.Reboot, dur(r.Soak), r.MinSuccess, r.MaxFailures})
	}
	for _, a := range e.Baseline.Approve {
		v.Approve = append(v.Approve, a.Name)
	}
	return v
}
