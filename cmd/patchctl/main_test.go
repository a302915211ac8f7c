package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/internal/pgtest"
	"github.com/patchline/patchline/schema/loader"
)

// TestMain makes the test binary a policy evaluator when it is started as
// one: the commands that load a fleet run the running binary, this one in
// tests, as their evaluator. Otherwise it runs the tests and stops the
// PostgreSQL cluster the tests (patchd on PostgreSQL, store migrate)
// started, if any.
func TestMain(m *testing.M) {
	if loader.IsEvaluator(os.Args[1:]) {
		os.Exit(loader.ServeEvaluator(os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(pgtest.Main(m))
}

// now is inside acme's weeknights window (22:30 in Chicago).
const now = "2026-11-24T04:30:00Z"

// run runs patchctl and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestPlanGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"plan.txt", []string{"plan", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", now}},
		{"plan.md", []string{"plan", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", now, "--format", "markdown"}},
		{"plan.json", []string{"plan", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", now, "--format", "json"}},
		{"plan-decisions.json", []string{"plan", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", now, "--format", "json", "--decisions"}},
		{"plan-weekend.txt", []string{"plan", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", "2026-11-28T08:00:00Z"}},
		{"why-halted.txt", []string{"why", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", now, "--endpoint", "acme-ws-002", "--update", "KB5034441"}},
		{"why-excluded.txt", []string{"why", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", now, "--endpoint", "acme-sql01", "--update", "KB5034441"}},
		{"why-unknown-client.txt", []string{"why", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", now, "--endpoint", "umbrella-ws01", "--update", "KB5034441"}},
		{"vet-examples.txt", []string{"vet", "../../examples/fleet", "--now", now}},
		{"vet-state.txt", []string{"vet", "../../examples/fleet", "--now", now, "--state", "../../examples/state.json"}},
		// An update only the feeds make known exploited and critical, and
		// one they leave unapproved: why shows the evidence it weighed.
		{"why-intel-kev.txt", []string{"why", "--repo", "../../examples/fleet", "--state", "testdata/state-intel.json", "--now", now, "--endpoint", "acme-ws-001", "--update", "KB5046617"}},
		{"why-intel-not-approved.txt", []string{"why", "--repo", "../../examples/fleet", "--state", "testdata/state-intel.json", "--now", now, "--endpoint", "globex-web01", "--update", "curl@7.88.1-10+deb12u9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", code, errOut)
			}
			golden.Check(t, filepath.Join("testdata", tt.name), []byte(out))
		})
	}
}

func TestPlanTwiceIsIdentical(t *testing.T) {
	args := []string{"plan", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", now, "--format", "json", "--decisions"}
	_, a, _ := run(t, args...)
	_, b, _ := run(t, args...)
	if a != b {
		t.Fatal("two runs of the same plan differ")
	}
}

func TestVetReportsEveryProblem(t *testing.T) {
	code, out, _ := run(t, "vet", "../../schema/loader/testdata/fleets/one-broken-one-good", "--now", now)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	golden.Check(t, filepath.Join("testdata", "vet-broken.txt"), []byte(out))
}

// TestVetReportsLikeTheLoader: vet runs the loader, so it reports the
// mistakes of the loader's corpus (a bad minEPSS, a malformed CVE id, a
// bad sla.knownExploited, six mistakes in one file, a client contradicting
// a root window, ...) exactly as the loader's golden files have them.
func TestVetReportsLikeTheLoader(t *testing.T) {
	for _, fleet := range []string{"bad-epss", "bad-cve", "bad-exploited-sla", "six-errors", "root-window-conflict", "misspelt-field", "bad-until", "bad-duration", "bad-enum", "concat-undefined-default"} {
		t.Run(fleet, func(t *testing.T) {
			dir := filepath.Join("../../schema/loader/testdata/fleets", fleet)
			code, out, _ := run(t, "vet", dir, "--now", now)
			if code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			golden.Check(t, dir+".golden.txt", []byte(out))
		})
	}
}

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing state file", []string{"plan", "--repo", "../../examples/fleet", "--state", "nope.json"}, "read state"},
		{"unknown format", []string{"plan", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--format", "html"}, `unknown format "html"`},
		{"bad now", []string{"plan", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--now", "tomorrow"}, "RFC 3339"},
		{"unknown endpoint", []string{"why", "--repo", "../../examples/fleet", "--state", "../../examples/state.json", "--endpoint", "nope", "--update", "KB1"}, `endpoint "nope" is not in the state snapshot`},
		{"plan of a broken fleet", []string{"plan", "--repo", "../../schema/loader/testdata/fleets/one-broken-one-good", "--state", "../../examples/state.json"}, "run patchctl vet"},
		{"not a fleet repo", []string{"vet", "testdata"}, "cue.mod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := run(t, tt.args...)
			if code == 0 {
				t.Fatal("exit 0, want an error")
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q does not mention %q", errOut, tt.want)
			}
		})
	}
}

// commitAll commits the work tree of repo with a fixed author and time, so
// commit hashes (and the golden files naming them) are stable.
func commitAll(t *testing.T, dir, msg string, when time.Time) {
	t.Helper()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddGlob("."); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "Tess Technician", Email: "tess@msp.example", When: when}
	if _, err := wt.Commit(msg, &git.CommitOptions{Author: sig}); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPlanBase is the pull-request preview: a change that lifts the pilot
// halt with a resume entry and holds Chrome on the canary is planned
// against its base.
func TestPlanBase(t *testing.T) {
	dir := t.TempDir()
	if _, err := git.PlainInit(dir, false); err != nil {
		t.Fatal(err)
	}
	copyDir(t, "../../examples/fleet", dir)
	base := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	commitAll(t, dir, "Acme and Globex policy", base)

	policy := filepath.Join(dir, "clients/acme/policy.cue")
	b, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b),
		`resume: [{update: "KB5035000", after: "2026-11-20T12:00:00Z"}]`,
		`resume: [
	{update: "KB5035000", after: "2026-11-20T12:00:00Z"},
	{update: "KB5034441", after: "2026-11-23T12:00:00Z"}, // PSA-1301: 0x80070643 fixed by the WinRE partition resize
]`, 1)
	s = strings.Replace(s, "exclusions: [\n", "exclusions: [\n\t{update: \"Google.Chrome@131.0.6778.86\", select: labels: ring: \"canary\", reason: \"vendor reports a crash with the EHR web client\", ticket: \"PSA-1302\", until: \"2026-12-05\"},\n", 1)
	if s == string(b) {
		t.Fatal("the edit did not apply")
	}
	if err := os.WriteFile(policy, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	commitAll(t, dir, "Resume KB5034441 in pilot; hold Chrome on canary (#42)", base.Add(time.Hour))

	for _, format := range []string{"text", "markdown", "json"} {
		t.Run(format, func(t *testing.T) {
			code, out, errOut := run(t, "plan", "--repo", dir, "--rev", "HEAD", "--base", "HEAD~1", "--state", "../../examples/state.json", "--now", now, "--format", format)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			golden.Check(t, filepath.Join("testdata", "plan-base."+format), []byte(out))
		})
	}
	t.Run("why blames the line", func(t *testing.T) {
		code, out, errOut := run(t, "why", "--repo", dir, "--rev", "HEAD", "--state", "../../examples/state.json", "--now", now, "--endpoint", "acme-ws-001", "--update", "Google.Chrome@131.0.6778.86")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, `"Resume KB5034441 in pilot; hold Chrome on canary (#42)"`) {
			t.Errorf("why does not name the commit that added the exclusion:\n%s", out)
		}
		golden.Check(t, filepath.Join("testdata", "why-blame.txt"), []byte(out))
	})
}

func TestInitMakesAVettedRepo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fleet")
	code, out, errOut := run(t, "init", dir, "--author", "Tess Technician <tess@msp.example>")
	if code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "Initialised fleet repository") {
		t.Errorf("init output: %q", out)
	}
	for _, f := range []string{"fleet.cue", "clients/example/policy.cue", "CODEOWNERS", ".github/workflows/patchline-state.yml", ".github/workflows/patchline-plan.yml", ".github/workflows/patchline-comment.yml", ".gitlab-ci.yml", "cue.mod/module.cue", "state.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("init did not write %s: %v", f, err)
		}
	}
	if code, _, errOut := run(t, "vet", dir, "--rev", "main"); code != 0 {
		t.Errorf("vet of the template at HEAD: exit %d: %s", code, errOut)
	}
	if code, _, errOut := run(t, "plan", "--repo", dir, "--rev", "HEAD", "--state", filepath.Join(dir, "state.json")); code != 0 {
		t.Errorf("plan of the template: exit %d: %s", code, errOut)
	}
	if code, _, _ := run(t, "init", dir, "--author", "Tess Technician <tess@msp.example>"); code == 0 {
		t.Error("init into a non-empty directory succeeded")
	}
}
