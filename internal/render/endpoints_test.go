package render

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/plan"
)

func TestEndpointDrifts(t *testing.T) {
	seen := time.Date(2026, 11, 24, 3, 58, 0, 0, time.UTC)
	snap := &protocol.Snapshot{Endpoints: []*protocol.Endpoint{
		{ID: "acme-sql01", Client: "acme", Hostname: "ACME-SQL01", LastSeen: seen},
		{ID: "acme-ws-001", Client: "acme", Hostname: "ACME-WS-001", LastSeen: seen},
		{ID: "acme-ws-002", Client: "acme", Hostname: "ACME-WS-002"},
		{ID: "umbrella-ws01", Client: "umbrella", Hostname: "evil\x1b]0;x\x07", LastSeen: seen},
	}}
	decisions := []plan.PairDecision{
		{Endpoint: "acme-sql01", Ring: "broad", Update: "KB1", Decision: plan.Excluded},
		{Endpoint: "acme-sql01", Ring: "broad", Update: "KB2", Decision: plan.Installed},
		{Endpoint: "acme-ws-001", Ring: "canary", Update: "KB1", Decision: plan.Missing},
		{Endpoint: "acme-ws-001", Ring: "canary", Update: "KB2", Decision: plan.Failed},
		{Endpoint: "acme-ws-001", Ring: "canary", Update: "KB3", Decision: plan.WaitingWindow},
		{Endpoint: "acme-ws-001", Ring: "canary", Update: "KB4", Decision: plan.NotApproved},
		{Endpoint: "umbrella-ws01", Update: "KB1", Decision: plan.UnknownClient},
		{Endpoint: "gone", Ring: "canary", Update: "KB1", Decision: plan.Missing},
	}
	rows := EndpointDrifts(snap, decisions)
	want := []EndpointDrift{
		{ID: "acme-sql01", Client: "acme", Hostname: "ACME-SQL01", Ring: "broad", LastSeen: seen},
		{ID: "acme-ws-001", Client: "acme", Hostname: "ACME-WS-001", Ring: "canary", LastSeen: seen, Missing: 3, Failed: 1},
		{ID: "acme-ws-002", Client: "acme", Hostname: "ACME-WS-002"},
		{ID: "umbrella-ws01", Client: "umbrella", Hostname: "evil\x1b]0;x\x07", LastSeen: seen},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Fatalf("rows (-want +got):\n%s", diff)
	}
	for f, file := range map[Format]string{Text: "endpoints.txt", JSON: "endpoints.json"} {
		t.Run(string(f), func(t *testing.T) {
			var b strings.Builder
			if err := Endpoints(&b, f, rows); err != nil {
				t.Fatal(err)
			}
			if strings.ContainsAny(b.String(), "\x1b\x07") {
				t.Errorf("output holds control characters:\n%q", b.String())
			}
			golden.Check(t, filepath.Join("testdata", file), []byte(b.String()))
		})
	}
	if err := Endpoints(&strings.Builder{}, Markdown, rows); err == nil {
		t.Error("Markdown output of endpoints: no error")
	}
}
