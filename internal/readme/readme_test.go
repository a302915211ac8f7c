package readme

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	fleettemplate "github.com/patchline/patchline/fleet-repo-template"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

// now is the time the README's examples are vetted at, and the --now its
// console examples plan at: inside acme's weeknights window.
var now = time.Date(2026, 11, 24, 4, 30, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	if example.dir != "" {
		os.RemoveAll(example.dir)
	}
	os.Exit(code)
}

// TestREADME checks every fenced block of README.md by its language (see
// the package comment).
func TestREADME(t *testing.T) {
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	c := &checker{t: t}
	for _, p := range c.check("README.md", string(md)) {
		t.Error(p)
	}
	if c.commands == 0 || c.ran == 0 || len(c.clients) == 0 {
		t.Errorf("README.md: %d commands checked, %d run, %d CUE files vetted; want some of each", c.commands, c.ran, len(c.clients))
	}
	// The policy reference shows each approve field and sla entry at
	// least once, so the fields it documents are checked here too.
	var minEPSS, cve, exploitedSLA bool
	for _, cl := range c.clients {
		for _, a := range cl.Baseline.Approve {
			minEPSS = minEPSS || a.MinEPSS > 0
			cve = cve || len(a.CVE) > 0
		}
		exploitedSLA = exploitedSLA || cl.KnownExploitedSLA != nil
	}
	for _, f := range []struct {
		field string
		shown bool
	}{{"baseline.approve[].minEPSS", minEPSS}, {"baseline.approve[].cve", cve}, {"sla." + schema.SLAKnownExploited, exploitedSLA}} {
		if !f.shown {
			t.Errorf("no README cue example sets %s", f.field)
		}
	}
}

// checker checks the blocks of one Markdown file.
type checker struct {
	t *testing.T
	// clients are the clients the cue blocks decoded to.
	clients []*schema.Client
	// commands counts the command lines checked; ran those run for real.
	commands, ran int
	// help caches each command's usage (or the error saying it is none),
	// by tool and words.
	help map[string]helpResult
}

// dirFlags are the flags naming the directory a tool keeps its state in.
var dirFlags = map[string]string{"patchd": "--data-dir", "patch-agent": "--state-dir"}

type helpResult struct {
	u   *usage
	err error
}

// check returns what is wrong with the blocks of md, the file name, each
// as "name:line: problem".
func (c *checker) check(name, md string) []string {
	blocks, err := fencedBlocks(md)
	if err != nil {
		return []string{fmt.Sprintf("%s:%v", name, err)}
	}
	var out []string
	add := func(line int, format string, args ...any) {
		out = append(out, fmt.Sprintf("%s:%d: %s", name, line, fmt.Sprintf(format, args...)))
	}
	for _, b := range blocks {
		switch b.lang {
		case "":
			add(b.line, "the block has no language: say which it is (cue, sh, console, text, json, ...) so the README test knows how to check it")
		case "cue":
			for _, p := range c.vetCUE(b) {
				add(p.line, "%s", p.msg)
			}
		case "yaml":
			for _, p := range c.checkConfigFile(b) {
				add(b.line, "%s", p)
			}
		case "sh", "bash", "console":
			cmds, err := commands(b)
			if err != nil {
				add(b.line, "%v", err)
				continue
			}
			for _, cmd := range cmds {
				for _, p := range c.checkCommand(b, cmd) {
					add(cmd.line, "%s: %s", strings.Join(cmd.words, " "), p)
				}
			}
		}
	}
	return out
}

// cueProblem is a problem of a cue block, at its line of the Markdown
// file.
type cueProblem struct {
	line int
	msg  string
}

// vetCUE loads a cue block as the file clients/acme/policy.cue of a
// repository made by patchctl init and of the example fleet; it returns
// every problem, warnings included.
func (c *checker) vetCUE(b block) []cueProblem {
	const file = "clients/acme/policy.cue"
	var out []cueProblem
	for _, repo := range roots(c.t) {
		files := maps.Clone(repo.files)
		files[file] = []byte(strings.Join(b.lines, "\n") + "\n")
		fleet, err := loader.New(loader.Options{Now: now}).LoadFiles(context.Background(), files, "")
		if err != nil {
			out = append(out, cueProblem{b.line, fmt.Sprintf("in %s: %v", repo.name, err)})
			continue
		}
		for _, p := range fleet.Problems {
			line := b.line
			if p.Pos.File == file {
				line += p.Pos.Line
			}
			out = append(out, cueProblem{line, fmt.Sprintf("as %s in %s: %s", file, repo.name, p)})
		}
		if cl := fleet.Clients["acme"]; cl != nil {
			c.clients = append(c.clients, cl)
		}
	}
	return out
}

