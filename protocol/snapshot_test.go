package protocol

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/golden"
)

func readSnapshot(t *testing.T) *Snapshot {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := DecodeSnapshot(f)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return s
}

func TestDecodeSnapshot(t *testing.T) {
	s := readSnapshot(t)
	if got, want := len(s.Endpoints), 3; got != want {
		t.Fatalf("endpoints = %d, want %d", got, want)
	}
	fs := s.Endpoints[0]
	kb := fs.Updates[0]
	if kb.ID != "KB5044281" || !kb.KnownExploited || kb.CVSS != 9.8 {
		t.Errorf("first update = %+v", kb)
	}
	wantAt := time.Date(2026, 11, 11, 2, 14, 0, 0, time.UTC)
	if len(kb.Attempts) != 1 || !kb.Attempts[0].At.Equal(wantAt) || kb.Attempts[0].Result != ResultFailed {
		t.Errorf("attempts = %+v, want one failed at %v", kb.Attempts, wantAt)
	}
	if kb.InstalledAt != nil {
		t.Errorf("installedAt = %v, want nil", kb.InstalledAt)
	}
	if at := fs.Updates[1].InstalledAt; at == nil || !at.Equal(time.Date(2026, 10, 15, 2, 20, 41, 0, time.UTC)) {
		t.Errorf("installedAt = %v", at)
	}
	if job := s.Endpoints[1].Updates[0].InFlightJob; job == nil || *job != "job-81c2" {
		t.Errorf("inFlightJob = %v, want job-81c2", job)
	}
	if got := fs.Labels["role"]; got != "fileserver" {
		t.Errorf("labels.role = %q", got)
	}
}

// TestEncodeGolden checks that encoding is deterministic and that a snapshot
// survives a round trip.
func TestEncodeGolden(t *testing.T) {
	s := readSnapshot(t)
	// Reverse the order: the output must not depend on it.
	for i, j := 0, len(s.Endpoints)-1; i < j; i, j = i+1, j-1 {
		s.Endpoints[i], s.Endpoints[j] = s.Endpoints[j], s.Endpoints[i]
	}
	var buf bytes.Buffer
	if err := EncodeSnapshot(&buf, s); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "snapshot.golden.json"), buf.Bytes())
	again, err := DecodeSnapshot(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("DecodeSnapshot(EncodeSnapshot(s)): %v", err)
	}
	var buf2 bytes.Buffer
	if err := EncodeSnapshot(&buf2, again); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(buf.String(), buf2.String()); diff != "" {
		t.Errorf("round trip changed the snapshot (-first +second):\n%s", diff)
	}
}

