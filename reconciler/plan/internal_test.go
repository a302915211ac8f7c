package plan

import (
	"go/build"
	"strings"
	"testing"
	"time"
)

func TestSlotFollowsAllDecisions(t *testing.T) {
	if len(AllDecisions) != numDecisions {
		t.Fatalf("numDecisions = %d, AllDecisions has %d", numDecisions, len(AllDecisions))
	}
	for i, d := range AllDecisions {
		if got := slot(d); got != i {
			t.Errorf("slot(%q) = %d, want %d", d, got, i)
		}
	}
}

// TestPlanDoesNoIO keeps the planner pure: it may import schema, state,
// version and standard packages that do no I/O.
func TestPlanDoesNoIO(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		"github.com/patchline/patchline/schema":             true,
		"github.com/patchline/patchline/reconciler/state":   true,
		"github.com/patchline/patchline/reconciler/version": true,
	}
	forbidden := []string{"os", "net", "database", "io/ioutil", "syscall", "log", "runtime/pprof", "path/filepath"}
	for _, imp := range pkg.Imports {
		if strings.Contains(imp, ".") {
			if !allowed[imp] {
				t.Errorf("plan imports %s; it may only import schema, state and version", imp)
			}
			continue
		}
		for _, f := range forbidden {
			if imp == f || strings.HasPrefix(imp, f+"/") {
				t.Errorf("plan imports %s, which does I/O", imp)
			}
		}
	}
}

func TestIdempotencyKeyPerWindow(t *testing.T) {
	end := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	same := idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abc", end)
	tests := []struct {
		name string
		key  string
		want bool
	}{
		{"same work, same revision, same window", idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abc", end.In(time.FixedZone("CST", -6*3600))), true},
		{"retry in the next window", idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abc", end.Add(24*time.Hour)), false},
		{"new revision", idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abd", end), false},
		{"other updates", idempotencyKey("acme-ws-001", []string{"KB1"}, "abc", end), false},
		{"other endpoint", idempotencyKey("acme-ws-002", []string{"KB1", "KB2"}, "abc", end), false},
	}
	for _, tt := range tests {
		if got := tt.key == same; got != tt.want {
			t.Errorf("%s: same key = %v, want %v", tt.name, got, tt.want)
		}
	}
}
