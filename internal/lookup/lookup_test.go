package lookup

import (
	"strings"
	"testing"

	"github.com/patchline/patchline/protocol"
)

func snapshot() *protocol.Snapshot {
	return &protocol.Snapshot{Endpoints: []*protocol.Endpoint{
		{ID: "acme-mac-01", Client: "acme", Hostname: "ACME-MAC-01", Updates: []*protocol.Update{
			{ID: "firefox@139.0.1", Name: "firefox", Version: "139.0.1"},
			{ID: "Google.Chrome@131.0.6778.86", Name: "Google.Chrome", Title: "Google Chrome"},
			{ID: "curl@8.5.0", Name: "curl", Version: "8.5.0", Installed: true},
			{ID: "curl@8.6.0", Name: "curl", Version: "8.6.0"},
			{ID: "KB5034441", Name: "KB5034441", Title: "Windows Recovery Environment update"},
		}},
		{ID: "acme-ws-04", Client: "acme", Hostname: "WS-04"},
		{ID: "acme-ws-04-3f2a", Client: "acme", Hostname: "ws-04"},
		{ID: "globex-ws-04", Client: "globex", Hostname: "WS-04.globex.example"},
		{ID: "acme-ws-05", Client: "acme", Hostname: "ACME-WS-05"},
		{ID: "acme-evil", Client: "acme", Hostname: "evil\x1b]0;x\x07"},
	}}
}

func TestEndpoint(t *testing.T) {
	tests := []struct {
		name, query string
		want        string // the endpoint's id, or "" for an error
		wantErr     []string
	}{
		{name: "by id", query: "acme-ws-04", want: "acme-ws-04"},
		{name: "by hostname, as typed", query: "ACME-MAC-01", want: "acme-mac-01"},
		{name: "by hostname, in another case", query: "acme-ws-05", want: "acme-ws-05"},
		{name: "a hostname two endpoints share", query: "Ws-04",
			wantErr: []string{`hostname "Ws-04" names 2 endpoints: acme-ws-04 (WS-04, client acme), acme-ws-04-3f2a (ws-04, client acme); give --endpoint one of their ids`}},
		{name: "an id wins over another's hostname", query: "acme-ws-04-3f2a", want: "acme-ws-04-3f2a"},
		{name: "nothing by that name, near misses listed", query: "WS-0",
			wantErr: []string{`endpoint "WS-0" is not in the state snapshot: no endpoint has that id or hostname; did you mean acme-ws-04 (WS-04, client acme), acme-ws-04-3f2a (ws-04, client acme), globex-ws-04 (WS-04.globex.example, client globex), acme-ws-05 (ACME-WS-05, client acme)?`}},
		{name: "nothing near", query: "umbrella-01",
			wantErr: []string{`endpoint "umbrella-01" is not in the state snapshot: no endpoint has that id or hostname`}},
		{name: "hostile hostnames are escaped", query: "evil",
			wantErr: []string{`acme-evil (evil\x1b]0;x\x07, client acme)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep, err := Endpoint(snapshot(), tt.query)
			if tt.want != "" {
				if err != nil || ep.ID != tt.want {
					t.Fatalf("Endpoint(%q) = %v, %v; want %s", tt.query, ep, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Endpoint(%q) = %s, want an error", tt.query, ep.ID)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			if strings.ContainsAny(err.Error(), "\x1b\x07") {
				t.Errorf("error %q holds control characters", err)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	ep := snapshot().Endpoints[0]
	tests := []struct {
		name, query string
		want        string
		wantErr     string
	}{
		{name: "by id", query: "firefox@139.0.1", want: "firefox@139.0.1"},
		{name: "by the name of its only version", query: "firefox", want: "firefox@139.0.1"},
		{name: "by name, in another case", query: "google.chrome", want: "Google.Chrome@131.0.6778.86"},
		{name: "a KB by its id in lower case", query: "kb5034441", want: "KB5034441"},
		{name: "a name with several versions", query: "curl",
			wantErr: `endpoint acme-mac-01 reports 2 versions of "curl": curl@8.5.0 (installed), curl@8.6.0 (available); give --update one of these ids`},
		{name: "no such update, near misses listed", query: "chrome",
			wantErr: `endpoint acme-mac-01 reports no update with the id or name "chrome"; did you mean Google.Chrome@131.0.6778.86?`},
		{name: "no such update", query: "thunderbird",
			wantErr: `endpoint acme-mac-01 reports no update with the id or name "thunderbird"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := Update(ep, tt.query)
			if tt.want != "" {
				if err != nil || u.ID != tt.want {
					t.Fatalf("Update(%q) = %v, %v; want %s", tt.query, u, err, tt.want)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("Update(%q) error %v\nwant %s", tt.query, err, tt.wantErr)
			}
		})
	}
}
