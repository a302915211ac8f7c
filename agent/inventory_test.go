package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/agent/backend"
	"github.com/patchline/patchline/agent/backend/apt"
	"github.com/patchline/patchline/agent/backend/apt/apttest"
	"github.com/patchline/patchline/agent/backend/run/runtest"
	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/internal/golden"
	"github.com/patchline/patchline/protocol"
)

// TestInventoryOutput prints what endpoints would report, in both formats,
// and compares them with golden files: simulated endpoints, and a Debian
// 12 endpoint replaying recorded apt outputs (with its candidates'
// changelogs).
func TestInventoryOutput(t *testing.T) {
	clock := func() time.Time { return time.Date(2026, 6, 9, 17, 0, 0, 0, time.UTC) }
	tests := []struct {
		name    string
		backend func(t *testing.T) backend.Backend
		golden  string
	}{
		{"simulated Debian endpoint", func(t *testing.T) backend.Backend {
			return newSim(t, sim.Options{Seed: 7, Family: "linux", Now: clock})
		}, "inventory-sim-linux"},
		{"simulated Windows endpoint", func(t *testing.T) backend.Backend {
			return newSim(t, sim.Options{Seed: 7, Family: "windows", Now: clock})
		}, "inventory-sim-windows"},
		{"Debian 12 endpoint from recorded apt outputs", func(t *testing.T) backend.Backend {
			apttest.RequireDpkgDeb(t)
			cache := t.TempDir()
			r := &runtest.Replay{T: t, Calls: append(apttest.ListCalls(t, "simulate-bookworm.txt"), apttest.BookwormChangelogs(t, cache)...)}
			return apt.New(r, apt.Options{CacheDir: cache, Logger: slog.New(slog.DiscardHandler)})
		}, "inventory-apt-bookworm"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.backend(t)
			ups, err := Inventory(context.Background(), b)
			if err != nil {
				t.Fatal(err)
			}
			var text, js bytes.Buffer
			if err := WriteInventory(&text, ups, FormatText); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tc.golden+".txt"), text.Bytes())
			if err := WriteInventory(&js, ups, FormatJSON); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, filepath.Join("testdata", tc.golden+".json"), js.Bytes())
			var back []*protocol.Update
			if err := json.Unmarshal(js.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(ups, back); d != "" {
				t.Errorf("JSON does not carry the inventory as it is (-inventory +json):\n%s", d)
			}
			snap := protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, Endpoints: []*protocol.Endpoint{{ID: "e", Client: "c", Updates: back}}}
			if err := snap.Validate(); err != nil {
				t.Errorf("the controller would refuse this inventory: %v", err)
			}
		})
	}
}

func newSim(t *testing.T, opts sim.Options) *sim.Backend {
	t.Helper()
	b, err := sim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInventoryTextEscapesEndpointText: whatever a package manager
// prints, the table shows it without letting a control character reach
// the terminal.
func TestInventoryTextEscapesEndpointText(t *testing.T) {
	ups := []*protocol.Update{
		{ID: "evil\x1b]0;pwned\x07@1", Source: "apt", Category: "security", Severity: "critical\r", Urgency: "high",
			CVEs: []string{"CVE-2024-0001\x1b[2J", "CVE-2024-0002", "CVE-2024-0003"}, Released: time.Date(2024, 1, 30, 20, 53, 17, 0, time.UTC)},
		{ID: "tab\there\nnewline@2", Source: "winget\u202e", Category: "bugfix", Installed: true},
		{ID: "latin1-\xe9t\xe9@3", Source: "choco", Category: "feature\u009b31m"},
		{ID: `back\slash\x41@4`, Source: "brew", Category: "bugfix"},
	}
	var out bytes.Buffer
	if err := WriteInventory(&out, ups, FormatText); err != nil {
		t.Fatal(err)
	}
	for i, c := range out.String() {
		if (c < 0x20 && c != '\n') || (c >= 0x7f && c <= 0x9f) || unicode.Is(unicode.Cf, c) {
			t.Errorf("output holds control character %U at byte %d", c, i)
		}
	}
	golden.Check(t, filepath.Join("testdata", "inventory-hostile.txt"), out.Bytes())
}

func TestWriteInventoryRefusesUnknownFormat(t *testing.T) {
	err := WriteInventory(&bytes.Buffer{}, nil, "yaml")
	if err == nil || !strings.Contains(err.Error(), `inventory format "yaml": want text or json`) {
		t.Errorf("WriteInventory(yaml) = %v", err)
	}
}

// TestInventoryFitsTitles: a title with what the controller refuses in
// text is sent escaped and bounded, so the report is not refused for it.
func TestInventoryFitsTitles(t *testing.T) {
	b := &fakeBackend{inventory: []*protocol.Update{
		{ID: "KB1", Source: "windows-update", Name: "KB1", Title: "Update\r\nfor \x1b[1mWindows\x1b[0m", Category: "security"},
		{ID: "KB2", Source: "windows-update", Name: "KB2", Title: strings.Repeat("long ", protocol.MaxTitleBytes), Category: "security"},
	}}
	ups, err := Inventory(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if want := `Update\x0d\x0afor \x1b[1mWindows\x1b[0m`; ups[0].Title != want {
		t.Errorf("title = %q, want %q", ups[0].Title, want)
	}
	for _, u := range ups {
		if len(u.Title) > protocol.MaxTitleBytes || protocol.CheckText(protocol.TextLine, u.Title) != nil {
			t.Errorf("title of %s (%d bytes) is one the controller refuses", u.ID, len(u.Title))
		}
	}
}

// TestInventoryIsNeverNull: an endpoint with nothing to report reports an
// empty list, not none.
func TestInventoryIsNeverNull(t *testing.T) {
	ups, err := Inventory(context.Background(), &fakeBackend{})
	if err != nil || ups == nil || len(ups) != 0 {
		t.Fatalf("Inventory of nothing = %#v, %v; want an empty list", ups, err)
	}
	var out bytes.Buffer
	if err := WriteInventory(&out, ups, FormatJSON); err != nil || out.String() != "[]\n" {
		t.Errorf("JSON of nothing = %q, %v; want []", out.String(), err)
	}
}
