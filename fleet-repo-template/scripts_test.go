package fleettemplate

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchline/patchline/internal/gittest"
)

// These tests run the shell scripts of the GitHub workflows with bash, as
// the runner does (bash --noprofile --norc -eo pipefail), against a fake
// gh that answers from files, so the parts that handle untrusted input are
// exercised, not only read.

// fakeGH answers `gh api PATH` from $FAKE/GET-<PATH with / as _> (through
// jq -r when --jq is given), records what POST and PATCH send in
// $FAKE/sent-<METHOD>-<PATH>.json, and serves `gh run download RUN --name
// NAME --dir DIR` from $FAKE/run-RUN-NAME/. Every call is logged.
const fakeGH = `#!/usr/bin/env bash
set -euo pipefail
echo "$*" >> "$FAKE/calls.log"
if [ "$1" = run ] && [ "$2" = download ]; then
	run=$3; shift 3
	while [ $# -gt 0 ]; do
		case $1 in
			--name) name=$2; shift 2 ;;
			--dir) dir=$2; shift 2 ;;
			*) shift 2 ;;
		esac
	done
	[ -d "$FAKE/run-$run-$name" ] || { echo "no artifact $name in run $run" >&2; exit 1; }
	mkdir -p "$dir"
	cp "$FAKE/run-$run-$name"/* "$dir"/
	exit 0
fi
[ "$1" = api ] || { echo "fake gh: unexpected $*" >&2; exit 2; }
shift
method=GET jq= input= path=
while [ $# -gt 0 ]; do
	case $1 in
		--method) method=$2; shift 2 ;;
		--jq) jq=$2; shift 2 ;;
		--input) input=$2; shift 2 ;;
		-f) shift 2 ;;
		--paginate) shift ;;
		*) path=$1; shift ;;
	esac
done
key=$(printf '%s' "${path%%\?*}" | tr / _)
if [ "$method" != GET ]; then
	cp "$input" "$FAKE/sent-$method-$key.json"
	echo '{}'
	exit 0
fi
file="$FAKE/GET-$key"
[ -f "$file" ] || { echo "HTTP 404: $path" >&2; exit 1; }
if [ -n "$jq" ]; then jq -r "$jq" "$file"; else cat "$file"; fi
`

// stepScript returns the run: script of the named step of a template
// workflow.
func stepScript(t *testing.T, workflow, step string) string {
	t.Helper()
	src, err := fs.ReadFile(FS(), workflow)
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseMapping(src)
	if err != nil {
		t.Fatal(err)
	}
	_, jobs := pairs(get(root, "jobs"))
	for _, job := range jobs {
		for _, s := range get(job, "steps").Content {
			if n := get(s, "name"); n != nil && n.Value == step {
				return get(s, "run").Value
			}
		}
	}
	t.Fatalf("%s has no step %q", workflow, step)
	return ""
}

func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			gittest.SkipOrFail(t, "%s not installed (Debian package of the same name); the workflow scripts are not run: %v", tool, err)
		}
	}
}

// runStep runs script as the runner would, in dir, with env and the fake
// gh first on PATH. It returns the exit status and the output.
func runStep(t *testing.T, dir, fake, script string, env map[string]string) (bool, string) {
	t.Helper()
	bin := filepath.Join(fake, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "gh"), []byte(fakeGH), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(fake, "step.sh")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	// No file the step writes may pass 1 MiB (ulimit -f counts KiB): an
	// archive unpacked whole would stop the step here.
	cmd := exec.Command("bash", "-c", `ulimit -f 1024 && exec bash --noprofile --norc -eo pipefail "$0"`, file)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + fake, "FAKE=" + fake}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run bash: %v", err)
	}
	return err == nil, string(out)
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeJSON(t *testing.T, name string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, name, data)
}

