package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

// validFleet is the loader's example of a fleet where every client loads.
const validFleet = "../../schema/loader/testdata/fleets/valid"

// readTree returns the files under dir, keyed by slash-separated path.
func readTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := make(map[string][]byte)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func writeTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadRevision(t *testing.T) {
	gittest.RequireGit(t)
	ctx := context.Background()
	env := gitEnv(t)
	repo := t.TempDir()
	runGit(t, env, repo, "init", "-q", "-b", "main")
	writeTree(t, repo, readTree(t, validFleet))
	runGit(t, env, repo, "add", ".")
	runGit(t, env, repo, "commit", "-q", "-m", "version A")
	hashA := runGit(t, env, repo, "rev-parse", "HEAD")
	runGit(t, env, repo, "tag", "v1")

	// The working tree moves on to version B without a commit.
	policy := filepath.Join(repo, "clients", "globex", "policy.cue")
	b, err := os.ReadFile(policy)
	if err != nil {
		t.Fatal(err)
	}
	versionB := []byte(strings.Replace(string(b), `"report"`, `"enforce"`, 1))
	writeTree(t, repo, map[string][]byte{"clients/globex/policy.cue": versionB})

	l := loader.New(loader.Options{Now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)})
	modeAt := func(dir, rev string) (schema.Mode, string) {
		t.Helper()
		fleet, err := LoadRevision(ctx, l, dir, rev)
		if err != nil {
			t.Fatalf("LoadRevision(%q): %v", rev, err)
		}
		g := fleet.Clients["globex"]
		if g == nil {
			t.Fatalf("LoadRevision(%q): globex did not load: %v", rev, fleet.Problems)
		}
		return g.Mode, fleet.Revision
	}
	if mode, rev := modeAt(repo, "HEAD"); mode != schema.ModeReport || rev != hashA {
		t.Errorf("HEAD with an uncommitted edit: mode %q at %s, want %q at %s", mode, rev, schema.ModeReport, hashA)
	}
	dirFleet, err := l.LoadDir(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if got := dirFleet.Clients["globex"].Mode; got != schema.ModeEnforce {
		t.Errorf("LoadDir of the working tree: mode %q, want %q", got, schema.ModeEnforce)
	}

	runGit(t, env, repo, "commit", "-q", "-am", "version B")
	hashB := runGit(t, env, repo, "rev-parse", "HEAD")
	tests := []struct {
		rev      string
		wantMode schema.Mode
		wantHash string
	}{
		{"HEAD", schema.ModeEnforce, hashB},
		{"main", schema.ModeEnforce, hashB},
		{"HEAD~1", schema.ModeReport, hashA},
		{"v1", schema.ModeReport, hashA},
		{hashA, schema.ModeReport, hashA},
		{hashA[:10], schema.ModeReport, hashA},
	}
	for _, tt := range tests {
		if mode, rev := modeAt(repo, tt.rev); mode != tt.wantMode || rev != tt.wantHash {
			t.Errorf("LoadRevision(%q): mode %q at %s, want %q at %s", tt.rev, mode, rev, tt.wantMode, tt.wantHash)
		}
	}

	bare := filepath.Join(t.TempDir(), "fleet.git")
	runGit(t, env, repo, "clone", "-q", "--bare", repo, bare)
	if mode, rev := modeAt(bare, "main"); mode != schema.ModeEnforce || rev != hashB {
		t.Errorf("bare repository: mode %q at %s, want %q at %s", mode, rev, schema.ModeEnforce, hashB)
	}

	if _, err := LoadRevision(ctx, l, repo, "no-such-branch"); err == nil {
		t.Error("LoadRevision(no-such-branch) returned no error")
	}
	runGit(t, env, repo, "rm", "-q", "-r", "cue.mod")
	runGit(t, env, repo, "commit", "-q", "-m", "drop module")
	if _, err := LoadRevision(ctx, l, repo, "HEAD"); !errors.Is(err, loader.ErrNotFleetRepo) {
		t.Errorf("LoadRevision without cue.mod: error = %v, want ErrNotFleetRepo", err)
	}
}

