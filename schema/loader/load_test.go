package loader

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/schema"
)

// TestPositions checks that decoded rules point at the CUE the user wrote:
// the client's own file, or the root file for an inherited default.
func TestPositions(t *testing.T) {
	fleet, err := New(Options{Now: testNow}).LoadDir(context.Background(), "testdata/fleets/valid")
	if err != nil {
		t.Fatal(err)
	}
	acme, globex := fleet.Clients["acme"], fleet.Clients["globex"]
	if acme == nil || globex == nil {
		t.Fatalf("clients missing: %v", fleet.Problems)
	}
	tests := []struct {
		name string
		got  schema.Pos
		want string
	}{
		{"client's own ring", acme.Rings[1].Pos, "clients/acme/policy.cue:13:2"},
		{"inherited default ring", globex.Rings[0].Pos, "fleet.cue:10:3"},
		{"window from the root files", acme.Windows["weekend"].Pos, "fleet.cue:22:10"},
		{"client's window", acme.Windows["weeknights"].Pos, "clients/acme/policy.cue:6:2"},
		{"default exclusion a client extends", acme.Exclusions[0].Pos, "fleet.cue:14:3"},
		{"exclusion the client adds", acme.Exclusions[1].Pos, "clients/acme/policy.cue:34:2"},
		{"approve rule", acme.Baseline.Approve[4].Pos, "clients/acme/policy.cue:23:3"},
		{"requirement", acme.Baseline.Require[1].Pos, "clients/acme/policy.cue:28:3"},
		{"freeze in a second client file", acme.Freezes[0].Pos, "clients/acme/client.cue:6:11"},
		{"resume", acme.Resume[0].Pos, "clients/acme/policy.cue:37:10"},
	}
	for _, tt := range tests {
		if got := tt.got.String(); got != tt.want {
			t.Errorf("%s: pos %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestNotAFleetRepo(t *testing.T) {
	_, err := New(Options{}).LoadDir(context.Background(), t.TempDir())
	if !errors.Is(err, ErrNotFleetRepo) {
		t.Errorf("LoadDir(empty dir) error = %v, want ErrNotFleetRepo", err)
	}
	_, err = New(Options{}).LoadDir(context.Background(), filepath.Join(t.TempDir(), "missing"))
	if err == nil {
		t.Error("LoadDir(missing dir) returned no error")
	}
}

// readFleet returns the fleet files under dir.
func readFleet(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestReloadReusesUnchangedClients(t *testing.T) {
	ctx := context.Background()
	l := New(Options{Now: testNow})
	files := readFleet(t, "testdata/fleets/valid")
	first, err := l.LoadFiles(ctx, files, "")
	if err != nil {
		t.Fatal(err)
	}
	edited := maps.Clone(files)
	edited["clients/globex/policy.cue"] = []byte(strings.Replace(string(files["clients/globex/policy.cue"]), `"report"`, `"enforce"`, 1))
	second, err := l.LoadFiles(ctx, edited, "")
	if err != nil {
		t.Fatal(err)
	}
	if first.Clients["acme"] != second.Clients["acme"] {
		t.Error("unchanged client acme was evaluated again")
	}
	if first.Clients["globex"] == second.Clients["globex"] || second.Clients["globex"].Mode != schema.ModeEnforce {
		t.Error("edited client globex was not evaluated again")
	}
	if first.Clients["globex"].Digest == second.Clients["globex"].Digest {
		t.Error("editing globex did not change its digest")
	}

	// A root file belongs to every client.
	edited["fleet.cue"] = append(edited["fleet.cue"], "\n// comment\n"...)
	third, err := l.LoadFiles(ctx, edited, "")
	if err != nil {
		t.Fatal(err)
	}
	if third.Clients["acme"] == second.Clients["acme"] {
		t.Error("editing a root file did not re-evaluate acme")
	}
}

func slicesKeys(m map[string]*schema.Client) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

func TestCanceledLoad(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := New(Options{}).LoadDir(ctx, "testdata/fleets/valid")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("LoadDir with a canceled context: error = %v, want context.Canceled", err)
	}
}

func TestStrayFiles(t *testing.T) {
	files := readFleet(t, "testdata/fleets/valid")
	files["clients/retired/archive/policy.cue"] = []byte("package fleet\n")
	files["clients/acme/notes.txt"] = []byte("not CUE")
	files["docs/ignored.cue"] = []byte("this is not parsed")
	fleet, err := New(Options{Now: testNow}).LoadFiles(context.Background(), files, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"clients/retired:0:0: warning: directory has no .cue files of its own; it is not loaded as a client"}
	var got []string
	for _, p := range fleet.Problems {
		got = append(got, p.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if len(fleet.Clients) != 2 {
		t.Errorf("loaded %d clients, want acme and globex", len(fleet.Clients))
	}
}

// TestEveryProblemAtOnce: the mistakes of the golden corpus are each
// reported once, where the technician acts, with no problem that follows
// from another; the golden files hold the exact texts.
func TestEveryProblemAtOnce(t *testing.T) {
	tests := []struct {
		fleet            string
		errors, warnings int
		// has are texts some problem holds; hasNot are texts none holds.
		has, hasNot []string
	}{
		{fleet: "six-errors", errors: 6, warnings: 1,
			has:    []string{`mdoe: field not allowed: did you mean "mode"?`, `"7 days"`, `rings.1.minSuccess: 1.5 is above 1: use a fraction from 0 to 1`, `unknown window "weekends"`, `did you mean "reason"?`, `exclusions.1.until: invalid date "2026-13-45"`, "warning: exclusions.2: expired"},
			hasNot: []string{"missing reason", "missing until", "out of bound"}},
		{fleet: "root-window-conflict", errors: 1,
			has: []string{"clients/acme/policy.cue:7:28: windows.weeknights.days: ", "(conflicts with fleet.cue:4:15)"}},
		{fleet: "contradicts-root", errors: 1,
			has: []string{"clients/acme/policy.cue:5:26: windows.weekend.start: ", "(conflicts with fleet.cue:3:35)"}},
		{fleet: "misspelt-field", errors: 1, has: []string{`minSeverty: field not allowed: did you mean "minSeverity"?`}},
		{fleet: "bad-until", errors: 3, has: []string{`exclusions.0.until: invalid date "2026-31-12"`, `exclusions.1.until: invalid date "end of the year"`}, hasNot: []string{"missing until", "until must be after from"}},
		{fleet: "bad-duration", errors: 2, has: []string{`staleAfter: invalid duration "7 days"`, `rings.0.soak: invalid duration "3x"`}},
		{fleet: "bad-enum", errors: 6, has: []string{`mode: invalid value "enforcing": use one of enforce, report`, `did you mean "tue"?`}, hasNot: []string{"give either days or monthly", "no ring"}},
		{fleet: "concat-undefined-default", errors: 1, has: []string{"list.Concat cannot extend defaults.exclusions", "exclusions: [...] without list.Concat"}},
		{fleet: "client-missing", errors: 1, has: []string{`client: missing: say which client this directory holds, e.g. client: {id: "acme"`}},
	}
	for _, tt := range tests {
		t.Run(tt.fleet, func(t *testing.T) {
			fleet, err := New(Options{Now: testNow}).LoadDir(context.Background(), filepath.Join("testdata/fleets", tt.fleet))
			if err != nil {
				t.Fatal(err)
			}
			var errs, warns int
			var all []string
			for _, p := range fleet.Problems {
				all = append(all, p.String())
				if p.Level == schema.LevelError {
					errs++
				} else {
					warns++
				}
			}
			text := strings.Join(all, "\n")
			if errs != tt.errors || warns != tt.warnings {
				t.Errorf("%d errors and %d warnings, want %d and %d:\n%s", errs, warns, tt.errors, tt.warnings, text)
			}
			for _, s := range tt.has {
				if !strings.Contains(text, s) {
					t.Errorf("no problem says %q:\n%s", s, text)
				}
			}
			for _, s := range tt.hasNot {
				if strings.Contains(text, s) {
					t.Errorf("a problem says %q:\n%s", s, text)
				}
			}
		})
	}
}
