package loader

import (
	"context"
	"os"
	"regexp"
	"testing"

	"github.com/patchline/patchline/schema"
)

// cueBlock matches a ```cue block of a Markdown file.
var cueBlock = regexp.MustCompile("(?s)```cue\n(.*?)```")

// TestREADMEExamples loads every CUE example of the README as client acme
// of the valid test fleet, whose root files give the defaults the
// examples extend: each must load without a problem. The policy
// reference shows each approve field and sla entry at least once, so the
// fields it documents are checked here too.
func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := cueBlock.FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no cue block")
	}
	files := readFleet(t, "testdata/fleets/valid")
	delete(files, "clients/acme/client.cue")
	delete(files, "clients/globex/policy.cue")
	var minEPSS, cve, exploitedSLA bool
	for i, b := range blocks {
		files["clients/acme/policy.cue"] = b[1]
		fleet, err := New(Options{Now: testNow}).LoadFiles(context.Background(), files, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range fleet.Problems {
			t.Errorf("README cue block %d: %s", i+1, p)
		}
		c := fleet.Clients["acme"]
		if c == nil {
			continue
		}
		for _, a := range c.Baseline.Approve {
			minEPSS = minEPSS || a.MinEPSS > 0
			cve = cve || len(a.CVE) > 0
		}
		exploitedSLA = exploitedSLA || c.KnownExploitedSLA != nil
	}
	for _, f := range []struct {
		field string
		shown bool
	}{{"baseline.approve[].minEPSS", minEPSS}, {"baseline.approve[].cve", cve}, {"sla." + schema.SLAKnownExploited, exploitedSLA}} {
		if !f.shown {
			t.Errorf("no README cue example sets %s", f.field)
		}
	}
}
