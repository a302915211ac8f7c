package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/patchline/patchline/agent"
	"github.com/patchline/patchline/agent/backend/sim"
	"github.com/patchline/patchline/protocol"
)

func TestParseFlags(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	writeCA(t, ca)
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		args        []string
		want        agent.Config
		wantBackend string
		wantErr     string
	}{
		{
			name: "first start with every flag",
			args: []string{
				"--controller", "https://patchd.msp.example", "--client", "acme", "--enroll-token-file", secret,
				"--state-dir", dir, "--labels", "ring=canary, site=leeds", "--backend", "apt",
				"--report-interval", "30m", "--reboot-command", "systemctl reboot", "--insecure",
			},
			want: agent.Config{
				Controller: "https://patchd.msp.example", Client: "acme", EnrollSecret: "s3cret", StateDir: dir,
				Labels: map[string]string{"ring": "canary", "site": "leeds"}, ReportInterval: 30 * time.Minute,
				RebootCommand: []string{"systemctl", "reboot"}, Insecure: true,
			},
			wantBackend: "apt",
		},
		{
			name:        "restart needs only controller and state dir",
			args:        []string{"--controller", "https://patchd.msp.example", "--state-dir", dir},
			want:        agent.Config{Controller: "https://patchd.msp.example", StateDir: dir, ReportInterval: time.Hour, RebootCommand: strings.Fields(defaultRebootCommand())},
			wantBackend: "auto",
		},
		{
			name:        "simulated endpoint never reboots this machine unless told to",
			args:        []string{"--controller", "http://127.0.0.1:8420", "--state-dir", dir, "--backend", "sim", "--sim-os", "windows", "--sim-failure-rate", "0.2"},
			want:        agent.Config{Controller: "http://127.0.0.1:8420", StateDir: dir, ReportInterval: time.Hour},
			wantBackend: "sim",
		},
		{
			name:        "the controller's replicas, each by its URL",
			args:        []string{"--controller", "https://patchd-a.msp.example:8420,https://patchd-b.msp.example:8420", "--state-dir", dir},
			want:        agent.Config{Controller: "https://patchd-a.msp.example:8420,https://patchd-b.msp.example:8420", StateDir: dir, ReportInterval: time.Hour, RebootCommand: strings.Fields(defaultRebootCommand())},
			wantBackend: "auto",
		},
		{name: "simulated OS unknown", args: []string{"--controller", "https://c", "--state-dir", dir, "--backend", "sim", "--sim-os", "beos"}, wantErr: `--sim-os "beos"`},
		{name: "simulated failure rate above 1", args: []string{"--controller", "https://c", "--state-dir", dir, "--backend", "sim", "--sim-failure-rate", "2"}, wantErr: "between 0 and 1"},
		{name: "simulation flags on a real backend", args: []string{"--controller", "https://c", "--state-dir", dir, "--backend", "apt", "--sim-os", "linux"}, wantErr: "only go with --backend sim"},
		{name: "simulated install time on a real backend", args: []string{"--controller", "https://c", "--state-dir", dir, "--backend", "apt", "--sim-install-time", "2s"}, wantErr: "only go with --backend sim"},
		{name: "negative simulated install time", args: []string{"--controller", "https://c", "--state-dir", dir, "--backend", "sim", "--sim-install-time", "-1s"}, wantErr: "--sim-install-time -1s: must not be negative"},
		{name: "no controller", args: []string{"--state-dir", dir}, wantErr: "give --controller URL and --state-dir DIR (or PATCHLINE_CONTROLLER and PATCHLINE_STATE_DIR"},
		{name: "label without a value", args: []string{"--controller", "https://c", "--state-dir", dir, "--labels", "ring"}, wantErr: `"ring" is not key=value`},
		{name: "label given twice", args: []string{"--controller", "https://c", "--state-dir", dir, "--labels", "a=1,a=2"}, wantErr: `label "a" given twice`},
		{name: "a missing token file, by the old flag name", args: []string{"--controller", "https://c", "--state-dir", dir, "--enroll-secret-file", filepath.Join(dir, "nope")}, wantErr: "--enroll-token-file: open"},
		{name: "CA file without a certificate", args: []string{"--controller", "https://c", "--state-dir", dir, "--ca-file", notPEM}, wantErr: "no PEM certificate"},
		{name: "zero report interval", args: []string{"--controller", "https://c", "--state-dir", dir, "--report-interval", "0s"}, wantErr: "must be positive"},
		{name: "stray argument", args: []string{"--controller", "https://c", "--state-dir", dir, "now"}, wantErr: "unexpected arguments: now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, backend, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if backend.name != tt.wantBackend {
				t.Errorf("backend = %q, want %q", backend.name, tt.wantBackend)
			}
			if got.Hostname == "" || got.OS.Family == "" {
				t.Errorf("hostname %q, os %+v: want both filled from the system", got.Hostname, got.OS)
			}
			opts := cmpopts.IgnoreFields(agent.Config{}, "Hostname", "OS")
			if diff := cmp.Diff(tt.want, got, opts, cmpopts.EquateComparable(netip.Addr{})); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}

	cfg, _, err := parseFlags([]string{"--controller", "https://c", "--state-dir", dir, "--ca-file", ca}, io.Discard)
	if err != nil || cfg.RootCAs == nil {
		t.Errorf("--ca-file: config %v, err %v; want a root pool", cfg.RootCAs, err)
	}
}