// root is the root files of a fleet repository, which a client's files
// are evaluated with.
type root struct {
	name  string
	files map[string][]byte
}

var rootFiles struct {
	once  sync.Once
	roots []root
	err   error
}

// roots are the root files of a repository made by patchctl init (the
// template's, and the schema's copy it writes) and of the example fleet.
func roots(t testing.TB) []root {
	t.Helper()
	rootFiles.once.Do(func() {
		template := map[string][]byte{schema.PackageFile: schema.Package()}
		examples := map[string][]byte{}
		for _, r := range []struct {
			fsys  fs.FS
			files map[string][]byte
		}{{fleettemplate.FS(), template}, {os.DirFS("../../examples/fleet"), examples}} {
			err := fs.WalkDir(r.fsys, ".", func(p string, d fs.DirEntry, err error) error {
				// Hook scripts under scripts/ are read too: a CUE example's
				// hooks name them.
				if err != nil || d.IsDir() || strings.HasPrefix(p, "clients/") || !strings.HasSuffix(p, ".cue") && !strings.HasPrefix(p, "scripts/") {
					return err
				}
				r.files[p], err = fs.ReadFile(r.fsys, p)
				return err
			})
			if err != nil {
				rootFiles.err = err
				return
			}
		}
		rootFiles.roots = []root{{"a repository from patchctl init", template}, {"the example fleet (examples/fleet)", examples}}
	})
	if rootFiles.err != nil {
		t.Fatal(rootFiles.err)
	}
	return rootFiles.roots
}

// checkCommand checks one command line of a block: a Patchline tool's
// command and flags exist; a console command, or a sh command that needs
// nothing outside the test, runs, and a console command prints what the
// README shows.
func (c *checker) checkCommand(b block, cmd command) []string {
	var words []string
	for _, w := range cmd.words {
		if w != "..." {
			words = append(words, w)
		}
	}
	if len(words) == 0 {
		return nil
	}
	// Variables set for the command: NAME=value words before it.
	var env []string
	for len(words) > 1 && envAssignment.MatchString(words[0]) {
		env, words = append(env, words[0]), words[1:]
	}
	tool := words[0]
	if _, ok := tools[tool]; !ok {
		if b.lang == "console" {
			return []string{"a console block runs patchctl, patchd or patch-agent, each command after \"$ \""}
		}
		return nil
	}
	c.commands++
	args := words[1:]
	pos := 0
	for pos < len(args) && !strings.HasPrefix(args[pos], "-") {
		pos++
	}
	var u *usage
	var err error
	var rest []string
	u, err = c.usage(tool, args[:pos])
	if err == nil && u.group && pos > len(u.path) {
		return []string{fmt.Sprintf("unknown command %q for %s %s", args[len(u.path)], tool, strings.Join(u.path, " "))}
	}
	if err != nil {
		return []string{err.Error()}
	}
	rest = args[min(len(u.path), pos):]
	if problems := checkFlags(tool, u, rest); len(problems) > 0 {
		return problems
	}
	if problems := checkEnv(tool, u, env); len(problems) > 0 {
		return problems
	}
	// One directory everywhere: the one the systemd unit uses.
	for i, w := range rest {
		if f := dirFlags[tool]; f != "" && w == f && i+1 < len(rest) {
			if want := unitDir(c.t, tool, f); rest[i+1] != want {
				return []string{fmt.Sprintf("%s %s, but examples/systemd/%s.service has %s: use one directory everywhere", f, rest[i+1], tool, want)}
			}
		}
	}
	switch {
	case b.lang == "console":
		c.ran++
		code, stdout, stderr := run(c.t, exampleRepo(c.t), tool, args...)
		if code != 0 {
			return []string{fmt.Sprintf("exit status %d in the example fleet repository: %s", code, firstLine(stderr))}
		}
		return compareOutput(cmd.output, stdout)
	case runsAnywhere(tool, args):
		c.ran++
		if code, _, stderr := run(c.t, c.t.TempDir(), tool, args...); code != 0 {
			return []string{fmt.Sprintf("exit status %d: %s", code, firstLine(stderr))}
		}
	}
	return nil
}

