package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/patchline/patchline/protocol"
)

// TestWhyByHostnameAndName: why takes an endpoint's hostname for its id
// and a package's name for its only version, and explains the same
// decision; a name that fits several gets their ids.
func TestWhyByHostnameAndName(t *testing.T) {
	// examples/state.json with a second endpoint named ACME-WS-002 and a
	// second version of Google Chrome on acme-ws-001.
	snap, err := readSnapshot("../../examples/state.json")
	if err != nil {
		t.Fatal(err)
	}
	var twin protocol.Endpoint
	for _, ep := range snap.Endpoints {
		switch ep.ID {
		case "acme-ws-002":
			twin = *ep
			twin.ID, twin.Hostname = "acme-ws-002-3f2a", "acme-ws-002"
		case "acme-ws-001":
			for _, u := range ep.Updates {
				if u.ID == "Google.Chrome@131.0.6778.86" {
					v := *u
					v.ID, v.Version, v.Installed, v.InstalledAt, v.Attempts = "Google.Chrome@130.0.6723.117", "130.0.6723.117", true, nil, nil
					ep.Updates = append(ep.Updates, &v)
				}
			}
		}
	}
	snap.Endpoints = append(snap.Endpoints, &twin)
	twins := filepath.Join(t.TempDir(), "state.json")
	f, err := os.Create(twins)
	if err != nil {
		t.Fatal(err)
	}
	if err := protocol.EncodeSnapshot(f, snap); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	why := func(state, endpoint, update string) []string {
		return []string{"why", "--repo", "../../examples/fleet", "--state", state, "--now", now, "--endpoint", endpoint, "--update", update}
	}
	tests := []struct {
		name    string
		args    []string
		same    []string // prints what these print
		wantErr string
	}{
		{name: "hostname for the id", args: why("../../examples/state.json", "ACME-WS-002", "KB5034441"),
			same: why("../../examples/state.json", "acme-ws-002", "KB5034441")},
		{name: "hostname in lower case, package name for the id", args: why("../../examples/state.json", "acme-ws-001", "google.chrome"),
			same: why("../../examples/state.json", "acme-ws-001", "Google.Chrome@131.0.6778.86")},
		{name: "a hostname two endpoints share", args: why(twins, "ACME-WS-002", "KB5034441"),
			wantErr: `hostname "ACME-WS-002" names 2 endpoints: acme-ws-002 (ACME-WS-002, client acme), acme-ws-002-3f2a (acme-ws-002, client acme); give --endpoint one of their ids`},
		{name: "a name with two versions", args: why(twins, "acme-ws-001", "Google.Chrome"),
			wantErr: `endpoint acme-ws-001 reports 2 versions of "Google.Chrome": Google.Chrome@130.0.6723.117 (installed), Google.Chrome@131.0.6778.86 (available); give --update one of these ids`},
		{name: "an endpoint by no name", args: why("../../examples/state.json", "ACME-MAC-01", "KB5034441"),
			wantErr: `endpoint "ACME-MAC-01" is not in the state snapshot`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, tt.args...)
			if tt.wantErr != "" {
				if code == 0 || !strings.Contains(errOut, tt.wantErr) {
					t.Errorf("exit %d, stderr %q\nwant it to contain %q", code, errOut, tt.wantErr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			_, want, _ := run(t, tt.same...)
			if out != want || want == "" {
				t.Errorf("printed:\n%s\nwant what %s prints:\n%s", out, tt.same, want)
			}
		})
	}
}
