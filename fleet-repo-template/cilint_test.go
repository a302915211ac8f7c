package fleettemplate

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file holds the rules the template's CI files must keep, as checks
// over their parsed YAML. ci_test.go runs them on the template and on bad
// snippets that each rule must catch. They are a lint, not a proof: they
// look for the mistakes that hand a Patchline token to code a branch
// controls.

var (
	// A `--token` flag (not `--token-file`) on a command line: the token
	// would show in the process list and in CI logs.
	tokenFlag = regexp.MustCompile(`(^|\s)--token(\s|=|$)`)
	// A shell reference to a variable named ...TOKEN.
	tokenVar = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*TOKEN\}?`)
	// The one allowed use of a token in a script: the argument of the
	// shell's builtin printf (no process sees it on its command line),
	// piped into the standard input of the command that needs it.
	printfToken = regexp.MustCompile(`^\s*(if\s+)?printf\s+'[^']*'\s+"\$\{?[A-Za-z_][A-Za-z0-9_]*TOKEN\}?"\s*\|`)
	// An expression of GitHub Actions, where event data could come from.
	expression = regexp.MustCompile(`\$\{\{(.*?)\}\}`)
	// secrets.NAME, secrets['NAME'], or the whole secrets context.
	secretRef = regexp.MustCompile(`\bsecrets\b(\s*\.\s*([A-Za-z_][A-Za-z0-9_-]*)|\s*\[\s*'([^']*)'\s*\])?`)
	// An action pinned to a commit, and the version comment it needs.
	shaRef     = regexp.MustCompile(`^[0-9a-f]{40}$`)
	versionRef = regexp.MustCompile(`^v[0-9]+(\.[0-9]+){0,2}$`)
	// The GitLab rule that keeps a job on the default branch.
	// CI_COMMIT_BRANCH is unset in merge request pipelines, where
	// CI_COMMIT_REF_NAME is the source branch's name (which a fork may call
	// main), so only CI_COMMIT_BRANCH counts.
	defaultBranchRule = regexp.MustCompile(`\$CI_COMMIT_BRANCH\s*==\s*\$CI_DEFAULT_BRANCH|\$CI_DEFAULT_BRANCH\s*==\s*\$CI_COMMIT_BRANCH`)
	// A Patchline token, by the variable names the template uses.
	patchlineToken = regexp.MustCompile(`PATCHLINE_[A-Z0-9_]*TOKEN`)
)

// problems collects "file:line: message" strings.
type problems struct {
	file string
	list []string
}

func (p *problems) add(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	msg := fmt.Sprintf("%s:%d: %s", p.file, line, fmt.Sprintf(format, args...))
	if !slices.Contains(p.list, msg) {
		p.list = append(p.list, msg)
	}
}

// parseMapping parses src and returns its top-level mapping.
func parseMapping(src []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("not a YAML mapping")
	}
	return doc.Content[0], nil
}

// get returns the value of key in the mapping n, or nil.
func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// pairs returns the keys and values of the mapping n, in order.
func pairs(n *yaml.Node) (keys, values []*yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys = append(keys, n.Content[i])
		values = append(values, n.Content[i+1])
	}
	return keys, values
}

// scalars calls f on every scalar under n, keys included.
func scalars(n *yaml.Node, f func(*yaml.Node)) {
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode {
		f(n)
	}
	for _, c := range n.Content {
		scalars(c, f)
	}
}

