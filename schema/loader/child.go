package loader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/patchline/patchline/schema"
)

// ErrEvaluator is wrapped by the errors of a child evaluator that could
// not be started or gave an answer that is not one: a fault of the
// installation, not a verdict on the policy, so a caller tries again
// rather than refusing the revision.
var ErrEvaluator = errors.New("policy evaluator failed")

// Command is a program that evaluates one client's policy per run: a
// binary whose main serves EvaluatorArg (ServeEvaluator).
type Command struct {
	Path string
	Args []string
}

// SelfEvaluator is the running binary as its own policy evaluator, as
// patchd and patchctl run. A test binary can be one too, when its TestMain
// serves EvaluatorArg.
func SelfEvaluator() (*Command, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the running binary to evaluate policy with: %w", err)
	}
	return &Command{Path: exe, Args: []string{EvaluatorArg}}, nil
}

// Limits of a child evaluator besides Options.Timeout and
// Options.MemoryLimit.
const (
	// maxAnswer bounds a child's answer: a client's policy is kilobytes,
	// and the parent must not hold what a hostile one could print.
	maxAnswer = 16 << 20
	// maxStderr is how much of a child's stderr is kept to explain a crash.
	maxStderr = 4 << 10
	// memoryPoll is how often the parent reads a child's resident memory.
	memoryPoll = 50 * time.Millisecond
	// waitDelay bounds the wait for a killed child's output pipes to close.
	waitDelay = time.Second
)

var (
	errTimeLimit   = errors.New("evaluation exceeded its time limit")
	errMemoryLimit = errors.New("evaluation exceeded its memory limit")
)

// cpuLimit is the CPU time the kernel lets a child use (RLIMIT_CPU): twice
// the wall-clock limit, in whole seconds, so that the parent's deadline
// decides unless the parent cannot.
func (l *Loader) cpuLimit() time.Duration {
	return time.Duration(math.Ceil((2 * l.opts.Timeout).Seconds())) * time.Second
}

// evaluateInChild evaluates one client in a child process under the
// Loader's limits. cache is false when the outcome must not be cached:
// ctx ended, or the child crashed, which may not happen again. An error
// (wrapping ErrEvaluator, or ctx's) means there is no outcome at all.
func (l *Loader) evaluateInChild(ctx context.Context, files map[string][]byte, c clientFiles, sum string) (res evalResult, cache bool, err error) {
	req, err := json.Marshal(request{
		Client: c.id, Dir: c.dir, Own: c.own, Files: files, Digest: sum,
		MemoryLimit: l.opts.MemoryLimit, CPULimit: l.cpuLimit(),
	})
	if err != nil {
		return evalResult{}, false, fmt.Errorf("%w: client %s: encode request: %v", ErrEvaluator, c.id, err)
	}
	run, err := l.runChild(ctx, req)
	if err != nil {
		return evalResult{}, false, fmt.Errorf("%w: client %s: %v", ErrEvaluator, c.id, err)
	}
	switch {
	case errors.Is(run.limit, errTimeLimit):
		return c.fail(fmt.Sprintf("evaluation exceeded %s; simplify comprehensions and disjunctions", l.opts.Timeout)), true, nil
	case errors.Is(run.limit, errMemoryLimit):
		return c.fail(fmt.Sprintf("evaluation exceeded %s; simplify comprehensions and large lists", l.opts.MemoryLimit)), true, nil
	case run.limit != nil:
		return evalResult{}, false, run.limit
	case !run.state.Success() && run.state.UserTime()+run.state.SystemTime() >= l.cpuLimit():
		return c.fail(fmt.Sprintf("evaluation exceeded %s of CPU time; simplify comprehensions and disjunctions", l.cpuLimit())), true, nil
	case !run.state.Success():
		return c.fail(fmt.Sprintf("evaluation failed: %s", run.crash())), false, nil
	case run.stdout.over:
		return c.fail(fmt.Sprintf("evaluation result exceeds %s", Bytes(maxAnswer))), true, nil
	}
	res, err = decodeAnswer(run.stdout.buf.Bytes())
	if err != nil {
		return evalResult{}, false, fmt.Errorf("%w: client %s: read answer of %s: %v", ErrEvaluator, c.id, l.opts.Evaluator.Path, err)
	}
	return res, true, nil
}

