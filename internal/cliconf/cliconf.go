// Package cliconf gives a command's flags their two other sources: an
// environment variable per flag (PATCHLINE_ and the flag's name upper-cased,
// "-" as "_": --state-dir is PATCHLINE_STATE_DIR) and an optional YAML
// config file whose keys are the flag names (`state-dir: /var/lib/x`).
// A flag given on the command line wins over its environment variable,
// which wins over the file.
//
// Every error here is a configuration error (Error): the binaries exit 2 on
// it at once instead of retrying.
package cliconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Prefix starts every flag's environment variable.
const Prefix = "PATCHLINE_"

// ConfigFlag is the flag that names the config file; its environment
// variable is PATCHLINE_CONFIG.
const ConfigFlag = "config"

// Error is a configuration error: a bad environment variable, config file
// or flag value. Binaries exit 2 on it.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// EnvName is the environment variable of the flag name:
// "state-dir" → "PATCHLINE_STATE_DIR".
func EnvName(flag string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Sources says where a command's settings come from besides its flags.
type Sources struct {
	// File is the config file; empty for none.
	File string
	// Explicit says File was named (--config or PATCHLINE_CONFIG), so a
	// missing file is an error; a missing default file is not.
	Explicit bool
	// LookupEnv reads an environment variable (os.LookupEnv); nil reads
	// none.
	LookupEnv func(string) (string, bool)
	// Known names keys the file may hold for the binary's other commands
	// (patchd serve's settings, in the file patchd restore reads too):
	// they are skipped rather than refused.
	Known []string
}

// Apply sets each flag of fs not given on the command line from its
// environment variable, then each still unset from the config file. The
// config flag and help are never read from either; neither are deprecated
// aliases (their file key is refused, naming the flag to use).
func Apply(flags *pflag.FlagSet, src Sources) error {
	fromEnv := map[string]bool{}
	var errs []error
	if src.LookupEnv != nil {
		flags.VisitAll(func(f *pflag.Flag) {
			if f.Changed || !bindable(f) {
				return
			}
			v, ok := src.LookupEnv(EnvName(f.Name))
			if !ok {
				return
			}
			if err := flags.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %s; want %s", EnvName(f.Name), v, cause(err), Form(f)))
				return
			}
			fromEnv[f.Name] = true
		})
	}
	if len(errs) > 0 {
		return &Error{errors.Join(errs...)}
	}
	if src.File == "" {
		return nil
	}
	data, err := os.ReadFile(src.File)
	if errors.Is(err, fs.ErrNotExist) && !src.Explicit {
		return nil
	}
	if err != nil {
		return &Error{fmt.Errorf("config file: %w", err)}
	}
	entries, err := Parse(src.File, data)
	if err != nil {
		return &Error{err}
	}
	known := map[string]bool{}
	for _, k := range src.Known {
		known[k] = true
	}
	for _, e := range entries {
		f := flags.Lookup(e.Key)
		switch {
		case f == nil && known[e.Key]:
			continue
		case f == nil || e.Key == ConfigFlag || e.Key == "help":
			errs = append(errs, fmt.Errorf("%s:%d: unknown key %q%s", src.File, e.Line, e.Key, suggest(flags, e.Key)))
			continue
		case deprecation(f) != "":
			errs = append(errs, fmt.Errorf("%s:%d: key %q is deprecated, %s", src.File, e.Line, e.Key, deprecation(f)))
			continue
		case f.Changed:
			continue // the command line or the environment set it
		}
		if err := flags.Set(f.Name, e.Value); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %q: %s; want %s", src.File, e.Line, e.Key, e.Value, cause(err), Form(f)))
		}
	}
	if len(errs) > 0 {
		return &Error{errors.Join(errs...)}
	}
	return nil
}

// deprecatedKey is the annotation Deprecate puts on a flag: the message
// saying what to use instead.
const deprecatedKey = "cliconf-deprecated"