func TestDecodeErrors(t *testing.T) {
	base, err := os.ReadFile(filepath.Join("testdata", "snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	// edit replaces the first occurrence of old in the fixture.
	edit := func(old, new string) string {
		if !strings.Contains(string(base), old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(string(base), old, new, 1)
	}
	tests := []struct {
		name string
		json string
		want string
	}{
		{"wrong apiVersion", edit(`"patchline.dev/state/v1"`, `"patchline.dev/state/v0"`),
			`apiVersion: got "patchline.dev/state/v0", want "patchline.dev/state/v1"`},
		{"missing apiVersion", `{"endpoints": []}`, `apiVersion: got "", want "patchline.dev/state/v1"`},
		{"endpoint without id", edit(`"id": "ep-acme-ws17"`, `"id": ""`), `endpoints[1].id: missing`},
		{"endpoint without client", edit(`"client": "globex"`, `"client": ""`), `endpoints[2].client: missing`},
		{"duplicate endpoint id", edit(`"id": "ep-globex-web1"`, `"id": "ep-acme-fs01"`),
			`endpoints[2].id: duplicate endpoint id "ep-acme-fs01" (also endpoints[0])`},
		{"update without id", edit(`"id": "KB5043936"`, `"id": ""`), `endpoints[0].updates[1].id: missing`},
		{"duplicate update id on one endpoint", edit(`"id": "KB5043936"`, `"id": "KB5044281"`),
			`endpoints[0].updates[1].id: duplicate update id "KB5044281" (also updates[0])`},
		{"unknown severity", edit(`"severity": "important",
          "cvss": 7.4,
          "knownExploited": false,
          "released": "2026-11-05T12:00:00Z",
          "rebootRequired": false,
          "installed"`, `"severity": "hi",
          "cvss": 7.4,
          "knownExploited": false,
          "released": "2026-11-05T12:00:00Z",
          "rebootRequired": false,
          "installed"`),
			`endpoints[2].updates[1].severity: unknown severity "hi" (want low, moderate, important or critical)`},
		{"unknown source", edit(`"source": "winget"`, `"source": "snap"`),
			`endpoints[1].updates[0].source: unknown source "snap" (want apt, winget, windows-update, choco or brew)`},
		{"unknown category", edit(`"category": "critical"`, `"category": "optional"`),
			`endpoints[0].updates[1].category: unknown category "optional" (want security, critical, bugfix, feature or driver; only an installed package may leave it empty)`},
		{"unknown attempt result", edit(`"result": "failed"`, `"result": "oops"`),
			`endpoints[0].updates[0].attempts[0].result: unknown result "oops" (want succeeded, failed, refused, unknown, deferred-by-guard or hook-failed)`},
		{"bad lastSeen time", edit(`"lastSeen": "2026-11-12T08:58:40Z"`, `"lastSeen": "yesterday"`),
			`endpoints[2].lastSeen: bad time "yesterday"`},
		{"bad installedAt time", edit(`"installedAt": "2026-10-15T02:20:41Z"`, `"installedAt": "2026-10-15"`),
			`endpoints[0].updates[1].installedAt: bad time "2026-10-15"`},
		{"bad attempt time", edit(`"at": "2026-11-11T02:14:00Z"`, `"at": "2026-11-11 02:14"`),
			`endpoints[0].updates[0].attempts[0].at: bad time`},
		{"cvss is a string", edit(`"cvss": 7.5`, `"cvss": "7.5"`),
			`endpoints[1].updates[0].cvss: cannot use a JSON string as float64`},
		{"misspelt field", edit(`"rebootPending": true`, `"rebootPendng": true`),
			`endpoints[1].rebootPendng: unknown field`},
		{"syntax error names line and column", edit(`"hostname": "acme-ws17",`, `"hostname": "acme-ws17"`),
			`line 55 column 8: invalid character '"' after object key:value pair`},
		{"terminal escape in an update id", edit(`"id": "KB5043936"`, `"id": "KB5043936\u001b[2J"`),
			`endpoints[0].updates[1].id: control character U+001B at byte 9`},
		{"right-to-left override in a hostname", edit(`"hostname": "acme-ws17"`, `"hostname": "acme-\u202e71sw"`),
			`endpoints[1].hostname: invisible format character U+202E at byte 5`},
		{"NUL in a label value", edit(`"role": "fileserver"`, `"role": "file\u0000server"`),
			`endpoints[0].labels["role"]: control character U+0000 at byte 4`},
		{"newline in a title", edit(`"title": "Servicing stack update`, `"title": "Servicing\n<!-- stack update`),
			`endpoints[0].updates[1].title: control character U+000A at byte 9`},
		{"something that is not a CVE id", edit(`"CVE-2026-43572"`, `"CVE-2026-43572 **urgent**"`),
			`endpoints[0].updates[0].cves[1]: "CVE-2026-43572 **urgent**" is not a CVE id (want CVE-YYYY-NNNN)`},
		{"terminal escape in an attempt's error", edit(`"error": "0x800f0922: servicing stack"`, `"error": "0x800f0922\u001b[8m"`),
			`endpoints[0].updates[0].attempts[0].error: control character U+001B at byte 10`},
		{"update id over the bound", edit(`"id": "KB5043936"`, `"id": "KB`+strings.Repeat("9", MaxIDBytes)+`"`),
			`endpoints[0].updates[1].id: 514 bytes, at most 512 are accepted`},
		{"two documents", string(base) + "{}", `data after the snapshot`},
		{"empty input", ``, `EOF`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSnapshot(strings.NewReader(tt.json))
			if err == nil {
				t.Fatalf("DecodeSnapshot succeeded, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DecodeSnapshot error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// Generate builds a snapshot of n endpoints with 40 updates each for the
// benchmark.
func generate(n int) *Snapshot {
	s := &Snapshot{APIVersion: SnapshotAPIVersion, GeneratedAt: time.Date(2026, 11, 12, 9, 0, 0, 0, time.UTC)}
	released := time.Date(2026, 11, 10, 18, 0, 0, 0, time.UTC)
	for i := range n {
		ep := &Endpoint{
			ID: fmt.Sprintf("ep-%06d", i), Client: fmt.Sprintf("client-%03d", i%200),
			Hostname: fmt.Sprintf("host-%06d", i), OS: OS{Family: "windows", Version: "10.0.22631"},
			Labels: map[string]string{"ring": []string{"canary", "pilot", "broad"}[i%3]}, LastSeen: s.GeneratedAt,
		}
		for j := range 40 {
			u := &Update{ID: fmt.Sprintf("KB50%05d", j), Source: "windows-update", Name: fmt.Sprintf("KB50%05d", j),
				Version: "10.0.22631.4460", Category: "security", Severity: Severities[j%4], CVSS: 7.5,
				Released: released}
			if (i+j)%3 == 0 {
				at := released.Add(time.Duration(i%48) * time.Hour)
				u.Installed, u.InstalledAt = true, &at
			}
			ep.Updates = append(ep.Updates, u)
		}
		s.Endpoints = append(s.Endpoints, ep)
	}
	return s
}

func BenchmarkDecode(b *testing.B) {
	var buf bytes.Buffer
	if err := EncodeSnapshot(&buf, generate(10_000)); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSnapshot(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	base, err := os.ReadFile(filepath.Join("testdata", "snapshot.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(base)
	f.Add([]byte(`{"apiVersion":"patchline.dev/state/v1","endpoints":[{"id":"a","client":"c","updates":[null]}]}`))
	f.Add([]byte(`{"apiVersion":"patchline.dev/state/v1","endpoints":[null]}`))
	f.Add([]byte(`{"endpoints":[{"updates":[{"attempts":[{"at":1}]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSnapshot(bytes.NewReader(data))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := EncodeSnapshot(&buf, s); err != nil {
			t.Fatalf("EncodeSnapshot of a decoded snapshot: %v", err)
		}
		if _, err := DecodeSnapshot(&buf); err != nil {
			t.Fatalf("DecodeSnapshot(EncodeSnapshot(DecodeSnapshot(data))): %v", err)
		}
	})
}

func TestCategoryMayBeEmptyOnlyWhenInstalled(t *testing.T) {
	snap := func(installed bool) *Snapshot {
		return &Snapshot{APIVersion: SnapshotAPIVersion, Endpoints: []*Endpoint{{ID: "globex-web01", Client: "globex",
			Updates: []*Update{{ID: "libc6@2.36-9+deb12u9", Source: "apt", Name: "libc6", Version: "2.36-9+deb12u9", Installed: installed}}}}}
	}
	if err := snap(true).Validate(); err != nil {
		t.Errorf("installed package without a category: %v", err)
	}
	err := snap(false).Validate()
	if err == nil || !strings.Contains(err.Error(), `endpoints[0].updates[0].category: unknown category ""`) {
		t.Errorf("update to install without a category: %v, want a category error", err)
	}
}

func TestAttemptResults(t *testing.T) {
	tests := []struct {
		result Result
		want   string // "" when valid
	}{
		{ResultSucceeded, ""},
		{ResultFailed, ""},
		{ResultRefused, ""},
		{ResultUnknown, ""},
		{"", `endpoints[0].updates[0].attempts[0].result: unknown result ""`},
		{"interrupted", `endpoints[0].updates[0].attempts[0].result: unknown result "interrupted" (want succeeded, failed, refused, unknown, deferred-by-guard or hook-failed)`},
		{"Unknown", `unknown result "Unknown"`},
	}
	for _, tt := range tests {
		t.Run(string(tt.result), func(t *testing.T) {
			snap := &Snapshot{APIVersion: SnapshotAPIVersion, Endpoints: []*Endpoint{{ID: "acme-ws-001", Client: "acme",
				Updates: []*Update{{ID: "KB5044284", Source: "windows-update", Name: "KB5044284", Category: "security",
					Attempts: []Attempt{{At: time.Date(2026, 11, 24, 3, 10, 0, 0, time.UTC), Result: tt.result, Job: "job-1"}}}}}}}
			err := snap.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v, want a valid snapshot", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate: %v, want an error containing %q", err, tt.want)
			}
			if tt.want != "" {
				return
			}
			// The value survives the codec both ways.
			var buf bytes.Buffer
			if err := EncodeSnapshot(&buf, snap); err != nil {
				t.Fatal(err)
			}
			back, err := DecodeSnapshot(&buf)
			if err != nil {
				t.Fatalf("DecodeSnapshot of an encoded snapshot: %v", err)
			}
			if got := back.Endpoints[0].Updates[0].Attempts[0].Result; got != tt.result {
				t.Errorf("result after the codec = %q, want %q", got, tt.result)
			}
		})
	}
}
