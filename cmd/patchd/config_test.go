package main

import (
	"io"
	"os"
	"regexp"
	"testing"

	"github.com/patchline/patchline/internal/cliconf"
)

// The packaged config file (examples/config/patchd.yaml), with its
// commented-out settings taken as settings, names only flags of
// `patchd serve`.
func TestExampleConfigKeysAreServeFlags(t *testing.T) {
	const path = "../../examples/config/patchd.yaml"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = regexp.MustCompile(`(?m)^#([a-z][a-z0-9-]*: )`).ReplaceAll(b, []byte("$1"))
	entries, err := cliconf.Parse(path, b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(entries) < 3 {
		t.Fatalf("%s: only %d settings found", path, len(entries))
	}
	serve := newServeCmd(io.Discard, func(string) (string, bool) { return "", false })
	for _, e := range entries {
		if serve.Flags().Lookup(e.Key) == nil {
			t.Errorf("%s:%d: %q is not a flag of patchd serve", path, e.Line, e.Key)
		}
	}
}