// zipOf returns a zip archive holding files, by name.
func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for name, data := range files {
		f, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCommentWorkflowTreatsThePlanAsData runs the step of
// patchline-comment.yml that posts a pull request's plan.
func TestCommentWorkflowTreatsThePlanAsData(t *testing.T) {
	requireTools(t, "bash", "jq", "unzip", "truncate")
	script := stepScript(t, ".github/workflows/patchline-comment.yml", "Post the plan on the pull request")
	const (
		head     = "1111111111111111111111111111111111111111"
		repo     = "repos_msp_fleet_"
		post7    = "sent-POST-" + repo + "issues_7_comments.json"
		limit    = 60000
		smallMD  = "### Change\n\n| client | ring |\n| --- | --- |\n| acme | canary |\n"
		shellMD  = "Endpoint `$(touch pwned-subst)` and `touch pwned-tick` and $HOME ${{ github.token }}\n"
		marker   = "<!-- patchline-plan -->"
		otherSHA = "2222222222222222222222222222222222222222"
	)
	type comment struct {
		ID   int    `json:"id"`
		User any    `json:"user"`
		Body string `json:"body"`
	}
	tests := []struct {
		name     string
		prNumber string
		pulls    any               // GET repos/msp/fleet/pulls (the fork lookup)
		prHead   map[string]string // pull request number -> its head commit
		archive  map[string][]byte // the patchline-plan artifact's files
		size     int               // the artifact's size as the API reports it; 0 for the archive's
		comments []comment
		wantOK   bool
		wantSent string // the file the comment is sent as; "" for none
		wantBody []string
		check    func(t *testing.T, body string)
	}{
		{
			name: "plan posted as a new comment", prNumber: "7",
			prHead: map[string]string{"7": head}, archive: map[string][]byte{"plan.md": []byte(smallMD)},
			wantOK: true, wantSent: post7,
			wantBody: []string{marker + "\n**patchctl plan** of " + head + " ([run](https://github.com/msp/fleet/actions/runs/42))\n\n" + smallMD},
		},
		{
			name: "a later plan edits the bot's comment, not a look-alike", prNumber: "7",
			prHead: map[string]string{"7": head}, archive: map[string][]byte{"plan.md": []byte(smallMD)},
			comments: []comment{
				{ID: 5, User: map[string]string{"login": "mallory"}, Body: marker + " fake"},
				{ID: 6, User: map[string]string{"login": "github-actions[bot]"}, Body: marker + "\nold plan"},
				{ID: 9, User: map[string]string{"login": "github-actions[bot]"}, Body: "another bot comment"},
				{ID: 10, User: map[string]string{"login": "mallory"}, Body: marker + " newer fake"},
			},
			wantOK: true, wantSent: "sent-PATCH-" + repo + "issues_comments_6.json", wantBody: []string{smallMD},
		},
		{
			name: "a pull request that moved on gets no stale plan", prNumber: "7",
			prHead: map[string]string{"7": otherSHA}, archive: map[string][]byte{"plan.md": []byte(smallMD)},
			wantOK: true,
		},
		{
			name: "a pull request from a fork is found by its head commit",
			pulls: []any{
				map[string]any{"number": 3, "head": map[string]string{"sha": otherSHA}},
				map[string]any{"number": 8, "head": map[string]string{"sha": head}},
			},
			prHead: map[string]string{"8": head}, archive: map[string][]byte{"plan.md": []byte(smallMD)},
			wantOK: true, wantSent: "sent-POST-" + repo + "issues_8_comments.json", wantBody: []string{smallMD},
		},
		{
			name: "no open pull request: nothing posted", pulls: []any{},
			archive: map[string][]byte{"plan.md": []byte(smallMD)}, wantOK: true,
		},
		{
			name: "a pull request number that is not a number", prNumber: "7; touch pwned-number",
			prHead: map[string]string{"7; touch pwned-number": head}, archive: map[string][]byte{"plan.md": []byte(smallMD)}, wantOK: true,
		},
		{
			name: "shell in the plan is posted as text, never run", prNumber: "7",
			prHead: map[string]string{"7": head}, archive: map[string][]byte{"plan.md": []byte(shellMD)},
			wantOK: true, wantSent: post7, wantBody: []string{shellMD},
		},
		{
			name: "a plan longer than a comment is cut", prNumber: "7",
			prHead: map[string]string{"7": head}, archive: map[string][]byte{"plan.md": bytes.Repeat([]byte("| acme-ws-001 | KB5034441 | missing |\n"), 10000)},
			wantOK: true, wantSent: post7, wantBody: []string{"it is cut at 60000 bytes"},
			check: func(t *testing.T, body string) {
				if n := len(body) - strings.Index(body, "| acme-ws-001"); n != limit {
					t.Errorf("comment holds %d bytes of the plan, want %d", n, limit)
				}
				if n := len([]rune(body)); n > 65536 {
					t.Errorf("comment is %d characters; GitHub takes 65536", n)
				}
			},
		},
		{
			name: "an archive that unpacks to 64 MiB is read only to the limit", prNumber: "7",
			prHead: map[string]string{"7": head}, archive: map[string][]byte{"plan.md": make([]byte, 64<<20)},
			wantOK: true, wantSent: post7, wantBody: []string{"it is cut at 60000 bytes"},
		},
		{
			name: "an artifact without plan.md", prNumber: "7",
			prHead: map[string]string{"7": head}, archive: map[string][]byte{"evil.sh": []byte("touch pwned-file\n")},
		},
		{
			name: "an artifact larger than a plan is not downloaded", prNumber: "7",
			prHead: map[string]string{"7": head}, archive: map[string][]byte{"plan.md": []byte(smallMD)}, size: 5 << 20,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, work := t.TempDir(), t.TempDir()
			runner := filepath.Join(fake, "runner-temp")
			archive := zipOf(t, tt.archive)
			size := tt.size
			if size == 0 {
				size = len(archive)
			}
			writeJSON(t, filepath.Join(fake, "GET-"+repo+"actions_runs_42_artifacts"), map[string]any{
				"artifacts": []any{map[string]any{"id": 99, "size_in_bytes": size, "expired": false}},
			})
			writeFile(t, filepath.Join(fake, "GET-"+repo+"actions_artifacts_99_zip"), archive)
			if tt.pulls != nil {
				writeJSON(t, filepath.Join(fake, "GET-"+repo+"pulls"), tt.pulls)
			}
			for n, sha := range tt.prHead {
				writeJSON(t, filepath.Join(fake, "GET-"+repo+"pulls_"+n), map[string]any{"head": map[string]string{"sha": sha}})
			}
			comments := tt.comments
			if comments == nil {
				comments = []comment{}
			}
			for _, n := range []string{"7", "8"} {
				writeJSON(t, filepath.Join(fake, "GET-"+repo+"issues_"+n+"_comments"), comments)
			}
			ok, out := runStep(t, work, fake, script, map[string]string{
				"GITHUB_REPOSITORY": "msp/fleet", "RUNNER_TEMP": runner, "GH_TOKEN": "gh-token",
				"RUN_ID": "42", "RUN_URL": "https://github.com/msp/fleet/actions/runs/42",
				"HEAD_SHA": head, "HEAD_OWNER": "contributor", "HEAD_BRANCH": "hold-chrome",
				"PR_NUMBER": tt.prNumber,
			})
			if ok != tt.wantOK {
				t.Fatalf("step succeeded = %v, want %v:\n%s", ok, tt.wantOK, out)
			}
			sent, _ := filepath.Glob(filepath.Join(fake, "sent-*"))
			for i := range sent {
				sent[i] = filepath.Base(sent[i])
			}
			want := []string{}
			if tt.wantSent != "" {
				want = []string{tt.wantSent}
			}
			if fmt.Sprint(sent) != fmt.Sprint(want) {
				t.Fatalf("sent %v, want %v\n%s", sent, want, out)
			}
			for _, pwned := range []string{"pwned-subst", "pwned-tick", "pwned-number", "pwned-file"} {
				for _, dir := range []string{work, fake, runner} {
					if _, err := os.Stat(filepath.Join(dir, pwned)); err == nil {
						t.Errorf("the plan's text ran as shell code: %s exists", pwned)
					}
				}
			}
			calls, _ := os.ReadFile(filepath.Join(fake, "calls.log"))
			if size > 1<<20 && strings.Contains(string(calls), "zip") {
				t.Errorf("downloaded an artifact of %d bytes:\n%s", size, calls)
			}
			if tt.wantSent == "" {
				return
			}
			var msg struct{ Body string }
			data, err := os.ReadFile(filepath.Join(fake, tt.wantSent))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &msg); err != nil {
				t.Fatalf("sent %s: %v", data, err)
			}
			if !strings.HasPrefix(msg.Body, marker+"\n") {
				t.Errorf("comment does not start with the marker the next plan finds it by:\n%.200s", msg.Body)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(msg.Body, w) {
					t.Errorf("comment lacks %q:\n%.500s", w, msg.Body)
				}
			}
			if tt.check != nil {
				tt.check(t, msg.Body)
			}
		})
	}
}

