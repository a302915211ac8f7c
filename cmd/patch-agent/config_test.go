package main

import (
	"io"
	"os"
	"regexp"
	"testing"

	"github.com/patchline/patchline/internal/cliconf"
)

// uncommented turns the commented-out settings of an example config file
// ("#controller: https://…") into settings, so that every key the file
// shows is checked, not only the ones it sets.
func uncommented(t *testing.T, path string) []cliconf.Entry {
	t.Helper()
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
		t.Fatalf("%s: only %d settings found; the test reads `key: value` and `#key: value` lines", path, len(entries))
	}
	return entries
}

// The packaged config file (examples/config/agent.yaml) and the keys
// `service install` writes name only flags of `patch-agent run`.
func TestConfigKeysAreRunFlags(t *testing.T) {
	run := newRunCmd(io.Discard, func(string) (string, bool) { return "", false }, "")
	for _, e := range uncommented(t, "../../examples/config/agent.yaml") {
		if run.Flags().Lookup(e.Key) == nil {
			t.Errorf("examples/config/agent.yaml:%d: %q is not a flag of patch-agent run", e.Line, e.Key)
		}
	}
	for _, k := range serviceConfigKeys {
		if run.Flags().Lookup(k.name) == nil {
			t.Errorf("service install writes %q, which is not a flag of patch-agent run", k.name)
		}
	}
	if run.Flags().Lookup("insecure") == nil {
		t.Error("service install writes insecure, which is not a flag of patch-agent run")
	}
}
