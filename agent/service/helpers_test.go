package service

import (
	"context"
	"strings"
)

// fakeRunner records the commands a Manager runs and answers them from
// answers, keyed by the command line joined with spaces; a command
// without an answer succeeds and prints nothing.
type fakeRunner struct {
	argv    [][]string
	answers map[string]answer
}

type answer struct {
	out  string
	code int
}

func (f *fakeRunner) run(_ context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	f.argv = append(f.argv, argv)
	a := f.answers[strings.Join(argv, " ")]
	if a.code != 0 {
		return []byte(a.out), &CommandError{Argv: argv, ExitCode: a.code, Output: a.out}
	}
	return []byte(a.out), nil
}

// lines joins each recorded command line with spaces.
func (f *fakeRunner) lines() []string {
	var out []string
	for _, a := range f.argv {
		out = append(out, strings.Join(a, " "))
	}
	return out
}