func TestMainRefusesPlainHTTPToARemoteController(t *testing.T) {
	var stderr strings.Builder
	code := Main([]string{"run", "--controller", "http://patchd.msp.example", "--state-dir", t.TempDir(), "--backend", "apt"}, io.Discard, &stderr, noEnv)
	if code == 0 || !strings.Contains(stderr.String(), "plain http is allowed only") {
		t.Errorf("Main = %d, stderr %q; want a refusal of plain http", code, stderr.String())
	}
}

func TestMainRefusesABadListOfControllers(t *testing.T) {
	for _, tc := range []struct{ controller, want string }{
		{"https://patchd-a.msp.example,http://patchd-b.msp.example", "plain http is allowed only"},
		{"https://patchd-a.msp.example,,https://patchd-b.msp.example", "an empty URL"},
	} {
		var stderr strings.Builder
		code := Main([]string{"run", "--controller", tc.controller, "--state-dir", t.TempDir(), "--backend", "apt"}, io.Discard, &stderr, noEnv)
		if code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("--controller %s: Main = %d, stderr %q; want a refusal saying %q", tc.controller, code, stderr.String(), tc.want)
		}
	}
}

// writeCA writes a self-signed CA certificate as PEM.
func writeCA(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Patchline test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestInventoryCommand runs `patch-agent inventory` on a simulated
// endpoint: it prints what the agent would report, without a controller.
func TestInventoryCommand(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := Main([]string{"inventory", "--backend", "sim", "--format", "json"}, &stdout, &stderr, noEnv); code != 0 {
		t.Fatalf("inventory --format json = %d, stderr %q", code, stderr.String())
	}
	var ups []*protocol.Update
	if err := json.Unmarshal([]byte(stdout.String()), &ups); err != nil || len(ups) == 0 {
		t.Fatalf("inventory JSON = %v, %d updates; want the simulated endpoint's updates\n%s", err, len(ups), stdout.String())
	}
	snap := protocol.Snapshot{APIVersion: protocol.SnapshotAPIVersion, Endpoints: []*protocol.Endpoint{{ID: "e", Client: "c", Updates: ups}}}
	if err := snap.Validate(); err != nil {
		t.Errorf("the controller would refuse this inventory: %v", err)
	}

	stdout.Reset()
	if code := Main([]string{"inventory", "--backend", "sim"}, &stdout, &stderr, noEnv); code != 0 {
		t.Fatalf("inventory = %d, stderr %q", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if !strings.HasPrefix(lines[0], "UPDATE ") || len(lines) != len(ups)+1 {
		t.Errorf("inventory table has %d lines (want a header and %d rows):\n%s", len(lines), len(ups), stdout.String())
	}

	// With the agent's state directory, the simulated machine is the one
	// the agent left there.
	var avail *protocol.Update
	for _, u := range ups {
		if !u.Installed && len(u.Requires) == 0 {
			avail = u
			break
		}
	}
	dir := t.TempDir()
	state := `{"installed": {"` + avail.ID + `": "2026-06-09T17:00:00Z"}, "installs": {}, "rebootPending": false}`
	if err := os.WriteFile(filepath.Join(dir, sim.StateFile), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout.Reset()
	if code := Main([]string{"inventory", "--backend", "sim", "--format", "json", "--state-dir", dir}, &stdout, &stderr, noEnv); code != 0 {
		t.Fatalf("inventory --state-dir = %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"id": "`+avail.ID+`",`) || !strings.Contains(stdout.String(), `"installedAt": "2026-06-09T17:00:00Z"`) {
		t.Errorf("inventory --state-dir does not show %s installed by the agent:\n%s", avail.ID, stdout.String())
	}

	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"inventory", "--format", "yaml"}, `--format "yaml": want text or json`},
		{[]string{"inventory", "--backend", "pkgsrc"}, `--backend pkgsrc: backend "pkgsrc": unknown`},
		{[]string{"inventory", "now"}, `unknown command "now" for "patch-agent inventory"`},
	} {
		stderr.Reset()
		if code := Main(tc.args, io.Discard, &stderr, noEnv); code != 2 || !strings.Contains(stderr.String(), tc.wantErr) {
			t.Errorf("%q = %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.wantErr)
		}
	}
}

// noEnv is an environment without variables.
func noEnv(string) (string, bool) { return "", false }
