package plan

import (
	"fmt"
	"go/build"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
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

// TestPlanDoesNoIO keeps the planner pure: it may import schema, protocol,
// version and standard packages that do no I/O. It looks at the planner's
// own imports; TestPureDomainLinksNoIO in internal/rules checks everything
// the planner links.
func TestPlanDoesNoIO(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		"github.com/patchline/patchline/schema":             true,
		"github.com/patchline/patchline/protocol":           true,
		"github.com/patchline/patchline/reconciler/version": true,
	}
	forbidden := []string{"os", "net", "database", "io/ioutil", "syscall", "log", "runtime/pprof", "path/filepath"}
	for _, imp := range pkg.Imports {
		if strings.Contains(imp, ".") {
			if !allowed[imp] {
				t.Errorf("plan imports %s; it may only import schema, protocol and version", imp)
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
	same := idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abc", end, 0, 0, "")
	tests := []struct {
		name string
		key  string
		want bool
	}{
		{"same work, same revision, same window", idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abc", end.In(time.FixedZone("CST", -6*3600)), 0, 0, ""), true},
		{"retry in the next window", idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abc", end.Add(24*time.Hour), 0, 0, ""), false},
		{"new revision", idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abd", end, 0, 0, ""), false},
		{"other updates", idempotencyKey("acme-ws-001", []string{"KB1"}, "abc", end, 0, 0, ""), false},
		{"other endpoint", idempotencyKey("acme-ws-002", []string{"KB1", "KB2"}, "abc", end, 0, 0, ""), false},
		{"after a refused job", idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abc", end, 1, 0, ""), false},
		{"retry after an interrupted job", idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abc", end, 0, 1, ""), false},
		{"the rollback of the same updates", idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abc", end, 0, 0, "rollback"), false},
		{"retry after a refused job and an interrupted one", idempotencyKey("acme-ws-001", []string{"KB1", "KB2"}, "abc", end, 1, 1, ""), false},
	}
	for _, tt := range tests {
		if got := tt.key == same; got != tt.want {
			t.Errorf("%s: same key = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRefusedIn(t *testing.T) {
	start := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	end := start.Add(8 * time.Hour)
	refused := func(job string, at time.Time) protocol.Attempt {
		return protocol.Attempt{At: at, Result: protocol.ResultRefused, Job: job, Ring: "canary"}
	}
	failed := protocol.Attempt{At: start.Add(time.Hour), Result: protocol.ResultFailed, Job: "j-failed", Ring: "canary"}
	tests := []struct {
		name     string
		attempts [][]protocol.Attempt // per update
		want     int
	}{
		{"no attempts", [][]protocol.Attempt{nil, nil}, 0},
		{"a failure is no refusal", [][]protocol.Attempt{{failed}, nil}, 0},
		{"one job refusing both updates counts once", [][]protocol.Attempt{{refused("j1", start.Add(time.Hour))}, {refused("j1", start.Add(time.Hour))}}, 1},
		{"two jobs", [][]protocol.Attempt{{refused("j1", start.Add(time.Hour)), refused("j2", start.Add(2*time.Hour))}, nil}, 2},
		{"capped", [][]protocol.Attempt{{refused("j1", start), refused("j2", start.Add(time.Minute)), refused("j3", start.Add(2*time.Minute))}, nil}, maxRefusedRetries},
		{"a refusal in an earlier window does not count", [][]protocol.Attempt{{refused("j0", start.Add(-time.Minute))}, nil}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ups []*protocol.Update
			for i, as := range tt.attempts {
				ups = append(ups, &protocol.Update{ID: fmt.Sprintf("KB%d", i), Attempts: as})
			}
			if got := refusedIn(ups, start, end); got != tt.want {
				t.Errorf("refusedIn = %d, want %d", got, tt.want)
			}
		})
	}
}
