package loader

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/patchline/patchline/schema"
)

// EvaluatorArg is the first argument that makes a binary a policy
// evaluator. SelfEvaluator passes it; a main (and the TestMain of a test
// binary that loads fleets with SelfEvaluator) that sees it calls
// ServeEvaluator before anything else and exits with its code.
const EvaluatorArg = "__evaluate-policy"

// IsEvaluator reports whether args (os.Args[1:]) start a policy evaluator.
func IsEvaluator(args []string) bool { return len(args) > 0 && args[0] == EvaluatorArg }

// request is what a parent writes to a child evaluator's stdin: one
// client, the files that make it up and the limits the child sets on
// itself.
type request struct {
	Client string `json:"client"`
	Dir    string `json:"dir"`
	// Own are the client's own files; Files holds them and the shared
	// files, keyed by repository path.
	Own    []string          `json:"own"`
	Files  map[string][]byte `json:"files"`
	Digest string            `json:"digest"`
	// MemoryLimit is the limit the parent kills the child above; the child
	// keeps its Go heap below it (debug.SetMemoryLimit).
	MemoryLimit Bytes `json:"memoryLimit"`
	// CPULimit is the CPU time after which the kernel kills the child
	// (RLIMIT_CPU), a backstop behind the parent's wall-clock deadline.
	CPULimit time.Duration `json:"cpuLimit"`
}

// answer is what a child evaluator writes to its stdout: the client when
// it loads, and its problems.
type answer struct {
	Client   *schema.Client   `json:"client,omitempty"`
	Problems []schema.Problem `json:"problems,omitempty"`
	// Partial is what decoded of a client with errors (evalResult).
	Partial *schema.Client `json:"partial,omitempty"`
}

// heapShare is the part of the memory limit a child keeps its Go heap
// under by collecting garbage harder, so that what it holds besides the
// heap (its binary's pages, stacks) does not push a client that needs
// less than the limit over it.
const heapShare = 0.9

// ServeEvaluator is a policy evaluator's whole life: it reads one request
// from stdin, sets the limits it asks for on its own process (a CPU-time
// limit it cannot set is only warned about on stderr), evaluates the
// client and writes the answer to stdout. It returns the exit code:
// 0 with an answer (whether or not the client loads), 2 when the request
// cannot be read or the answer written, which stderr explains.
func ServeEvaluator(stdin io.Reader, stdout, stderr io.Writer) int {
	var req request
	if err := json.NewDecoder(stdin).Decode(&req); err != nil {
		fmt.Fprintln(stderr, "policy evaluator: read request:", err)
		return 2
	}
	debug.SetMemoryLimit(int64(float64(req.MemoryLimit) * heapShare))
	if err := limitCPU(req.CPULimit); err != nil {
		// A backstop only: the parent's deadline still holds, so a
		// sandbox that forbids setrlimit must not refuse every client.
		fmt.Fprintln(stderr, "policy evaluator: warning: cannot limit CPU time:", err)
	}
	c := clientFiles{id: req.Client, dir: req.Dir, own: req.Own}
	var res evalResult
	if ec, err := newEvalContext(); err != nil {
		res = evalResult{problems: []schema.Problem{c.problem(err.Error())}}
	} else {
		res, _ = evaluateSafely(ec, req.Files, c, req.Digest)
	}
	if err := json.NewEncoder(stdout).Encode(answer{Client: res.client, Problems: res.problems, Partial: res.partial}); err != nil {
		fmt.Fprintln(stderr, "policy evaluator: write answer:", err)
		return 2
	}
	return 0
}

// decodeAnswer reads a child's answer. A Client's Location is not part of
// the JSON: it is loaded again from Timezone, which the child checked (a
// partial client's may be missing or wrong: it is UTC then, as in the
// child).
func decodeAnswer(b []byte) (evalResult, error) {
	var a answer
	if err := json.Unmarshal(b, &a); err != nil {
		return evalResult{}, err
	}
	if a.Client != nil {
		loc, err := time.LoadLocation(a.Client.Timezone)
		if err != nil {
			return evalResult{}, fmt.Errorf("client %s: %w", a.Client.ID, err)
		}
		a.Client.Location = loc
	}
	if a.Partial != nil {
		a.Partial.Location = time.UTC
		if loc, err := time.LoadLocation(a.Partial.Timezone); err == nil && a.Partial.Timezone != "Local" {
			a.Partial.Location = loc
		}
	}
	return evalResult{client: a.Client, problems: a.Problems, partial: a.Partial}, nil
}