// usage is helpOf, remembered.
func (c *checker) usage(tool string, words []string) (*usage, error) {
	key := tool + "\x00" + strings.Join(words, "\x00")
	if r, ok := c.help[key]; ok {
		return r.u, r.err
	}
	u, err := helpOf(c.t, tool, words)
	if c.help == nil {
		c.help = map[string]helpResult{}
	}
	c.help[key] = helpResult{u, err}
	return u, err
}

// runsAnywhere reports whether a sh command needs nothing outside the
// test, so the test runs it: the simulated agent's inventory.
func runsAnywhere(tool string, args []string) bool {
	if tool != "patch-agent" || len(args) == 0 || args[0] != "inventory" {
		return false
	}
	for i, a := range args {
		if a == "--backend=sim" || (a == "--backend" && i+1 < len(args) && args[i+1] == "sim") {
			return true
		}
	}
	return false
}

var (
	spaces = regexp.MustCompile(`\s+`)
	hashes = regexp.MustCompile(`\b[0-9a-f]{12}\b`)
)

// normal is a line as compared: runs of spaces as one, commit hashes as
// any.
func normal(s string) string {
	return hashes.ReplaceAllString(spaces.ReplaceAllString(strings.TrimSpace(s), " "), "<commit>")
}

// compareOutput checks that what the README shows a command print is
// what it printed (see the package comment); it returns the first line
// that differs.
func compareOutput(shown []string, printed string) []string {
	for len(shown) > 0 && strings.TrimSpace(shown[len(shown)-1]) == "" {
		shown = shown[:len(shown)-1]
	}
	out := strings.Split(strings.TrimRight(printed, "\n"), "\n")
	j := 0
	skip := false
	for _, s := range shown {
		want := normal(s)
		if want == "..." {
			skip = true
			continue
		}
		prefix, suffix, elided := strings.Cut(want, "...")
		matches := func(got string) bool {
			got = normal(got)
			if !elided {
				return got == want
			}
			return len(got) >= len(prefix)+len(suffix) && strings.HasPrefix(got, prefix) && strings.HasSuffix(got, suffix)
		}
		for skip && j < len(out) && !matches(out[j]) {
			j++
		}
		if j == len(out) || !matches(out[j]) {
			got := "the end of the output"
			if j < len(out) {
				got = fmt.Sprintf("%q", out[j])
			}
			return []string{fmt.Sprintf("the README shows %q, the command printed %s there; it printed:\n%s", s, got, printed)}
		}
		j++
		skip = false
	}
	return nil
}

// example is the example fleet repository that console blocks run in.
var example struct {
	once sync.Once
	dir  string
	err  error
}

// exampleRepo is the example fleet as a Git repository: examples/fleet
// committed on main, and the change of cmd/patchctl's TestPlanBase (a
// resume entry for KB5034441 in pilot, Chrome held on the canary ring)
// committed on the branch checked out; state.json is
// examples/state.json.
func exampleRepo(t testing.TB) string {
	t.Helper()
	example.once.Do(func() { example.dir, example.err = makeExampleRepo() })
	if example.err != nil {
		t.Fatal(example.err)
	}
	return example.dir
}

func makeExampleRepo() (string, error) {
	dir, err := os.MkdirTemp("", "patchline-readme-fleet-")
	if err != nil {
		return "", err
	}
	if err := os.CopyFS(dir, os.DirFS("../../examples/fleet")); err != nil {
		return dir, err
	}
	repo, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: plumbing.Main}})
	if err != nil {
		return dir, err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return dir, err
	}
	base := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	commit := func(msg string, when time.Time) error {
		if err := wt.AddGlob("."); err != nil {
			return err
		}
		sig := &object.Signature{Name: "Tess Technician", Email: "tess@msp.example", When: when}
		_, err := wt.Commit(msg, &git.CommitOptions{Author: sig})
		return err
	}
	if err := commit("Acme and Globex policy", base); err != nil {
		return dir, err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Branch: plumbing.NewBranchReferenceName("resume-kb5034441"), Create: true}); err != nil {
		return dir, err
	}
	policy := filepath.Join(dir, "clients/acme/policy.cue")
	b, err := os.ReadFile(policy)
	if err != nil {
		return dir, err
	}
	s := strings.Replace(string(b),
		`resume: [{update: "KB5035000", after: "2026-11-20T12:00:00Z"}]`,
		`resume: [
	{update: "KB5035000", after: "2026-11-20T12:00:00Z"},
	{update: "KB5034441", after: "2026-11-23T12:00:00Z"}, // PSA-1301: 0x80070643 fixed by the WinRE partition resize
]`, 1)
	s = strings.Replace(s, "exclusions: [\n", "exclusions: [\n\t{update: \"Google.Chrome@131.0.6778.86\", select: labels: ring: \"canary\", reason: \"vendor reports a crash with the EHR web client\", ticket: \"PSA-1302\", until: \"2026-12-05\"},\n", 1)
	if strings.Count(s, "KB5034441\", after") != 1 || !strings.Contains(s, "PSA-1302") {
		return dir, fmt.Errorf("examples/fleet/clients/acme/policy.cue changed: the README's example change no longer applies to it")
	}
	if err := os.WriteFile(policy, []byte(s), 0o644); err != nil {
		return dir, err
	}
	if err := commit("Resume KB5034441 in pilot; hold Chrome on canary (#42)", base.Add(time.Hour)); err != nil {
		return dir, err
	}
	state, err := os.ReadFile("../../examples/state.json")
	if err != nil {
		return dir, err
	}
	return dir, os.WriteFile(filepath.Join(dir, "state.json"), state, 0o644)
}

