package packaging

import (
	"fmt"
	"path"
	"strings"
)

// RenderUnit returns the systemd unit src with its ExecStart running
// the binary at bin (an absolute path) with the subcommand sub:
// "ExecStart=/usr/local/bin/patchd serve" becomes
// "ExecStart=/usr/bin/patchd serve", arguments after the subcommand
// kept. A unit whose ExecStart passes flags without the subcommand (the
// layout before the binaries' settings moved to a config file) gets
// "ExecStart=<bin> <sub>" alone. name is the unit's file name, for
// errors.
func RenderUnit(name string, src []byte, bin, sub string) ([]byte, error) {
	lines := strings.SplitAfter(string(src), "\n")
	var out strings.Builder
	found := false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if !strings.HasPrefix(line, "ExecStart=") {
			out.WriteString(line)
			continue
		}
		if found {
			return nil, fmt.Errorf("%s:%d: a second ExecStart; the packages expect one", name, i+1)
		}
		found = true
		// The logical line goes on while a line ends in a backslash.
		first := i + 1
		value := strings.TrimPrefix(line, "ExecStart=")
		for strings.HasSuffix(strings.TrimRight(value, "\n"), "\\") && i+1 < len(lines) {
			i++
			value = strings.TrimSuffix(strings.TrimRight(value, "\n"), "\\") + " " + lines[i]
		}
		words := strings.Fields(value)
		if len(words) == 0 {
			return nil, fmt.Errorf("%s:%d: ExecStart is empty", name, first)
		}
		// systemd's prefixes (-, @, :, +, !) would change what the path is.
		prog := words[0]
		if strings.ContainsAny(prog[:1], "-@:+!") {
			return nil, fmt.Errorf("%s:%d: ExecStart %q starts with a prefix the packages do not handle", name, first, prog)
		}
		if path.Base(prog) != path.Base(bin) {
			return nil, fmt.Errorf("%s:%d: ExecStart runs %s, want %s", name, first, prog, path.Base(bin))
		}
		args := []string{sub}
		if len(words) > 1 && words[1] == sub {
			args = words[1:]
		}
		fmt.Fprintf(&out, "ExecStart=%s %s\n", bin, strings.Join(args, " "))
	}
	if !found {
		return nil, fmt.Errorf("%s: no ExecStart line", name)
	}
	return []byte(out.String()), nil
}
