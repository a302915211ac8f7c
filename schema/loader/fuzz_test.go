package loader

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchline/patchline/schema"
)

// FuzzLoad feeds arbitrary bytes as a client's policy.cue: loading must
// give an error or a fleet, never panic or hang.
func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob("testdata/fleets/*/clients/*/*.cue")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	base := readFleet(f, "testdata/fleets/valid")
	l := New(Options{Now: testNow, Timeout: 2 * time.Second})
	f.Fuzz(func(t *testing.T, policy []byte) {
		files := maps.Clone(base)
		files["clients/acme/policy.cue"] = policy
		fleet, err := l.LoadFiles(context.Background(), files, "")
		if err != nil {
			t.Fatalf("LoadFiles: %v", err)
		}
		for _, p := range fleet.Problems {
			if p.Level == schema.LevelError && fleet.Clients[p.Client] != nil {
				t.Errorf("client %q loaded despite %s", p.Client, p)
			}
		}
	})
}
