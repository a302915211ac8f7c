package readme

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// tools are the commands the README's examples may run, by name, with
// their package; the test builds them once.
var tools = map[string]string{
	"patchctl":    "../../cmd/patchctl",
	"patchd":      "../../cmd/patchd",
	"patch-agent": "../../cmd/patch-agent",
}

var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries builds the tools (once) and returns the directory holding
// them.
func binaries(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "patchline-readme-bin-")
		if built.err != nil {
			return
		}
		args := []string{"build", "-o", built.dir + string(filepath.Separator)}
		for _, pkg := range tools {
			args = append(args, pkg)
		}
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build the tools: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// run runs tool with args in dir, with an environment of its own, and
// returns its exit code and what it printed on standard output and
// error.
func run(t testing.TB, dir, tool string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binaries(t), tool), args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %s %v: %v", tool, args, err)
		}
		code = ee.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}

// usage is what a command's help says about it.
type usage struct {
	// flags maps each flag name (long and short) to whether it takes a
	// value.
	flags map[string]bool
	// path is the command's words after the tool ("tokens create").
	path []string
	// group is set when the command only holds subcommands.
	group bool
}

// A flag in cobra's help: "  -h, --help   help" or
// "      --repo DIR   fleet repository DIR".
var cobraFlag = regexp.MustCompile(`^\s+(?:-(\w), )?--([\w-]+)(?: (\S+))?(?:\s{2,}|$)`)

// helpOf returns the usage of tool's command named by words (a
// subcommand and its positional arguments), from its help; an error when
// there is no such command.
func helpOf(t testing.TB, tool string, words []string) (*usage, error) {
	t.Helper()
	code, stdout, stderr := run(t, t.TempDir(), tool, append(slices.Clone(words), "--help")...)
	out := stdout + stderr
	if code != 0 {
		return nil, fmt.Errorf("%s %s is not a command: %s", tool, strings.Join(words, " "), firstLine(out))
	}
	u := &usage{flags: map[string]bool{}}
	section := ""
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		switch {
		case strings.HasSuffix(l, ":") && !strings.HasPrefix(l, " "):
			section = l
			if l == "Usage:" && i+1 < len(lines) {
				f := strings.Fields(lines[i+1])
				// The command's words end where its arguments begin.
				for _, w := range f[1:] {
					if strings.ContainsAny(w[:1], "[-<") || strings.ContainsAny(w, "|.") || strings.ToUpper(w) == w {
						break
					}
					u.path = append(u.path, w)
				}
			}
			if l == "Available Commands:" {
				u.group = true
			}
		case section == "Flags:" || section == "Global Flags:":
			if m := cobraFlag.FindStringSubmatch(l); m != nil {
				u.flags[m[2]] = m[3] != ""
				if m[1] != "" {
					u.flags[m[1]] = m[3] != ""
				}
			}
		}
	}
	return u, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// checkFlags checks the words of a command line of tool against the
// flags of its command: every flag exists, every flag that takes a value
// has one, every long flag has two dashes. It returns what is wrong.
func checkFlags(tool string, u *usage, words []string) []string {
	var problems []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			break
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
		if !strings.HasPrefix(w, "--") && len(name) > 1 {
			problems = append(problems, fmt.Sprintf("%s: a long flag takes two dashes", w))
			continue
		}
		takesValue, ok := u.flags[name]
		switch {
		case !ok:
			// Whether a value follows is unknown: the rest is not checked.
			return append(problems, strings.TrimSpace(fmt.Sprintf("unknown flag %s for %s %s", w, tool, strings.Join(u.path, " "))))
		case takesValue && !hasValue:
			if i+1 == len(words) {
				problems = append(problems, fmt.Sprintf("flag %s needs a value", w))
			}
			i++
		}
	}
	return problems
}
