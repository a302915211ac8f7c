package loader

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/golden"
)

// testNow is the fixed "now" of every test load.
var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// TestGolden loads every fleet under testdata/fleets and compares the
// problems with <name>.golden.txt and, when any client loads, the decoded
// fleet with <name>.golden.json.
func TestGolden(t *testing.T) {
	entries, err := os.ReadDir("testdata/fleets")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		dir := filepath.Join("testdata/fleets", name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l := New(Options{Now: testNow})
			fleet, err := l.LoadDir(context.Background(), dir)
			if err != nil {
				t.Fatalf("LoadDir: %v", err)
			}
			var lines []string
			for _, p := range fleet.Problems {
				lines = append(lines, p.String()+"\n")
			}
			golden.Check(t, dir+".golden.txt", []byte(strings.Join(lines, "")))

			jsonFile := dir + ".golden.json"
			if len(fleet.Clients) == 0 {
				golden.Check(t, jsonFile, nil)
				return
			}
			for _, c := range fleet.Clients {
				if len(c.Digest) != 64 {
					t.Errorf("client %s: digest %q is not a hex sha256", c.ID, c.Digest)
				}
				// The digest covers the schema too; leaving it out keeps
				// the golden files stable across schema edits.
				c.Digest = ""
			}
			b, err := json.MarshalIndent(fleet, "", "\t")
			if err != nil {
				t.Fatal(err)
			}
			golden.Check(t, jsonFile, append(b, '\n'))
		})
	}
}