// childRun is how one child evaluator ended.
type childRun struct {
	state          *os.ProcessState
	stdout, stderr capped
	// limit is why the child was killed: errTimeLimit, errMemoryLimit
	// or the cause of the caller's context; nil when it exited by itself.
	limit error
}

// crash describes a child that failed by itself: its exit status and the
// first line of its stderr (a Go runtime's fatal error comes first).
func (r *childRun) crash() string {
	first, _, _ := strings.Cut(strings.TrimSpace(r.stderr.buf.String()), "\n")
	if first == "" {
		return r.state.String()
	}
	return r.state.String() + ": " + first
}

// runChild starts the evaluator with req on its stdin and waits for it,
// killing it (its whole process group where there is one) when the
// deadline passes, when its resident memory goes above the limit or when
// ctx ends. It returns once the child has been reaped: a runaway holds
// nothing after its limit. The error is for a child that could not start.
func (l *Loader) runChild(ctx context.Context, req []byte) (*childRun, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ctx, stop := context.WithTimeoutCause(ctx, l.opts.Timeout, errTimeLimit)
	defer stop()

	run := &childRun{stdout: capped{max: maxAnswer}, stderr: capped{max: maxStderr}}
	cmd := exec.CommandContext(ctx, l.opts.Evaluator.Path, l.opts.Evaluator.Args...)
	// The child evaluates what it is sent and needs nothing of the
	// parent's environment: no credentials, no GOMEMLIMIT or GODEBUG of
	// the parent's to override its limits.
	cmd.Env = []string{}
	cmd.Stdin = bytes.NewReader(req)
	cmd.Stdout, cmd.Stderr = &run.stdout, &run.stderr
	cmd.WaitDelay = waitDelay
	isolate(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", l.opts.Evaluator.Path, err)
	}
	exited := make(chan struct{})
	var watch sync.WaitGroup
	watch.Go(func() {
		watchMemory(exited, cmd.Process.Pid, l.opts.MemoryLimit, func() { cancel(errMemoryLimit) })
	})
	err := cmd.Wait()
	close(exited)
	watch.Wait()
	run.state = cmd.ProcessState
	if err != nil && ctx.Err() != nil {
		run.limit = context.Cause(ctx)
	}
	return run, nil
}

// watchMemory reads the resident memory of process pid every memoryPoll
// until exited is closed, and calls exceeded once if it is above limit.
// Where resident memory cannot be read (not Linux), it returns at once:
// the child's own debug.SetMemoryLimit is the only bound there.
func watchMemory(exited <-chan struct{}, pid int, limit Bytes, exceeded func()) {
	tick := time.NewTicker(memoryPoll)
	defer tick.Stop()
	for {
		select {
		case <-exited:
			return
		case <-tick.C:
		}
		rss, err := residentBytes(pid)
		if errors.Is(err, errors.ErrUnsupported) {
			return
		}
		// Another error is a child that has just exited and is not reaped
		// yet: its status no longer shows memory.
		if err == nil && rss > limit {
			exceeded()
			return
		}
	}
}

// capped keeps the first max bytes written to it and notes that more
// came, so a child cannot make its parent hold more than max.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	n := len(p)
	if room := c.max - c.buf.Len(); room < len(p) {
		c.over = true
		p = p[:max(room, 0)]
	}
	c.buf.Write(p)
	return n, nil
}

// problem is an error at the top of the client's first file, for what
// concerns the client as a whole (its evaluation, not a line of it).
func (c clientFiles) problem(msg string) schema.Problem {
	return schema.Problem{Pos: schema.Pos{File: c.own[0], Line: 1, Col: 1}, Level: schema.LevelError, Message: msg, Client: c.id}
}

// fail is the outcome of a client that did not evaluate, for msg.
func (c clientFiles) fail(msg string) evalResult {
	return evalResult{problems: []schema.Problem{c.problem(msg)}}
}
