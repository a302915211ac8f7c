// Package buildinfo holds the version every Patchline binary reports:
// `version` commands, patchd's /v1/status, the agent's reports and the
// patchline_build_info metric. Release builds set it with
//
//	go build -ldflags "-X github.com/patchline/patchline/internal/buildinfo.version=1.4.2"
//
// (the Makefile does, from VERSION); a plain `go build` reports the module
// version Go recorded, or "devel".
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// version is set at link time; see the package comment.
var version string

// Version is the version of the running binary, without a leading "v":
// "1.4.2", or "devel" for a build that carries none.
func Version() string {
	if version != "" {
		return strings.TrimPrefix(version, "v")
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return strings.TrimPrefix(bi.Main.Version, "v")
	}
	return "devel"
}