// TestPlanWorkflowTakesStateOnlyFromMain runs the step of
// patchline-plan.yml that finds the fleet state to plan against.
func TestPlanWorkflowTakesStateOnlyFromMain(t *testing.T) {
	requireTools(t, "bash", "jq", "git")
	script := stepScript(t, ".github/workflows/patchline-plan.yml", "Fetch the fleet state")
	const committed = `{"apiVersion": "patchline.dev/state/v1", "endpoints": ["committed on main"]}`
	run := func(id int, event, repo, created string) map[string]any {
		return map[string]any{"id": id, "event": event, "created_at": created, "head_repository": map[string]string{"full_name": repo}}
	}
	tests := []struct {
		name      string
		runs      []any // nil: the API fails
		artifacts map[int]string
		wantState string
		wantFrom  string
	}{
		{
			name: "newest export from a push or the schedule on main",
			runs: []any{
				run(30, "pull_request", "msp/fleet", "2026-11-24T05:00:00Z"),
				run(29, "push", "mallory/fleet", "2026-11-24T04:50:00Z"),
				run(28, "schedule", "msp/fleet", "2026-11-24T04:17:00Z"),
				run(27, "push", "msp/fleet", "2026-11-24T03:00:00Z"),
			},
			artifacts: map[int]string{30: `"forged"`, 29: `"forged"`, 28: `"live"`, 27: `"older"`},
			wantState: `"live"`,
			wantFrom:  "the live fleet state exported at 2026-11-24T04:17:00Z (run 28)",
		},
		{
			name:      "only pull request runs: the state committed on the target branch",
			runs:      []any{run(30, "pull_request", "msp/fleet", "2026-11-24T05:00:00Z")},
			artifacts: map[int]string{30: `"forged"`},
			wantState: committed,
			wantFrom:  "the state.json committed on the target branch",
		},
		{
			name:      "the newest export's artifact has expired",
			runs:      []any{run(28, "schedule", "msp/fleet", "2026-11-20T04:17:00Z")},
			wantState: committed,
			wantFrom:  "the state.json committed on the target branch",
		},
		{
			name:      "the API refuses",
			wantState: committed,
			wantFrom:  "the state.json committed on the target branch",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, work := t.TempDir(), t.TempDir()
			git := func(args ...string) {
				t.Helper()
				cmd := exec.Command("git", args...)
				cmd.Dir = work
				cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example", "GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("git %v: %v\n%s", args, err, out)
				}
			}
			git("init", "-q", "-b", "main")
			writeFile(t, filepath.Join(work, "state.json"), []byte(committed))
			git("add", "state.json")
			git("commit", "-q", "-m", "state")
			git("update-ref", "refs/remotes/origin/main", "HEAD")
			// The pull request's own state.json is not what the plan uses.
			writeFile(t, filepath.Join(work, "state.json"), []byte(`"from the pull request"`))

			if tt.runs != nil {
				writeJSON(t, filepath.Join(fake, "GET-repos_msp_fleet_actions_workflows_patchline-state.yml_runs"), map[string]any{"workflow_runs": tt.runs})
			}
			for id, state := range tt.artifacts {
				writeFile(t, filepath.Join(fake, fmt.Sprintf("run-%d-patchline-state", id), "state.json"), []byte(state))
			}
			output := filepath.Join(fake, "output")
			ok, out := runStep(t, work, fake, script, map[string]string{
				"GITHUB_REPOSITORY": "msp/fleet", "RUNNER_TEMP": filepath.Join(fake, "runner-temp"),
				"GITHUB_OUTPUT": output, "GH_TOKEN": "gh-token", "BASE_REF": "main",
			})
			if !ok {
				t.Fatalf("step failed:\n%s", out)
			}
			outputs := map[string]string{}
			data, err := os.ReadFile(output)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				k, v, _ := strings.Cut(line, "=")
				outputs[k] = v
			}
			state, err := os.ReadFile(outputs["file"])
			if err != nil {
				t.Fatalf("outputs %v: %v", outputs, err)
			}
			if string(state) != tt.wantState {
				t.Errorf("planned against %s, want %s", state, tt.wantState)
			}
			if !strings.HasPrefix(outputs["from"], tt.wantFrom) {
				t.Errorf("from = %q, want %q", outputs["from"], tt.wantFrom)
			}
		})
	}
}
