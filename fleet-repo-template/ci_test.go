package fleettemplate

import (
	"bytes"
	"go/build"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/gittest"
)

// The CI files the template lays down. README.md (the repository's and the
// template's) names them: renaming one is a change to both.
var ciFiles = []string{
	".github/workflows/patchline-comment.yml",
	".github/workflows/patchline-plan.yml",
	".github/workflows/patchline-state.yml",
	".gitlab-ci.yml",
}

func workflowFiles(t *testing.T) []string {
	t.Helper()
	files, err := fs.Glob(FS(), ".github/workflows/*")
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestTemplateHasTheCIFiles(t *testing.T) {
	got := append(workflowFiles(t), ".gitlab-ci.yml")
	sort.Strings(got)
	if _, err := fs.Stat(FS(), ".gitlab-ci.yml"); err != nil {
		t.Error(err)
	}
	if diff := cmp.Diff(ciFiles, got); diff != "" {
		t.Errorf("CI files of the template (-want +got):\n%s", diff)
	}
}

// TestCIFilesKeepTokensFromPullRequests holds the template's own CI files
// to the rules of cilint_test.go.
func TestCIFilesKeepTokensFromPullRequests(t *testing.T) {
	for _, file := range ciFiles {
		t.Run(file, func(t *testing.T) {
			src, err := fs.ReadFile(FS(), file)
			if err != nil {
				t.Fatal(err)
			}
			var problems []string
			if strings.HasPrefix(file, ".github/") {
				problems = checkWorkflow(file, src)
			} else {
				problems = checkGitLab(file, src)
			}
			for _, p := range problems {
				t.Error(p)
			}
		})
	}
}

// TestCIRulesCatchBadSnippets shows each rule failing on the mistake it is
// for, and passing the safe way of doing the same thing.
func TestCIRulesCatchBadSnippets(t *testing.T) {
	tests := []struct {
		name   string
		gitlab bool
		src    string
		want   string // a problem that must be reported; "" for none at all
	}{
		{
			name: "admin token in a pull request job (the old template)",
			src: `
on: [push, pull_request]
permissions: {contents: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - name: Fetch the fleet state
        env:
          PATCHLINE_ADMIN_TOKEN: ${{ secrets.PATCHLINE_ADMIN_TOKEN }}
        run: patchctl state export --controller "$C" --out state.json
`,
			want: "reads secrets.PATCHLINE_ADMIN_TOKEN in a workflow triggered by pull_request",
		},
		{
			name: "--token on the command line",
			src: `
on: {push: {branches: [main]}}
permissions: {contents: read}
jobs:
  state:
    runs-on: ubuntu-latest
    steps:
      - run: patchctl state export --controller "$C" --token=abc --out state.json
`,
			want: "--token puts the token on the command line",
		},
		{
			name: "base_ref interpolated into a script",
			src: `
on: pull_request
permissions: {contents: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - run: patchctl plan --base "origin/${{ github.base_ref }}"
`,
			want: "the script interpolates ${{ }}",
		},
		{
			name: "token variable in a curl header",
			src: `
on: pull_request
permissions: {contents: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - env:
          GH_TOKEN: ${{ github.token }}
        run: |
          curl --header "Authorization: Bearer $GH_TOKEN" https://api.example
`,
			want: "$GH_TOKEN is on a command line",
		},
		{
			name: "secret by index in a pull request job",
			src: `
on: pull_request
permissions: {contents: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - env:
          PATCHLINE_TOKEN: ${{ secrets['PATCHLINE_READ_TOKEN'] }}
        run: patchctl state export --controller "$C"
`,
			want: "reads secrets.PATCHLINE_READ_TOKEN in a workflow triggered by pull_request",
		},
		{
			name: "every secret as JSON in a pull request job",
			src: `
on: pull_request
permissions: {contents: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - env:
          ALL: ${{ toJSON(secrets) }}
        run: echo done
`,
			want: "reads secrets.* in a workflow triggered by pull_request",
		},
		{
			name: "secrets inherited by a reusable workflow on pull requests",
			src: `
on: pull_request
permissions: {contents: read}
jobs:
  plan:
    uses: ./.github/workflows/reusable.yml
    secrets: inherit
`,
			want: "reads secrets.* (secrets: inherit) in a workflow triggered by pull_request",
		},
		{
			name: "secret in the workflow_run workflow that comments",
			src: `
on:
  workflow_run: {workflows: [patchline-plan], types: [completed]}
permissions: {}
jobs:
  comment:
    runs-on: ubuntu-latest
    permissions: {pull-requests: write}
    steps:
      - env:
          PATCHLINE_TOKEN: ${{ secrets.PATCHLINE_READ_TOKEN }}
        run: patchctl status --controller "$C"
`,
			want: "in a workflow triggered by workflow_run",
		},
		{
			name: "pull_request_target",
			src: `
on: pull_request_target
permissions: {contents: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - run: patchctl vet .
`,
			want: "pull_request_target runs with the repository's secrets",
		},
		{
			name: "repository secret outside an environment",
			src: `
on: {push: {branches: [main]}}
permissions: {contents: read}
jobs:
  state:
    runs-on: ubuntu-latest
    steps:
      - env:
          PATCHLINE_TOKEN: ${{ secrets.PATCHLINE_READ_TOKEN }}
        run: patchctl state export --controller "$C"
`,
			want: "reads secrets.PATCHLINE_READ_TOKEN without an environment",
		},
		{
			name: "secret on an event a commenter starts",
			src: `
on: [schedule, issue_comment]
permissions: {contents: read}
jobs:
  state:
    runs-on: ubuntu-latest
    environment: patchline-state
    steps:
      - env:
          PATCHLINE_TOKEN: ${{ secrets.PATCHLINE_READ_TOKEN }}
        run: patchctl state export --controller "$C"
`,
			want: "in a workflow triggered by issue_comment; a job with a secret runs only on push, schedule, workflow_dispatch",
		},
		{
			name: "secret in the workflow's env",
			src: `
on: {push: {branches: [main]}}
permissions: {contents: read}
env:
  PATCHLINE_TOKEN: ${{ secrets.PATCHLINE_READ_TOKEN }}
jobs:
  state:
    runs-on: ubuntu-latest
    environment: patchline-state
    steps:
      - run: patchctl state export --controller "$C"
`,
			want: "workflow env reads secrets.PATCHLINE_READ_TOKEN",
		},
		{
			name: "secret in a job's env",
			src: `
on: {push: {branches: [main]}}
permissions: {contents: read}
jobs:
  state:
    runs-on: ubuntu-latest
    environment: patchline-state
    env:
      PATCHLINE_TOKEN: ${{ secrets.PATCHLINE_READ_TOKEN }}
    steps:
      - run: patchctl state export --controller "$C"
`,
			want: "job env reads secrets.PATCHLINE_READ_TOKEN",
		},
		{
			name: "write permission for pull requests",
			src: `
on: pull_request
permissions: {contents: read, pull-requests: write}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - run: patchctl vet .
`,
			want: "pull-requests: write in a workflow that pull requests run",
		},
		{
			name: "no permissions",
			src: `
on: pull_request
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - run: patchctl vet .
`,
			want: "no top-level permissions",
		},
		{
			name: "action that follows a branch",
			src: `
on: pull_request
permissions: {contents: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@main
`,
			want: "actions/checkout@main follows a branch",
		},
		{
			name: "commit pin without its version",
			src: `
on: pull_request
permissions: {contents: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1
`,
			want: "pinned to a commit without a version comment",
		},
		{
			name: "commit pin with the version of another action on the line before",
			src: `
on: pull_request
permissions: {contents: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      # actions/setup-go v7.0.0
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1
`,
			want: "pinned to a commit without a version comment",
		},
		{
			name: "safe: commit pins with their versions after them or on the line before",
			src: `
on: pull_request
permissions: {contents: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      # actions/checkout v7.0.1
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1
      - name: Set up Go
        # actions/setup-go v7.0.0
        uses: actions/setup-go@b7ad1dad31e06c5925ef5d2fc7ad053ef454303e
      - uses: actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f  # v7.0.0
        with: {name: plan, path: plan.md}
`,
		},
		{
			name: "checkout in the workflow_run workflow",
			src: `
on:
  workflow_run: {workflows: [patchline-plan], types: [completed]}
permissions: {}
jobs:
  comment:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v7
`,
			want: "must not check out code a pull request wrote",
		},
		{
			name: "safe: read token in an environment on main, from env, file flag allowed",
			src: `
on:
  push: {branches: [main]}
  schedule: [{cron: "17 * * * *"}]
  workflow_dispatch:
permissions: {contents: read}
jobs:
  state:
    runs-on: ubuntu-latest
    environment: patchline-state
    steps:
      - uses: actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f # v7.0.0
        with: {name: s, path: state.json}
      - env:
          PATCHLINE_TOKEN: ${{ secrets.PATCHLINE_READ_TOKEN }}
        run: |
          patchctl state export --controller "$C" --out state.json
          patchctl status --controller "$C" --token-file token
`,
		},
		{
			name: "safe: GITHUB_TOKEN and the base ref through env in a pull request job",
			src: `
on: pull_request
permissions: {contents: read, actions: read}
jobs:
  plan:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v7
      - env:
          GH_TOKEN: ${{ secrets.GITHUB_TOKEN }}
          BASE_REF: ${{ github.base_ref }}
        run: gh run list --branch "$BASE_REF"
`,
		},

		{
			name:   "the old GitLab plan job: admin token on the command line of a merge request job",
			gitlab: true,
			src: `
plan:
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  script:
    - patchctl state export --controller "$PATCHLINE_CONTROLLER" --token "$PATCHLINE_ADMIN_TOKEN" --out state.json
`,
			want: "$PATCHLINE_ADMIN_TOKEN is on a command line",
		},
		{
			name:   "GitLab --token flag",
			gitlab: true,
			src: `
state:
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
  script:
    - patchctl state export --controller "$C" --token abc
`,
			want: "--token puts the token on the command line",
		},
		{
			name:   "GitLab controller job in merge request pipelines",
			gitlab: true,
			src: `
plan:
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  script:
    - patchctl state export --controller "$PATCHLINE_CONTROLLER" --out state.json
`,
			want: `does not keep it to the default branch`,
		},
		{
			name:   "GitLab token in the global variables",
			gitlab: true,
			src: `
variables:
  PATCHLINE_TOKEN: $PATCHLINE_READ_TOKEN
vet:
  script: [patchctl vet .]
`,
			want: "gives a Patchline token to every job",
		},
		{
			name:   "GitLab token job without rules",
			gitlab: true,
			src: `
state:
  variables:
    PATCHLINE_TOKEN: $PATCHLINE_READ_TOKEN
  script:
    - patchctl state export --controller "$C"
`,
			want: "holds a Patchline token but has no rules",
		},
		{
			name:   "GitLab token job on CI_COMMIT_REF_NAME, which a merge request sets to its source branch",
			gitlab: true,
			src: `
state:
  rules:
    - if: $CI_COMMIT_REF_NAME == $CI_DEFAULT_BRANCH
  variables:
    PATCHLINE_TOKEN: $PATCHLINE_READ_TOKEN
  script:
    - patchctl state export --controller "$C"
`,
			want: "does not keep it to the default branch",
		},
		{
			name:   "GitLab token job also on merge requests",
			gitlab: true,
			src: `
state:
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH || $CI_PIPELINE_SOURCE == "merge_request_event"
  variables:
    PATCHLINE_TOKEN: $PATCHLINE_READ_TOKEN
  script:
    - patchctl state export --controller "$C"
`,
			want: "does not keep it to the default branch",
		},
		{
			name:   "GitLab token job with an unconditional rule",
			gitlab: true,
			src: `
state:
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH
    - when: always
  variables:
    PATCHLINE_TOKEN: $PATCHLINE_READ_TOKEN
  script:
    - patchctl state export --controller "$C"
`,
			want: "has a rule without if",
		},
		{
			name:   "GitLab token job kept by only",
			gitlab: true,
			src: `
state:
  only: [main]
  variables:
    PATCHLINE_TOKEN: $PATCHLINE_READ_TOKEN
  script:
    - patchctl state export --controller "$C"
`,
			want: "use rules, not only",
		},
		{
			name:   "GitLab token from a template the merge request job extends",
			gitlab: true,
			src: `
.with-token:
  variables:
    PATCHLINE_TOKEN: $PATCHLINE_READ_TOKEN
plan:
  extends: .with-token
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  script:
    - patchctl plan --repo . --state state.json
`,
			want: "does not keep it to the default branch",
		},
		{
			name:   "GitLab API token in a curl header",
			gitlab: true,
			src: `
note:
  script:
    - curl --header "PRIVATE-TOKEN: $GITLAB_NOTE_TOKEN" --data-urlencode "body@plan.md" "$CI_API_V4_URL/x"
`,
			want: "$GITLAB_NOTE_TOKEN is on a command line",
		},
		{
			name:   "GitLab token in the default before_script",
			gitlab: true,
			src: `
default:
  before_script:
    - export PATCHLINE_TOKEN="$PATCHLINE_READ_TOKEN"
vet:
  script: [patchctl vet .]
`,
			want: "$PATCHLINE_READ_TOKEN is on a command line",
		},
		{
			name:   "safe GitLab: token job on the default branch, tokens piped from printf",
			gitlab: true,
			src: `
state:
  rules:
    - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $PATCHLINE_CONTROLLER
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
      when: never
  variables:
    PATCHLINE_TOKEN: $PATCHLINE_READ_TOKEN
  script:
    - patchctl state export --controller "$PATCHLINE_CONTROLLER" --out state.json
plan:
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
  script:
    - |
      if printf 'JOB-TOKEN: %s\n' "$CI_JOB_TOKEN" | curl --header @- --output s.json "$CI_API_V4_URL/x"; then
        echo ok
      fi
      printf 'PRIVATE-TOKEN: %s\n' "$GITLAB_NOTE_TOKEN" | curl --header @- "$CI_API_V4_URL/y"
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			if tt.gitlab {
				got = checkGitLab("snippet.yml", []byte(tt.src))
			} else {
				got = checkWorkflow("snippet.yml", []byte(tt.src))
			}
			if tt.want == "" {
				for _, p := range got {
					t.Errorf("safe snippet reported: %s", p)
				}
				return
			}
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tt.want) }) {
				t.Errorf("no problem says %q; got:\n%s", tt.want, strings.Join(got, "\n"))
			}
		})
	}
}

// actionlint returns the actionlint binary that `make test` installs.
func actionlint(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("actionlint"); err == nil {
		return p
	}
	p := filepath.Join(build.Default.GOPATH, "bin", "actionlint")
	if _, err := os.Stat(p); err != nil {
		gittest.SkipOrFail(t, "actionlint not installed (make test installs it with go install): %v", err)
	}
	return p
}

// runActionlint lints the workflows under dir and returns its exit status
// and report.
func runActionlint(t *testing.T, bin, dir string) (bool, string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, ".github", "workflows", "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows under %s: %v", dir, err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, append([]string{"-no-color"}, files...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("run actionlint: %v", err)
	}
	return err == nil, out.String()
}

// A commit pin and its version comment, as the template writes them:
// the version on the line before (# ACTION vX.Y.Z), or after the pin.
var (
	shaPinBefore = regexp.MustCompile(`(?m)^(\s*# \S+ (v[0-9]+)[.0-9]*\n\s*(?:- )?uses: [^@\s]+)@[0-9a-f]{40}`)
	shaPinAfter  = regexp.MustCompile(`@[0-9a-f]{40}(\s+# (v[0-9]+)[.0-9]*)`)
	shaPin       = regexp.MustCompile(`@[0-9a-f]{40}\b`)
)

// byMajorVersion names each pinned action of a workflow by the major
// version of its comment instead of its commit.
func byMajorVersion(src []byte) []byte {
	src = shaPinBefore.ReplaceAll(src, []byte("$1@$2"))
	return shaPinAfter.ReplaceAll(src, []byte("@$2$1"))
}

// TestWorkflowsPassActionlint runs actionlint on the workflows as
// `patchctl init` writes them (with shellcheck on their scripts where
// shellcheck is installed).
func TestWorkflowsPassActionlint(t *testing.T) {
	bin := actionlint(t)
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Log("shellcheck is not installed: actionlint checks the workflows without it")
	}
	dir := t.TempDir()
	if _, err := Write(dir); err != nil {
		t.Fatal(err)
	}
	if ok, out := runActionlint(t, bin, dir); !ok {
		t.Errorf("actionlint finds problems in the template's workflows:\n%s", out)
	}

	// actionlint knows the inputs of popular actions by major version, not
	// by commit: lint a copy that names each pinned action by the major
	// version of its comment, so every with: is checked where actionlint
	// knows that version.
	t.Run("inputs of pinned actions", func(t *testing.T) {
		dir := t.TempDir()
		wf := filepath.Join(dir, ".github", "workflows")
		if err := os.MkdirAll(wf, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range workflowFiles(t) {
			src, err := fs.ReadFile(FS(), f)
			if err != nil {
				t.Fatal(err)
			}
			named := byMajorVersion(src)
			if pin := shaPin.Find(named); pin != nil {
				t.Errorf("%s: a pin (%s) has no version comment to lint it by", f, pin)
			}
			if err := os.WriteFile(filepath.Join(wf, path.Base(f)), named, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if ok, out := runActionlint(t, bin, dir); !ok {
			t.Errorf("actionlint finds problems in the workflows named by major version:\n%s", out)
		}
	})

	// The same run on a workflow with an injection must fail, or a broken
	// actionlint would pass everything.
	t.Run("an injected title is caught", func(t *testing.T) {
		dir := t.TempDir()
		wf := filepath.Join(dir, ".github", "workflows")
		if err := os.MkdirAll(wf, 0o755); err != nil {
			t.Fatal(err)
		}
		bad := "on: pull_request\njobs:\n  plan:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"${{ github.event.pull_request.title }}\"\n"
		if err := os.WriteFile(filepath.Join(wf, "bad.yml"), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		ok, out := runActionlint(t, bin, dir)
		if ok || !strings.Contains(out, "potentially untrusted") {
			t.Errorf("actionlint passed a workflow that runs a pull request's title as shell code:\n%s", out)
		}
	})
}

// TestTemplateREADMENamesWhatCINeeds checks that the fleet repo's README
// names every secret, variable and environment its CI files expect a
// technician to create, and every CI file.
func TestTemplateREADMENamesWhatCINeeds(t *testing.T) {
	readme, err := fs.ReadFile(FS(), "README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // name -> file that needs it
	for _, f := range ciFiles {
		want[path.Base(f)] = f
	}
	ghName := regexp.MustCompile(`\b(?:secrets|vars)\.([A-Za-z_][A-Za-z0-9_]*)`)
	for _, f := range workflowFiles(t) {
		src, err := fs.ReadFile(FS(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ghName.FindAllStringSubmatch(string(src), -1) {
			if m[1] != "GITHUB_TOKEN" {
				want[m[1]] = f
			}
		}
		root, err := parseMapping(src)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		_, jobs := pairs(get(root, "jobs"))
		for _, job := range jobs {
			env := get(job, "environment")
			if n := get(env, "name"); n != nil {
				env = n
			}
			if env != nil {
				want[env.Value] = f
			}
		}
	}
	// GitLab: every variable the file reads that neither GitLab
	// (CI_...) nor the file itself sets.
	src, err := fs.ReadFile(FS(), ".gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseMapping(src)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	_, values := pairs(root)
	for _, v := range append(values, root) {
		keys, _ := pairs(get(v, "variables"))
		for _, k := range keys {
			set[k.Value] = true
		}
	}
	for _, m := range regexp.MustCompile(`\$\{?([A-Z][A-Z0-9_]*)`).FindAllStringSubmatch(string(src), -1) {
		if !strings.HasPrefix(m[1], "CI_") && !set[m[1]] {
			want[m[1]] = ".gitlab-ci.yml"
		}
	}
	for _, name := range []string{"PATCHLINE_READ_TOKEN", "PATCHLINE_CONTROLLER", "patchline-state", "GITLAB_NOTE_TOKEN"} {
		if _, ok := want[name]; !ok {
			t.Errorf("the CI files no longer use %s: is this test out of date?", name)
		}
	}
	for name, file := range want {
		if !strings.Contains(string(readme), name) {
			t.Errorf("%s needs %s, and the fleet repo's README.md does not say what it is", file, name)
		}
	}
	if strings.Contains(string(readme), "ADMIN_TOKEN") {
		t.Error("the fleet repo's README.md still mentions an admin token for CI")
	}
}
