package buildinfo

import "runtime"

// Line is what a binary's `version` command prints:
// "patchd 1.4.2 (go1.26.0 linux/amd64)".
func Line(program string) string {
	return program + " " + Version() + " (" + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}
