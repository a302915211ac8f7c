// Command mkpkg writes Patchline's release archives (package packaging)
// from binaries already built; `make package` builds them and runs it:
//
//	mkpkg -bin dist/bin -out dist -version 0.9.0 -time 1767225600 \
//	    -targets "linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64"
//
// It is a build tool of the repository, not a product binary.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/patchline/patchline/internal/packaging"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("mkpkg", flag.ContinueOnError)
	root := fs.String("root", ".", "the repository's root")
	bin := fs.String("bin", "", "directory of the binaries, one GOOS_GOARCH directory per target")
	out := fs.String("out", "dist", "directory the archives are written to")
	version := fs.String("version", "", "the release's version, e.g. 0.9.0")
	targets := fs.String("targets", "linux/amd64", "GOOS/GOARCH targets, separated by spaces or commas")
	stamp := fs.Int64("time", 0, "time stamp of the archives' files, in seconds since 1970 (e.g. the last commit's)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *bin == "" || *version == "" || *stamp <= 0 {
		fmt.Fprintln(os.Stderr, "mkpkg: -bin, -version and -time are required, and no arguments are taken")
		return 2
	}
	ts, err := packaging.ParseTargets(*targets)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkpkg: -targets:", err)
		return 2
	}
	written, err := packaging.Build(packaging.Options{
		Root: *root, BinDir: *bin, OutDir: *out, Version: *version, Targets: ts, Time: time.Unix(*stamp, 0).UTC(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkpkg:", err)
		return 1
	}
	for _, p := range written {
		fmt.Println(p)
	}
	return 0
}
