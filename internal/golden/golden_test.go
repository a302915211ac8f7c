package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// recorder is a testing.TB that records failures instead of failing the
// test running it.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.failures = append(r.failures, fmt.Sprint(args...))
	runtime.Goexit()
}

// record runs check against a recorder, on a goroutine of its own so that
// a Fatal ends only check.
func record(t *testing.T, check func(testing.TB)) []string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
	return r.failures
}

// setUpdate runs the rest of the test as if -update had (on) or had not
// been given, whatever the flag says.
func setUpdate(t *testing.T, on bool) {
	was := *update
	*update = on
	t.Cleanup(func() { *update = was })
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheck(t *testing.T) {
	setUpdate(t, false)
	dir := t.TempDir()
	existing := filepath.Join(dir, "plan.txt")
	writeFile(t, existing, "KB5044284 missing\n")
	missing := filepath.Join(dir, "absent.txt")
	tests := []struct {
		name string
		path string
		got  string
		// fail is a text the one failure must hold (the diff shows the
		// lines that differ); "" means the check passes.
		fail string
	}{
		{"output as recorded", existing, "KB5044284 missing\n", ""},
		{"output changed", existing, "KB5044284 installed\n", "KB5044284 installed"},
		{"the diff names the file and the way to accept it", existing, "KB5044284 installed\n", existing + " differs (-want +got; run go test -update"},
		{"no golden file yet", missing, "KB5044284 missing\n", "run go test -update to create it"},
		{"nothing produced and no golden file", missing, "", ""},
		{"nothing produced but a golden file", existing, "", "KB5044284 missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			failures := record(t, func(tb testing.TB) { Check(tb, tt.path, []byte(tt.got)) })
			switch {
			case tt.fail == "" && len(failures) > 0:
				t.Errorf("Check failed: %q", failures)
			case tt.fail != "" && (len(failures) != 1 || !strings.Contains(failures[0], tt.fail)):
				t.Errorf("failures %q, want one mentioning %q", failures, tt.fail)
			}
		})
	}
}

func TestCheckUpdate(t *testing.T) {
	setUpdate(t, true)
	dir := t.TempDir()

	t.Run("writes a new file in a new directory", func(t *testing.T) {
		path := filepath.Join(dir, "history", "acme.txt")
		if failures := record(t, func(tb testing.TB) { Check(tb, path, []byte("new\n")) }); len(failures) > 0 {
			t.Fatalf("Check under -update failed: %q", failures)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "new\n" {
			t.Errorf("golden file holds %q (%v), want %q", b, err, "new\n")
		}
	})
	t.Run("replaces a changed file", func(t *testing.T) {
		path := filepath.Join(dir, "plan.txt")
		writeFile(t, path, "old\n")
		if failures := record(t, func(tb testing.TB) { Check(tb, path, []byte("new\n")) }); len(failures) > 0 {
			t.Fatalf("Check under -update failed: %q", failures)
		}
		if b, err := os.ReadFile(path); err != nil || string(b) != "new\n" {
			t.Errorf("golden file holds %q (%v), want %q", b, err, "new\n")
		}
	})
	t.Run("removes the file when nothing is produced", func(t *testing.T) {
		path := filepath.Join(dir, "problems.txt")
		writeFile(t, path, "old\n")
		for range 2 { // a second run finds no file to remove
			if failures := record(t, func(tb testing.TB) { Check(tb, path, nil) }); len(failures) > 0 {
				t.Fatalf("Check under -update failed: %q", failures)
			}
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("golden file still there (%v)", err)
		}
	})
}

func TestCheckJSON(t *testing.T) {
	setUpdate(t, false)
	path := filepath.Join(t.TempDir(), "inventory.golden.json")
	v := map[string]any{"id": "KB5044284", "cves": []string{"CVE-2024-43491"}}
	want := "{\n  \"cves\": [\n    \"CVE-2024-43491\"\n  ],\n  \"id\": \"KB5044284\"\n}\n"
	writeFile(t, path, want)
	if failures := record(t, func(tb testing.TB) { CheckJSON(tb, path, v) }); len(failures) > 0 {
		t.Errorf("CheckJSON against its own format failed: %q", failures)
	}
	v["id"] = "KB5044285"
	if failures := record(t, func(tb testing.TB) { CheckJSON(tb, path, v) }); len(failures) != 1 || !strings.Contains(failures[0], `"id": "KB5044285"`) {
		t.Errorf("CheckJSON of a changed value: failures %q, want the changed line", failures)
	}
	if failures := record(t, func(tb testing.TB) { CheckJSON(tb, path, func() {}) }); len(failures) != 1 {
		t.Errorf("CheckJSON of a value JSON cannot encode: failures %q, want one", failures)
	}
}
