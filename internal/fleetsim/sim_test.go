package fleetsim

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
)

// TestSimulatedFleetConverges runs 20 real agents against a real patchd on
// loopback following a generated fleet repo, until every client is
// compliant, then releases the held update in both clients by commit and
// webhook.
func TestSimulatedFleetConverges(t *testing.T) {
	out := t.TempDir()
	g, err := Generate(context.Background(), out, GenerateOptions{Clients: 2, Endpoints: 0})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := protocol.ReadSecretsFile(g.SecretsPath)
	if err != nil {
		t.Fatal(err)
	}
	p := patchdtest.Start(t, patchdtest.Config(t, "file://"+g.RepoDir, sec.Enrollment))
	sec.AdminToken, sec.WebhookSecret = patchdtest.AdminToken, patchdtest.WebhookSecret
	var progress bytes.Buffer
	sum, err := Run(context.Background(), Options{
		Controller: p.URL, Metrics: p.MetricsURL, Secrets: sec, Clients: 2, Endpoints: 20, Updates: 3,
		Duration: 2 * time.Minute, StateDir: t.TempDir(), RepoDir: g.RepoDir, Commits: 2, Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := sum.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("summary:\n%s", text.String())
	switch {
	case !sum.Converged:
		t.Errorf("the fleet did not converge")
	case sum.Enrolled != 20 || sum.Reported != 20:
		t.Errorf("enrolled %d, reported %d; want 20 each", sum.Enrolled, sum.Reported)
	case sum.Jobs == 0 || sum.InstallsFailed != 0:
		t.Errorf("%d jobs, %d failed installs; want jobs and no failures", sum.Jobs, sum.InstallsFailed)
	case sum.CommitToJob.N != 2:
		t.Errorf("%d commit-to-job samples, want 2", sum.CommitToJob.N)
	case len(sum.Errors) != 0:
		t.Errorf("errors: %v", sum.Errors)
	case runtime.GOOS == "linux" && sum.ControllerRSS == 0:
		t.Errorf("the controller's memory was not read from %s", p.MetricsURL)
	}
	if !strings.Contains(progress.String(), "converged") {
		t.Errorf("progress never said converged:\n%s", progress.String())
	}
}

func TestSourceAddr(t *testing.T) {
	for _, tt := range []struct {
		controller string
		endpoints  int
		i          int
		want       string
	}{
		{"http://127.0.0.1:8420", 10000, 7, "invalid IP"},
		{"http://127.0.0.1:8420", 50000, 0, "127.0.0.1"},
		{"http://127.0.0.1:8420", 50000, 1, "127.0.0.2"},
		{"http://127.0.0.1:8420", 50000, 5, "127.0.0.3"},
		{"https://patchd.msp.example:8420", 50000, 1, "invalid IP"},
		{"http://[::1]:8420", 50000, 1, "invalid IP"},
	} {
		if got := sourceAddr(Options{Controller: tt.controller, Endpoints: tt.endpoints}, tt.i).String(); got != tt.want {
			t.Errorf("sourceAddr(%s, %d endpoints, agent %d) = %s, want %s", tt.controller, tt.endpoints, tt.i, got, tt.want)
		}
	}
}

// TestControllerForSpreadsAgents checks that agents given several replicas
// start at each in turn and still know them all.
func TestControllerForSpreadsAgents(t *testing.T) {
	for _, tt := range []struct {
		controller string
		i          int
		want       string
	}{
		{"http://127.0.0.1:8420", 0, "http://127.0.0.1:8420"},
		{"http://127.0.0.1:8420", 5, "http://127.0.0.1:8420"},
		{"http://a:1,http://b:2,http://c:3", 0, "http://a:1,http://b:2,http://c:3"},
		{"http://a:1,http://b:2,http://c:3", 1, "http://b:2,http://c:3,http://a:1"},
		{"http://a:1,http://b:2,http://c:3", 2, "http://c:3,http://a:1,http://b:2"},
		{"http://a:1,http://b:2,http://c:3", 3, "http://a:1,http://b:2,http://c:3"},
		{"http://a:1, http://b:2", 1, "http://b:2,http://a:1"},
	} {
		if got := controllerFor(Options{Controller: tt.controller}, tt.i); got != tt.want {
			t.Errorf("controllerFor(%q, agent %d) = %q, want %q", tt.controller, tt.i, got, tt.want)
		}
	}
	// The original list is not changed by a rotation.
	opts := Options{Controller: "http://a:1,http://b:2"}
	_ = controllerFor(opts, 1)
	if got := controllerFor(opts, 0); got != "http://a:1,http://b:2" {
		t.Errorf("after a rotation, agent 0 got %q", got)
	}
}

func TestCheckControllerList(t *testing.T) {
	sec := &protocol.SecretsFile{Enrollment: map[string]string{"client-000": "s"}}
	for _, tt := range []struct {
		controller, metrics string
		wantErr             string
	}{
		{"http://127.0.0.1:1,http://127.0.0.1:2", "http://127.0.0.1:3/metrics,http://127.0.0.1:4/metrics", ""},
		{"http://127.0.0.1:1,", "", `controller URL ""`},
		{"http://127.0.0.1:1,http://pd-b.msp.example:8420", "", "plain http"},
		{"http://127.0.0.1:1", "http://127.0.0.1:3/metrics,:bad", `metrics URL ":bad"`},
	} {
		opts := Options{Controller: tt.controller, Metrics: tt.metrics, Secrets: sec, Clients: 1, Endpoints: 1, Duration: time.Second}
		err := opts.check()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("check(%q, %q): %v", tt.controller, tt.metrics, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("check(%q, %q) = %v, want an error with %q", tt.controller, tt.metrics, err, tt.wantErr)
		}
	}
}