func TestReadRevisionReadsOnlyWantedFiles(t *testing.T) {
	gittest.RequireGit(t)
	env := gitEnv(t)
	repo := t.TempDir()
	runGit(t, env, repo, "init", "-q", "-b", "main")
	writeTree(t, repo, map[string][]byte{
		"fleet.cue":              []byte("package fleet\n"),
		"clients/acme/a.cue":     []byte("package fleet\n// acme\n"),
		"README.md":              []byte("not wanted\n"),
		"clients/acme/notes.txt": []byte("not wanted\n"),
	})
	if err := os.Symlink("a.cue", filepath.Join(repo, "clients", "acme", "link.cue")); err != nil {
		t.Fatal(err)
	}
	runGit(t, env, repo, "add", ".")
	runGit(t, env, repo, "commit", "-q", "-m", "fleet")
	head := runGit(t, env, repo, "rev-parse", "HEAD")
	// An uncommitted file is not in the revision.
	writeTree(t, repo, map[string][]byte{"clients/acme/draft.cue": []byte("package fleet\n")})

	files, hash, err := ReadRevision(context.Background(), repo, "main", func(p string) bool { return strings.HasSuffix(p, ".cue") })
	if err != nil {
		t.Fatal(err)
	}
	if hash != head {
		t.Errorf("hash = %s, want %s", hash, head)
	}
	var got []string
	for p := range files {
		got = append(got, p)
	}
	slices.Sort(got)
	// link.cue is a symlink: its blob is the link target, not CUE.
	want := []string{"clients/acme/a.cue", "fleet.cue"}
	if !slices.Equal(got, want) {
		t.Errorf("files = %v, want %v", got, want)
	}
	if s := string(files["clients/acme/a.cue"]); s != "package fleet\n// acme\n" {
		t.Errorf("clients/acme/a.cue = %q", s)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := ReadRevision(ctx, repo, "main", func(string) bool { return true }); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadRevision with a canceled context: error = %v, want context.Canceled", err)
	}
}

func TestFirstParents(t *testing.T) {
	gittest.RequireGit(t)
	env := gitEnv(t)
	repo := t.TempDir()
	runGit(t, env, repo, "init", "-q", "-b", "main")
	commitAt := func(msg, date string) {
		t.Helper()
		writeTree(t, repo, map[string][]byte{msg + ".cue": []byte("package fleet\n")})
		runGit(t, env, repo, "add", ".")
		runGit(t, append(env, "GIT_COMMITTER_DATE="+date), repo, "commit", "-q", "-m", msg)
	}
	commitAt("first", "2026-11-01T10:00:00Z")
	runGit(t, env, repo, "checkout", "-q", "-b", "side")
	commitAt("side", "2026-11-02T10:00:00Z")
	runGit(t, env, repo, "checkout", "-q", "main")
	commitAt("second", "2026-11-03T10:00:00Z")
	runGit(t, append(env, "GIT_COMMITTER_DATE=2026-11-04T10:00:00Z"), repo, "merge", "-q", "--no-ff", "-m", "merge side", "side")

	tests := []struct {
		name  string
		since time.Time
		want  []string
	}{
		{"whole branch, without what the merge brought in", time.Time{}, []string{"merge side", "second", "first"}},
		{"since a day keeps the commit before it as the base", time.Date(2026, 11, 3, 12, 0, 0, 0, time.UTC), []string{"merge side", "second"}},
		{"since before every commit", time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), []string{"merge side", "second", "first"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chain, err := FirstParents(context.Background(), repo, tt.since)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range chain {
				got = append(got, strings.TrimSpace(c.Message))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("FirstParents = %v, want %v", got, tt.want)
			}
		})
	}
	chain, err := FirstParents(context.Background(), repo, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if head := runGit(t, env, repo, "rev-parse", "HEAD"); chain[0].Hash != head {
		t.Errorf("newest commit %s, want HEAD %s", chain[0].Hash, head)
	}
	if want := time.Date(2026, 11, 4, 10, 0, 0, 0, time.UTC); !chain[0].Date.Equal(want) || chain[0].Author != "Test Technician" || chain[0].Email != "tech@example.com" {
		t.Errorf("merge commit: %s <%s> at %v, want Test Technician <tech@example.com> at %v", chain[0].Author, chain[0].Email, chain[0].Date, want)
	}
	if _, err := FirstParents(context.Background(), t.TempDir(), time.Time{}); err == nil {
		t.Error("FirstParents(not a repository) returned no error")
	}
}

// TestLoadRevisionReadsHookScriptsAtTheRevision: a hook script's content
// in the loaded policy is the committed one, not the working tree's.
func TestLoadRevisionReadsHookScriptsAtTheRevision(t *testing.T) {
	gittest.RequireGit(t)
	ctx := context.Background()
	env := gitEnv(t)
	repo := t.TempDir()
	runGit(t, env, repo, "init", "-q", "-b", "main")
	writeTree(t, repo, readTree(t, "../../schema/loader/testdata/fleets/policy19"))
	runGit(t, env, repo, "add", ".")
	runGit(t, env, repo, "commit", "-q", "-m", "hooks")
	writeTree(t, repo, map[string][]byte{"scripts/stop-ehr.ps1": []byte("Remove-Item C:\\ -Recurse\n")})

	fleet, err := LoadRevision(ctx, loader.New(loader.Options{Now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}), repo, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	acme := fleet.Clients["acme"]
	if acme == nil {
		t.Fatalf("acme did not load: %v", fleet.Problems)
	}
	if got := acme.Rings[0].Hooks.Pre.Content; got != "Stop-Service EHR\n" {
		t.Errorf("pre script at HEAD = %q, want the committed %q", got, "Stop-Service EHR\n")
	}
}