// Deprecate marks the flag name of fs as an old name kept for a while:
// hidden from help, not read from the environment or the file, and
// warned about (on the command's stderr, by Bind) when given. pflag's own
// MarkDeprecated prints its warning on cobra's stdout.
func Deprecate(fs *pflag.FlagSet, name, useInstead string) {
	f := fs.Lookup(name)
	f.Hidden = true
	if f.Annotations == nil {
		f.Annotations = map[string][]string{}
	}
	f.Annotations[deprecatedKey] = []string{useInstead}
}

// deprecation is what to use instead of f when f is deprecated, else "".
func deprecation(f *pflag.Flag) string {
	if f.Deprecated != "" {
		return f.Deprecated
	}
	if m := f.Annotations[deprecatedKey]; len(m) > 0 {
		return m[0]
	}
	return ""
}

// bindable says whether a flag is read from the environment and the file.
func bindable(f *pflag.Flag) bool {
	return f.Name != ConfigFlag && f.Name != "help" && deprecation(f) == ""
}

// cause is the text of a flag's parse error without pflag's wrapping.
func cause(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.HasPrefix(s, "invalid argument") {
		return s[i+2:]
	}
	return s
}

// Form says what a flag's value looks like, for error messages.
func Form(f *pflag.Flag) string {
	switch f.Value.Type() {
	case "bool":
		return "true or false"
	case "duration":
		return "a duration such as 90s, 10m or 6h"
	case "float64", "float32":
		return "a number"
	case "int", "int64", "int32", "uint", "uint64":
		return "a whole number"
	case "string":
		return "a string"
	default:
		return f.Value.Type()
	}
}

// suggest lists fs's flags whose names are close to key, for an unknown
// key's error.
func suggest(fs *pflag.FlagSet, key string) string {
	var close []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !bindable(f) {
			return
		}
		if d := distance(key, f.Name); d <= 2 || (len(key) >= 3 && (strings.Contains(f.Name, key) || strings.Contains(key, f.Name))) {
			close = append(close, f.Name)
		}
	})
	if len(close) == 0 {
		return "; it is not a flag of this command (see --help)"
	}
	sort.Strings(close)
	return "; did you mean " + strings.Join(close, ", ") + "?"
}

// distance is the Levenshtein distance of a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Bind adds --config to cmd, naming the config file (default
// defaultFile), warns of the deprecated flags given, and reads the environment and the file into cmd's flags
// before cmd runs, in a PreRunE. known are the keys of the binary's other
// commands that the file may hold. lookupEnv is os.LookupEnv outside
// tests.
func Bind(cmd *cobra.Command, defaultFile string, lookupEnv func(string) (string, bool), known []string) {
	var file string
	help := "YAML config `file` of settings by flag name (flags and PATCHLINE_* variables win over it)"
	if defaultFile != "" {
		help += "; a missing default file is fine"
	}
	cmd.Flags().StringVar(&file, ConfigFlag, defaultFile, help)
	next := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		c.Flags().Visit(func(f *pflag.Flag) {
			if d := deprecation(f); d != "" {
				fmt.Fprintf(c.ErrOrStderr(), "%s: flag --%s is deprecated, %s\n", c.Root().Name(), f.Name, d)
			}
		})
		src := Sources{File: file, LookupEnv: lookupEnv, Known: known}
		src.Explicit = c.Flags().Changed(ConfigFlag)
		if !src.Explicit && lookupEnv != nil {
			if v, ok := lookupEnv(EnvName(ConfigFlag)); ok && v != "" {
				src.File, src.Explicit = v, true
			}
		}
		if err := Apply(c.Flags(), src); err != nil {
			return err
		}
		if next != nil {
			return next(c, args)
		}
		return nil
	}
}

// FlagNames lists the names of cmd's flags, for another command's Known.
func FlagNames(cmd *cobra.Command) []string {
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	return names
}