// secretsUsed returns the secrets that expressions under n read, by name
// ("*" for the whole context), with the node of the first reference.
// GITHUB_TOKEN is not a secret anyone stores and is left out. `if:` values
// are expressions without ${{ }}.
func secretsUsed(n *yaml.Node) map[string]*yaml.Node {
	used := map[string]*yaml.Node{}
	note := func(expr string, at *yaml.Node) {
		for _, m := range secretRef.FindAllStringSubmatch(expr, -1) {
			name := m[2] + m[3]
			if name == "" {
				name = "*"
			}
			if strings.EqualFold(name, "GITHUB_TOKEN") {
				continue
			}
			if _, ok := used[name]; !ok {
				used[name] = at
			}
		}
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		keys, values := pairs(n)
		for i, k := range keys {
			v := values[i]
			switch {
			case k.Value == "if" && v.Kind == yaml.ScalarNode:
				note(v.Value, v)
				continue
			case k.Value == "secrets" && v.Kind == yaml.ScalarNode && v.Value == "inherit":
				used["* (secrets: inherit)"] = v
				continue
			}
			walk(v)
		}
		if n.Kind == yaml.ScalarNode {
			for _, m := range expression.FindAllStringSubmatch(n.Value, -1) {
				note(m[1], n)
			}
		}
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				walk(c)
			}
		}
	}
	walk(n)
	return used
}

// checkScript applies the rules every CI script keeps, GitHub's or
// GitLab's: no --token flag, and no token variable on a command line.
func checkScript(p *problems, at *yaml.Node, where, script string) {
	for i, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if tokenFlag.MatchString(line) {
			p.add(at, "%s, script line %d: --token puts the token on the command line; pass it in the environment or with --token-file", where, i+1)
		}
		if refs := tokenVar.FindAllString(line, -1); len(refs) > 0 && (len(refs) > 1 || !printfToken.MatchString(line)) {
			p.add(at, "%s, script line %d: %s is on a command line, where the process list and logs show it; let the program read it from its environment, or pipe it with the shell's printf into the program's standard input", where, i+1, strings.Join(refs, ", "))
		}
	}
}

// Events whose workflows run as a branch or pull request wrote them, or
// act on what one uploaded.
var untrustedEvents = []string{"pull_request", "workflow_run"}

// Events allowed to start a job that reads a stored secret: they run only
// for commits already on a branch (the environment's deployment branch
// rule then keeps the secret to main).
var trustedEvents = []string{"push", "schedule", "workflow_dispatch"}

