package fleetsim

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/plangen"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/source"
	"github.com/patchline/patchline/schema"
	"github.com/patchline/patchline/schema/loader"
)

func TestGenerateWritesALoadableFleet(t *testing.T) {
	now := time.Date(2026, 11, 12, 23, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		opts    GenerateOptions
		windows []string
		soak    time.Duration
	}{
		{"always-open windows and no soak, for the simulator",
			GenerateOptions{Clients: 3, Endpoints: 30, Updates: 4, Now: now}, []string{"always"}, 0},
		{"weeknight and weekend windows with a day's soak",
			GenerateOptions{Clients: 2, Endpoints: 10, Updates: 2, Now: now, RealisticWindows: true, Soak: 24 * time.Hour},
			[]string{"weekend", "weeknights"}, 24 * time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Generate(context.Background(), t.TempDir(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			fleet, err := source.LoadRevision(context.Background(), loader.New(loader.Options{Now: now}), g.RepoDir, g.Revision)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range fleet.Problems {
				if p.Level == schema.LevelError {
					t.Errorf("problem: %s", p)
				}
			}
			if len(fleet.Clients) != tc.opts.Clients {
				t.Fatalf("loaded %d clients, want %d", len(fleet.Clients), tc.opts.Clients)
			}
			cl := fleet.Clients[plangen.ClientID(0)]
			var rings, windows []string
			for _, r := range cl.Rings {
				rings = append(rings, r.Name)
				if r.Soak != tc.soak {
					t.Errorf("ring %s soaks %v, want %v", r.Name, r.Soak, tc.soak)
				}
			}
			for name := range cl.Windows {
				windows = append(windows, name)
			}
			if diff := cmp.Diff([]string{"canary", "pilot", "broad"}, rings); diff != "" {
				t.Errorf("rings (-want +got):\n%s", diff)
			}
			if len(windows) != len(tc.windows) {
				t.Errorf("windows %v, want %v", windows, tc.windows)
			}
			held := false
			for _, x := range cl.Exclusions {
				held = held || x.Update == HeldUpdate
			}
			if !held || len(cl.Exclusions) != 3 {
				t.Errorf("exclusions %+v: want two and the hold on %s", cl.Exclusions, HeldUpdate)
			}

			f, err := os.Open(g.StatePath)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			snap, err := protocol.DecodeSnapshot(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Endpoints) != tc.opts.Endpoints {
				t.Errorf("snapshot has %d endpoints, want %d", len(snap.Endpoints), tc.opts.Endpoints)
			}

			fi, err := os.Stat(g.SecretsPath)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("secrets file mode %v, want 0600", fi.Mode().Perm())
			}
			sec, err := protocol.ReadSecretsFile(g.SecretsPath)
			if err != nil {
				t.Fatal(err)
			}
			if len(sec.Enrollment) != tc.opts.Clients || sec.WebhookSecret == "" {
				t.Errorf("secrets: %d enrollment secrets, webhook secret %q", len(sec.Enrollment), sec.WebhookSecret)
			}
			// Each secret is 32 random bytes (64 hex digits), and none repeats.
			seen := map[string]string{}
			check := func(name, v string) {
				if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
					t.Errorf("%s %q: want 32 random bytes in hex", name, v)
				}
				if other, ok := seen[v]; ok {
					t.Errorf("%s is the same as %s", name, other)
				}
				seen[v] = name
			}
			check("adminToken", sec.AdminToken)
			check("webhookSecret", sec.WebhookSecret)
			for c, v := range sec.Enrollment {
				check("enrollment."+c, v)
			}
		})
	}
}

func TestGenerateRefusesAnUsedDirectory(t *testing.T) {
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, RepoDirName), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(context.Background(), out, GenerateOptions{Clients: 1}); err == nil {
		t.Fatal("Generate over an existing fleet repo succeeded")
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want Percentiles
	}{
		{"no samples", nil, Percentiles{}},
		{"one sample is every percentile", ms(7), Percentiles{N: 1, P50: ms(7)[0], P90: ms(7)[0], P99: ms(7)[0], Max: ms(7)[0]}},
		{"ten samples out of order", ms(10, 1, 9, 2, 8, 3, 7, 4, 6, 5),
			Percentiles{N: 10, P50: 5 * time.Millisecond, P90: 9 * time.Millisecond, P99: 10 * time.Millisecond, Max: 10 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, percentiles(tc.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
