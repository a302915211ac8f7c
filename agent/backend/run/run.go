// Package run runs package managers' command-line tools for the backends.
//
// It holds the Runner seam (the real one is os/exec; tests replay recorded
// outputs through runtest.Replay), the per-update install Result every
// backend reports, the refusal of a job whose updates a backend would not
// hand to its tool (RefuseJob), and the trimming that keeps a tool's output
// bounded.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// Runner runs one command to completion and returns what it printed.
//
// env holds extra "KEY=value" entries added to the agent's own environment.
// A command that exits non-zero returns its output and an error whose
// ExitCode method reports the status (see ExitCode).
type Runner interface {
	Run(ctx context.Context, name string, args []string, env []string) (stdout, stderr []byte, err error)
}

// Exec is the real Runner: os/exec bound to the context, so cancelling the
// context kills the command.
type Exec struct{}

// Run implements Runner.
func (Exec) Run(ctx context.Context, name string, args []string, env []string) ([]byte, []byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s: %w", name, err)
	}
	return stdout.Bytes(), stderr.Bytes(), err
}

// ExitCode reports the exit status carried by err, and false when err says
// nothing about one (nil, or the command could not start).
func ExitCode(err error) (int, bool) {
	var e interface{ ExitCode() int }
	if errors.As(err, &e) {
		return e.ExitCode(), true
	}
	return 0, false
}

// Result reports the install of one update.
type Result struct {
	// Update is the id of the update (protocol.Update.ID).
	Update    string `json:"update"`
	Succeeded bool   `json:"succeeded"`
	// Error says why the install failed; empty on success.
	Error string `json:"error,omitempty"`
	// Output is what the tool printed, bounded by Trim.
	Output string `json:"output,omitempty"`
}

// MaxOutput bounds Result.Output in bytes.
const MaxOutput = 8 << 10

// Trim joins a tool's stdout and stderr and keeps at most MaxOutput bytes.
// It keeps the end, where package managers print the error that matters, and
// says how much it dropped.
func Trim(stdout, stderr []byte) string {
	out := bytes.TrimSpace(stdout)
	if errOut := bytes.TrimSpace(stderr); len(errOut) > 0 {
		if len(out) > 0 {
			out = append(append(out[:len(out):len(out)], '\n'), errOut...)
		} else {
			out = errOut
		}
	}
	if len(out) <= MaxOutput {
		return string(out)
	}
	dropped := len(out) - MaxOutput
	tail := out[dropped:]
	// Start the tail at a line boundary when one is near, so the first
	// kept line is whole.
	if i := bytes.IndexByte(tail, '\n'); i >= 0 && i < 256 {
		dropped += i + 1
		tail = tail[i+1:]
	}
	return fmt.Sprintf("[%d bytes of earlier output trimmed]\n%s", dropped, tail)
}
