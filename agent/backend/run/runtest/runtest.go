// Package runtest replays recorded command outputs for backend tests, so a
// backend's parsing and command lines are tested without its tool.
package runtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/patchline/patchline/agent/backend/run"
)

// Call is one recorded command: what was run and what it printed.
type Call struct {
	// Cmd is the command line: name and args joined by single spaces.
	Cmd    string
	Stdout string
	Stderr string
	// Exit is the exit status; non-zero makes Run return an ExitError.
	Exit int
	// Effect, when set, runs when the call is replayed, before its output
	// is returned: it does what the command would do to the disk (a
	// download writes a file). An error from it fails the test.
	Effect func() error
}

// ExitError is the error Replay returns for a non-zero exit status.
type ExitError int

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// ExitCode reports the status, as *exec.ExitError does.
func (e ExitError) ExitCode() int { return int(e) }

// Replay is a Runner that answers each command from its recorded calls, in
// order of first match, and remembers what was run. A command with no
// recording fails the test. It is safe for concurrent use.
type Replay struct {
	T     testing.TB
	Calls []Call

	mu  sync.Mutex // guards ran and env
	ran []string
	env [][]string
}

// Run implements run.Runner.
func (r *Replay) Run(ctx context.Context, name string, args []string, env []string) ([]byte, []byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	cmd := strings.Join(append([]string{name}, args...), " ")
	r.mu.Lock()
	r.ran = append(r.ran, cmd)
	r.env = append(r.env, env)
	r.mu.Unlock()
	for _, c := range r.Calls {
		if c.Cmd != cmd {
			continue
		}
		if c.Effect != nil {
			if err := c.Effect(); err != nil {
				r.T.Errorf("replaying %s: %v", cmd, err)
				return nil, nil, err
			}
		}
		var err error
		if c.Exit != 0 {
			err = ExitError(c.Exit)
		}
		return []byte(c.Stdout), []byte(c.Stderr), err
	}
	r.T.Errorf("unexpected command: %s", cmd)
	return nil, nil, fmt.Errorf("no recording for %q", cmd)
}

// Ran returns the command lines run so far, in order.
func (r *Replay) Ran() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ran...)
}

// Env returns the extra environment of each command run so far, in order.
func (r *Replay) Env() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.env...)
}

// File reads a recorded output from dir/name, failing the test if it is
// missing.
func File(t testing.TB, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("recorded output: %v", err)
	}
	return string(b)
}

// Outcome is what install tests compare of a run.Result; the tool's output
// is checked on its own. It is an alias of a plain struct so that tables of
// wanted outcomes can list them as {update, succeeded, error}.
type Outcome = struct {
	Update    string
	Succeeded bool
	Error     string
}

// Outcomes summarises install results for comparison with go-cmp.
func Outcomes(rs []run.Result) []Outcome {
	out := make([]Outcome, 0, len(rs))
	for _, r := range rs {
		out = append(out, Outcome{r.Update, r.Succeeded, r.Error})
	}
	return out
}