// TestCheckCatchesBrokenExamples runs the check on small READMEs, each
// with one mistake an edit could make, and on one without: the README
// test fails on a broken example.
func TestCheckCatchesBrokenExamples(t *testing.T) {
	const fence = "```"
	block := func(lang, body string) string { return fence + lang + "\n" + body + "\n" + fence + "\n" }
	tests := []struct {
		name string
		md   string
		// want is a part of the one problem expected; "" for none.
		want string
	}{
		{"every kind of block, right", "# Good\n\n" +
			block("cue", "package fleet\n\nclient: {id: \"acme\", name: \"Acme\", timezone: \"UTC\"}\nmode: \"report\"") +
			block("sh", "patchctl plan --repo . --state state.json \\\n    --now 2026-11-24T04:30:00Z   # the plan\npatchctl tokens revoke ci --controller https://patchd:8420 --token-file t\npatchd serve ... --feeds-dir /var/lib/patchline/feeds --feeds-sync 6h\npatch-agent inventory --backend sim --format json > inventory.json\nmake demo\n"+
				"PATCHLINE_CONTROLLER=https://patchd:8420 PATCHLINE_TOKEN=x patchctl status\npatchd restore backup.db --data-dir /var/lib/patchd") +
			block("yaml", "# /etc/patch-agent/agent.yaml\ncontroller: [https://a:8420, https://b:8420]\nstate-dir: /var/lib/patch-agent\nlabels: ring=pilot") +
			block("console", "$ patchctl plan --repo . --state state.json --now 2026-11-24T04:30:00Z\nPlan of revision working tree at 2026-11-24 04:30 UTC\n\nDecisions    (endpoint-update pairs):\n  installed    5\n  ...\nJobs: 2\n  acme-ws-001 acme canary until ...") +
			block("text", "anything at all") + block("json", "{\"not\": checked"),
			""},
		{"a block without a language", block("", "patchctl plan"), "has no language"},
		{"a fence never closed", "```sh\npatchctl vet\n", "never ends"},
		{"a misspelt field in a CUE example", block("cue", "package fleet\n\nclient: {id: \"acme\", name: \"Acme\", timezone: \"UTC\"}\nmdoe: \"report\""), `mdoe: field not allowed`},
		{"a resume in the future in a CUE example", block("cue", "package fleet\n\nclient: {id: \"acme\", name: \"Acme\", timezone: \"UTC\"}\nresume: [{update: \"KB1\", after: \"2027-01-01\"}]"), `warning: resume.0`},
		{"an unknown patchctl command", block("sh", "patchctl deploy --repo ."), `patchctl deploy is not a command`},
		{"an unknown patchctl subcommand", block("sh", "patchctl tokens mint ci --controller https://patchd:8420"), `unknown command "mint" for patchctl tokens`},
		{"an unknown patchctl flag", block("sh", "patchctl plan --repo . --state state.json --dry-run"), "unknown flag --dry-run for patchctl plan"},
		{"a patchctl flag without its value", block("sh", "patchctl plan --repo . --state"), "flag --state needs a value"},
		{"a long flag with one dash", block("sh", "patchctl plan -repo ."), "a long flag takes two dashes"},
		{"an unknown patchd flag", block("sh", "patchd serve --repo-url https://git.example/fleet.git"), "unknown flag --repo-url for patchd serve"},
		{"patchd's flags without a command", block("sh", "patchd --repo https://git.example/fleet.git"), "unknown flag --repo for patchd"},
		{"a patchd flag without its value", block("sh", "patchd serve --repo https://git.example/fleet.git --data-dir"), "flag --data-dir needs a value"},
		{"another data directory than the systemd unit's", block("sh", "patchd restore backup.db --data-dir /var/lib/patchline"), "but examples/systemd/patchd.service has /var/lib/patchd"},
		{"an unknown patchd command", block("sh", "patchd start --data-dir /var/lib/patchd"), "patchd start is not a command"},
		{"a variable of no flag", block("sh", "PATCHLINE_STATEDIR=/x patch-agent run"), "PATCHLINE_STATEDIR names no flag of patch-agent run"},
		{"a config file key of no flag", block("yaml", "# /etc/patchline/patchd.yaml\nrepo: https://git.example/fleet.git\nstate-dir: /x"), `key "state-dir" is no flag of patchd serve`},
		{"a config file that does not parse", block("yaml", "# /etc/patchline/patchd.yaml\nrepo: [https://git.example/fleet.git"), "/etc/patchline/patchd.yaml:"},
		{"a config file of another directory than the unit's", block("yaml", "# /etc/patch-agent/agent.yaml\nstate-dir: /var/lib/agent"), "state-dir: /var/lib/agent, but examples/systemd/patch-agent.service has /var/lib/patch-agent"},
		{"a yaml block of no config file", block("yaml", "groups: []"), "a yaml block is a config file"},
		{"an unknown patch-agent subcommand", block("sh", "patch-agent inventroy --backend sim"), "patch-agent inventroy is not a command"},
		{"a command that runs and fails", block("sh", "patch-agent inventory --backend sim --format yaml"), "exit status"},
		{"a console command that fails", block("console", "$ patchctl why --repo . --state state.json --endpoint nobody --update KB1\nnobody / KB1: missing"), "exit status 1 in the example fleet repository"},
		{"a console output that changed", block("console", "$ patchctl plan --repo . --state state.json --now 2026-11-24T04:30:00Z\nPlan of revision working tree at 2026-11-25 04:30 UTC"), `the README shows "Plan of revision working tree at 2026-11-25 04:30 UTC"`},
		{"a console output with a line left out unmarked", block("console", "$ patchctl plan --repo . --state state.json --now 2026-11-24T04:30:00Z\nPlan of revision working tree at 2026-11-24 04:30 UTC\nJobs: 1"), `the README shows "Jobs: 1"`},
		{"a console block of another command", block("console", "$ git log\ncommit 55b97a61c956"), "a console block runs patchctl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &checker{t: t}
			got := c.check("README.md", tt.md)
			if tt.want == "" {
				for _, p := range got {
					t.Errorf("problem in a right README: %s", p)
				}
				if c.ran < 2 || c.commands < 7 || len(c.clients) != 2 {
					t.Errorf("%d commands checked, %d run, %d clients vetted; want 7, 2 and 2", c.commands, c.ran, len(c.clients))
				}
				return
			}
			// A CUE example is vetted in two repositories: one problem
			// each.
			if len(got) == 0 || len(got) > 2 || !strings.HasPrefix(got[0], "README.md:") {
				t.Errorf("problems %q, want one (or one per repository) saying %q", got, tt.want)
			}
			for _, p := range got {
				if !strings.Contains(p, tt.want) {
					t.Errorf("problem %q does not say %q", p, tt.want)
				}
			}
		})
	}
}

// unitDir is the value of flag on the command line of tool's systemd
// unit in examples/systemd, or else in the config file its header shows
// ("#   data-dir: /var/lib/patchd").
func unitDir(t testing.TB, tool, flag string) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/systemd/" + tool + ".service")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(l, "ExecStart="):
			line = strings.TrimPrefix(l, "ExecStart=")
		case line != "" && strings.HasSuffix(line, `\`):
			line = strings.TrimSuffix(line, `\`) + " " + l
		}
	}
	cmds, err := splitShell(line)
	if err != nil || len(cmds) != 1 {
		t.Fatalf("examples/systemd/%s.service: ExecStart %q: %v", tool, line, err)
	}
	words := cmds[0]
	for i, w := range words {
		if w == flag && i+1 < len(words) {
			return words[i+1]
		}
	}
	if m := regexp.MustCompile(`(?m)^#   ` + regexp.QuoteMeta(strings.TrimPrefix(flag, "--")) + `: (\S+)$`).FindStringSubmatch(string(b)); m != nil {
		return m[1]
	}
	t.Fatalf("examples/systemd/%s.service gives no %s, on its command line or in its config file", tool, flag)
	return ""
}
