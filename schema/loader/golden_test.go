package loader

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite golden files")

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
			compareGolden(t, dir+".golden.txt", []byte(strings.Join(lines, "")))

			jsonFile := dir + ".golden.json"
			if len(fleet.Clients) == 0 {
				if *update {
					compareGolden(t, jsonFile, nil)
				} else if _, err := os.Stat(jsonFile); err == nil {
					t.Errorf("%s exists but no client loaded", jsonFile)
				}
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
			compareGolden(t, jsonFile, append(b, '\n'))
		})
	}
}

func compareGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if len(got) == 0 {
			if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			return
		}
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s\nrerun with -update to accept", file, diff)
	}
}