// checkWorkflow returns what is wrong with a GitHub Actions workflow.
func checkWorkflow(file string, src []byte) []string {
	p := &problems{file: file}
	root, err := parseMapping(src)
	if err != nil {
		p.add(nil, "%v", err)
		return p.list
	}
	on := get(root, "on")
	events := map[string]*yaml.Node{}
	switch {
	case on == nil:
		p.add(root, "no on: the workflow never runs")
	case on.Kind == yaml.ScalarNode:
		events[on.Value] = on
	case on.Kind == yaml.SequenceNode:
		for _, e := range on.Content {
			events[e.Value] = e
		}
	default:
		keys, _ := pairs(on)
		for _, k := range keys {
			events[k.Value] = k
		}
	}
	if e, ok := events["pull_request_target"]; ok {
		p.add(e, "pull_request_target runs with the repository's secrets and write token on a pull request's behalf; plan under pull_request and comment from a workflow_run workflow")
	}
	var untrusted []string
	for _, e := range untrustedEvents {
		if _, ok := events[e]; ok {
			untrusted = append(untrusted, e)
		}
	}
	var others []string
	for e := range events {
		if !slices.Contains(trustedEvents, e) {
			others = append(others, e)
		}
	}
	sort.Strings(others)

	perms := get(root, "permissions")
	if perms == nil {
		p.add(root, "no top-level permissions: the token gets the repository's default rights; name the ones the workflow needs")
	}
	checkPermissions := func(n *yaml.Node, where string) {
		if n == nil {
			return
		}
		if n.Kind == yaml.ScalarNode && n.Value == "write-all" {
			p.add(n, "%s: permissions: write-all", where)
			return
		}
		keys, values := pairs(n)
		for i, k := range keys {
			if values[i].Value == "write" && slices.Contains(untrusted, "pull_request") {
				p.add(values[i], "%s: %s: write in a workflow that pull requests run as they wrote it", where, k.Value)
			}
		}
	}
	checkPermissions(perms, "workflow")

	for name, at := range secretsUsed(get(root, "env")) {
		p.add(at, "workflow env reads secrets.%s: every step of every job would see it; set it in the env of the one step that needs it", name)
	}

	jobKeys, jobs := pairs(get(root, "jobs"))
	if len(jobs) == 0 {
		p.add(root, "no jobs")
	}
	for i, job := range jobs {
		where := "job " + jobKeys[i].Value
		checkPermissions(get(job, "permissions"), where)
		for name, at := range secretsUsed(get(job, "env")) {
			p.add(at, "%s: job env reads secrets.%s: every step would see it; set it in the env of the one step that needs it", where, name)
		}
		used := secretsUsed(job)
		names := make([]string, 0, len(used))
		for name := range used {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			at := used[name]
			switch {
			case len(untrusted) > 0:
				p.add(at, "%s reads secrets.%s in a workflow triggered by %s: a branch can edit the workflow and send the secret anywhere; only GITHUB_TOKEN belongs here", where, name, strings.Join(untrusted, ", "))
			case len(others) > 0:
				p.add(at, "%s reads secrets.%s in a workflow triggered by %s; a job with a secret runs only on %s", where, name, strings.Join(others, ", "), strings.Join(trustedEvents, ", "))
			case get(job, "environment") == nil:
				p.add(at, "%s reads secrets.%s without an environment: a repository secret is readable by any workflow a branch pushes; keep it in an environment whose deployment branches are main only", where, name)
			}
		}
		var steps []*yaml.Node
		if s := get(job, "steps"); s != nil {
			steps = s.Content
		}
		for j, step := range steps {
			stepWhere := fmt.Sprintf("%s, step %d", where, j+1)
			if n := get(step, "name"); n != nil {
				stepWhere = fmt.Sprintf("%s, step %q", where, n.Value)
			}
			if run := get(step, "run"); run != nil {
				if strings.Contains(run.Value, "${{") {
					p.add(run, "%s: the script interpolates ${{ }}; an event field there is shell code a pull request chooses: pass it through env: and quote it", stepWhere)
				}
				checkScript(p, run, stepWhere, run.Value)
			}
			uses := get(step, "uses")
			if uses == nil {
				continue
			}
			action, ref, ok := strings.Cut(uses.Value, "@")
			switch {
			case strings.HasPrefix(uses.Value, "./") || strings.HasPrefix(uses.Value, "docker://"):
			case !ok:
				p.add(uses, "%s: %s names no version", stepWhere, uses.Value)
			case shaRef.MatchString(ref):
				if !hasVersionComment(step, uses, action) {
					p.add(uses, "%s: %s is pinned to a commit without a version comment (# vX.Y.Z after it, or # %s vX.Y.Z on the line before)", stepWhere, action, action)
				}
			case !versionRef.MatchString(ref):
				p.add(uses, "%s: %s@%s follows a branch; pin a commit (with a # vX.Y.Z comment) or at least a major version", stepWhere, action, ref)
			}
			if _, ok := events["workflow_run"]; ok && action == "actions/checkout" {
				p.add(uses, "%s: a workflow_run workflow runs with write rights; it must not check out code a pull request wrote", stepWhere)
			}
		}
	}
	return p.list
}

// hasVersionComment reports whether the step that uses action pinned to
// a commit says which version that commit is: "# vX.Y.Z" after the
// reference, or, where that line would pass yamllint's 80 columns,
// "# ACTION vX.Y.Z" on the line before the uses: key (or before the step
// it starts).
func hasVersionComment(step, uses *yaml.Node, action string) bool {
	if versionRef.MatchString(strings.TrimSpace(strings.TrimPrefix(uses.LineComment, "#"))) {
		return true
	}
	keys, _ := pairs(step)
	heads := []string{step.HeadComment}
	for _, k := range keys {
		if k.Value == "uses" {
			heads = append(heads, k.HeadComment)
		}
	}
	for _, h := range heads {
		lines := strings.Split(strings.TrimSpace(h), "\n")
		f := strings.Fields(strings.TrimPrefix(lines[len(lines)-1], "#"))
		if len(f) == 2 && f[0] == action && versionRef.MatchString(f[1]) {
			return true
		}
	}
	return false
}

