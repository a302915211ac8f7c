package cliconf

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/patchline/patchline/internal/buildinfo"
)

// ExitError ends a command that failed at run time (not in its
// configuration) with exit status Code; Execute prints Err.
type ExitError struct {
	Code int
	Err  error
}

func (e ExitError) Error() string { return e.Err.Error() }
func (e ExitError) Unwrap() error { return e.Err }

// ExitCode is the exit status the error ends the process with.
func (e ExitError) ExitCode() int { return e.Code }

// Execute runs root with args and returns the process exit status: 0 on
// success; an error is printed on stderr after the binary's name and
// exits with its ExitCode() when it has one (ExitError), else 2: cobra's
// errors (an unknown command or flag, arguments) and the configuration's
// are nothing a retry would fix.
func Execute(root *cobra.Command, args []string, stdout, stderr io.Writer) int {
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(context.Background())
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", root.Name(), err)
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return 2
}

// VersionCmd is `<binary> version`: the version line every Patchline
// binary of one build prints alike.
func VersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), buildinfo.Line(cmd.Root().Name()))
		},
	}
}
