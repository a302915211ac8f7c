package readme

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/patchline/patchline/internal/cliconf"
)

// configFiles are the config files a yaml block of the README may be, by
// the path its first line names ("# /etc/patchline/patchd.yaml"), with
// the command whose flags its keys are.
var configFiles = map[string][]string{
	"/etc/patchline/patchd.yaml":  {"patchd", "serve"},
	"/etc/patch-agent/agent.yaml": {"patch-agent", "run"},
}

// envAssignment is a NAME=value word before a command.
var envAssignment = regexp.MustCompile(`^[A-Z][A-Z0-9_]*=`)

// checkConfigFile checks a yaml block, a config file: its first line
// names the file, it parses as cliconf reads it, every key is a flag of
// the file's command, and the data or state directory is the systemd
// unit's.
func (c *checker) checkConfigFile(b block) []string {
	if len(b.lines) == 0 {
		return []string{"an empty yaml block"}
	}
	path, _ := strings.CutPrefix(strings.TrimSpace(b.lines[0]), "# ")
	cmd, ok := configFiles[path]
	if !ok {
		return []string{fmt.Sprintf("a yaml block is a config file and starts with a comment naming it: one of %v", keys(configFiles))}
	}
	entries, err := cliconf.Parse(path, []byte(strings.Join(b.lines, "\n")))
	if err != nil {
		return []string{err.Error()}
	}
	u, err := c.usage(cmd[0], cmd[1:])
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	for _, e := range entries {
		if _, ok := u.flags[e.Key]; !ok || e.Key == cliconf.ConfigFlag || e.Key == "help" {
			problems = append(problems, fmt.Sprintf("%s: key %q is no flag of %s", path, e.Key, strings.Join(cmd, " ")))
			continue
		}
		if f := dirFlags[cmd[0]]; "--"+e.Key == f {
			if want := unitDir(c.t, cmd[0], f); e.Value != want {
				problems = append(problems, fmt.Sprintf("%s: %s: %s, but examples/systemd/%s.service has %s: use one directory everywhere", path, e.Key, e.Value, cmd[0], want))
			}
		}
	}
	return problems
}

// checkEnv checks the variables set for a command of tool: a PATCHLINE_*
// variable names a flag of the command (PATCHLINE_STATE_DIR is
// --state-dir), or is PATCHLINE_CONFIG, or patchctl's token.
func checkEnv(tool string, u *usage, env []string) []string {
	var problems []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		flag, ok := strings.CutPrefix(name, cliconf.Prefix)
		if !ok || (tool == "patchctl" && name == "PATCHLINE_TOKEN") {
			continue
		}
		flag = strings.ReplaceAll(strings.ToLower(flag), "_", "-")
		if _, known := u.flags[flag]; !known {
			problems = append(problems, fmt.Sprintf("%s names no flag of %s %s", name, tool, strings.Join(u.path, " ")))
		}
	}
	return problems
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