// GitLab's top-level keys that are not jobs.
var gitlabGlobals = []string{"stages", "default", "workflow", "variables", "include", "image", "services", "cache", "before_script", "after_script", "spec"}

// checkGitLab returns what is wrong with a .gitlab-ci.yml.
func checkGitLab(file string, src []byte) []string {
	p := &problems{file: file}
	root, err := parseMapping(src)
	if err != nil {
		p.add(nil, "%v", err)
		return p.list
	}
	for _, scope := range []string{"variables", "default"} {
		scalars(get(root, scope), func(n *yaml.Node) {
			if patchlineToken.MatchString(n.Value) {
				p.add(n, "%s: %s gives a Patchline token to every job, merge request pipelines' too; set it in the variables of the default-branch job that needs it", scope, n.Value)
			}
		})
	}

	keys, values := pairs(root)
	defs := map[string]*yaml.Node{}
	for i, k := range keys {
		if !slices.Contains(gitlabGlobals, k.Value) {
			defs[k.Value] = values[i]
		}
	}
	// resolved returns the job's keys after extends: its own over its
	// templates', as GitLab merges them for the keys checked here.
	var resolved func(name string, seen []string) map[string]*yaml.Node
	resolved = func(name string, seen []string) map[string]*yaml.Node {
		out := map[string]*yaml.Node{}
		def := defs[name]
		if def == nil || slices.Contains(seen, name) {
			return out
		}
		seen = append(seen, name)
		var parents []string
		if ext := get(def, "extends"); ext != nil {
			if ext.Kind == yaml.ScalarNode {
				parents = []string{ext.Value}
			}
			for _, e := range ext.Content {
				parents = append(parents, e.Value)
			}
		}
		for _, parent := range parents {
			for k, v := range resolved(parent, seen) {
				out[k] = v
			}
		}
		ks, vs := pairs(def)
		for i, k := range ks {
			out[k.Value] = vs[i]
		}
		return out
	}

	names := make([]string, 0, len(defs))
	for name := range defs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		job := resolved(name, nil)
		where := "job " + name
		scripts := []string{"before_script", "script", "after_script"}
		if job["before_script"] == nil {
			job["before_script"] = get(get(root, "default"), "before_script")
		}
		for _, key := range scripts {
			scalars(job[key], func(n *yaml.Node) { checkScript(p, n, where+" "+key, n.Value) })
		}
		if strings.HasPrefix(name, ".") {
			continue // a template; checked as part of the jobs that extend it
		}
		// A job holds a Patchline token when its variables name one, or
		// when it talks to the controller (whose token patchctl reads from
		// its environment, wherever the variable was set).
		var token *yaml.Node
		scalars(job["variables"], func(n *yaml.Node) {
			if token == nil && patchlineToken.MatchString(n.Value) {
				token = n
			}
		})
		for _, key := range scripts {
			scalars(job[key], func(n *yaml.Node) {
				if token == nil && strings.Contains(n.Value, "--controller") {
					token = n
				}
			})
		}
		if token == nil {
			continue
		}
		if n := job["only"]; n != nil {
			p.add(n, "%s holds a Patchline token: use rules, not only, to keep it on the default branch", where)
		}
		rules := job["rules"]
		if rules == nil || rules.Kind != yaml.SequenceNode || len(rules.Content) == 0 {
			p.add(token, "%s holds a Patchline token but has no rules: it runs in merge request pipelines too; add rules: - if: $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", where)
			continue
		}
		for _, rule := range rules.Content {
			if w := get(rule, "when"); w != nil && w.Value == "never" {
				continue
			}
			cond := get(rule, "if")
			switch {
			case cond == nil:
				p.add(rule, "%s holds a Patchline token and has a rule without if: it runs on every branch", where)
			case !defaultBranchRule.MatchString(cond.Value) || strings.Contains(cond.Value, "||") || strings.Contains(cond.Value, "merge_request"):
				p.add(cond, "%s holds a Patchline token, and its rule %q does not keep it to the default branch: require $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH (pushes, schedules and manual pipelines there)", where, cond.Value)
			}
		}
	}
	return p.list
}
