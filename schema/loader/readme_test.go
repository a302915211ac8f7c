package loader

import (
	"context"
	"maps"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/patchline/patchline/schema"
)

// cueBlock matches a ```cue block of a Markdown file.
var cueBlock = regexp.MustCompile("(?s)```cue\n(.*?)```")

// TestREADMEExamples loads every CUE example of the README as client acme
// of the valid test fleet, whose root files give the defaults the
// examples extend, and of a repository made by patchctl init (its
// template's root files and the schema's copy): each must load without a
// problem in both. The policy reference shows each approve field and sla
// entry at least once, so the fields it documents are checked here too.
func TestREADMEExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := cueBlock.FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no cue block")
	}
	valid := readFleet(t, "testdata/fleets/valid")
	delete(valid, "clients/acme/client.cue")
	delete(valid, "clients/globex/policy.cue")
	template := readFleet(t, "../../fleet-repo-template/files")
	for n := range template {
		if strings.HasPrefix(n, "clients/") {
			delete(template, n)
		}
	}
	template[schema.PackageFile] = schema.Package()
	var minEPSS, cve, exploitedSLA bool
	for i, b := range blocks {
		for _, repo := range []struct {
			name  string
			files map[string][]byte
		}{{"the valid test fleet", valid}, {"a repository from patchctl init", template}} {
			files := maps.Clone(repo.files)
			files["clients/acme/policy.cue"] = b[1]
			fleet, err := New(Options{Now: testNow}).LoadFiles(context.Background(), files, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range fleet.Problems {
				t.Errorf("README cue block %d in %s: %s", i+1, repo.name, p)
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
