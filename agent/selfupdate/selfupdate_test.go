package selfupdate

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
)

// release is a release served from memory: its files by name.
type release map[string][]byte

func (r release) fetch(ctx context.Context, version, name string, w io.Writer, max int64) error {
	b, ok := r[name]
	if !ok {
		return fmt.Errorf("%s/%s: not found", version, name)
	}
	if int64(len(b)) > max {
		return fmt.Errorf("more than %d bytes", max)
	}
	_, err := w.Write(b)
	return err
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// signed is release version with binary for linux/amd64, signed by key.
func signed(t *testing.T, key ed25519.PrivateKey, version string, binary []byte) release {
	t.Helper()
	sum := sha256.Sum256(binary)
	name := protocol.ReleaseBinary("linux", "amd64")
	m, err := json.Marshal(protocol.Release{Version: version, Files: []protocol.ReleaseFile{{Name: name, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(binary))}}})
	if err != nil {
		t.Fatal(err)
	}
	return release{protocol.ReleaseManifest: m, protocol.ReleaseSignature: ed25519.Sign(key, m), name: binary}
}

type fixture struct {
	dir, exe string
	now      time.Time
	pub      ed25519.PublicKey
	priv     ed25519.PrivateKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), now: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	f.exe = filepath.Join(f.dir, "patch-agent")
	if err := os.WriteFile(f.exe, []byte("old binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.pub, f.priv = newKey(t)
	return f
}

// updater is the updater of the binary running version.
func (f *fixture) updater(t *testing.T, version string) *Updater {
	t.Helper()
	u, err := New(Config{Key: f.pub, StateDir: f.dir, Executable: f.exe, Running: version, GOOS: "linux", GOARCH: "amd64",
		ConfirmTimeout: 10 * time.Minute, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) binary(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(f.exe)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInstallRefuses(t *testing.T) {
	_, other := newKey(t)
	for _, tc := range []struct {
		name    string
		version string
		rel     func(f *fixture) release
		want    string
	}{
		{name: "signed by another key", version: "1.1.0", want: "does not verify with the release key",
			rel: func(f *fixture) release { return signed(t, other, "1.1.0", []byte("new binary")) }},
		{name: "a lower version", version: "0.9.0", want: "not above the running 1.0.0",
			rel: func(f *fixture) release { return signed(t, f.priv, "0.9.0", []byte("old")) }},
		{name: "the same version", version: "1.0.0", want: "not above the running 1.0.0",
			rel: func(f *fixture) release { return signed(t, f.priv, "1.0.0", []byte("same")) }},
		{name: "a corrupted download", version: "1.1.0", want: "has SHA-256",
			rel: func(f *fixture) release {
				r := signed(t, f.priv, "1.1.0", []byte("new binary"))
				r[protocol.ReleaseBinary("linux", "amd64")] = []byte("new binarY")
				return r
			}},
		{name: "a truncated download", version: "1.1.0", want: "the signed release says 10",
			rel: func(f *fixture) release {
				r := signed(t, f.priv, "1.1.0", []byte("new binary"))
				r[protocol.ReleaseBinary("linux", "amd64")] = []byte("new")
				return r
			}},
		{name: "a manifest of another version", version: "1.2.0", want: "is version 1.1.0, not 1.2.0",
			rel: func(f *fixture) release { return signed(t, f.priv, "1.1.0", []byte("new binary")) }},
		{name: "no binary for this platform", version: "1.1.0", want: "no binary for linux/amd64",
			rel: func(f *fixture) release {
				r := signed(t, f.priv, "1.1.0", []byte("new binary"))
				var m protocol.Release
				_ = json.Unmarshal(r[protocol.ReleaseManifest], &m)
				m.Files[0].Name = protocol.ReleaseBinary("windows", "amd64")
				b, _ := json.Marshal(m)
				r[protocol.ReleaseManifest], r[protocol.ReleaseSignature] = b, ed25519.Sign(f.priv, b)
				return r
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			u := f.updater(t, "1.0.0")
			err := u.Install(context.Background(), tc.version, tc.rel(f).fetch, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Install: %v, want an error containing %q", err, tc.want)
			}
			if got := f.binary(t); got != "old binary" {
				t.Errorf("the binary is %q after a refusal, want the old one", got)
			}
			if s, err := u.Load(); err != nil || s.Pending != nil {
				t.Errorf("state after a refusal: %+v, %v; want nothing pending", s, err)
			}
			entries, _ := os.ReadDir(f.dir)
			if len(entries) != 1 {
				t.Errorf("the directory holds %d files after a refusal, want only the binary", len(entries))
			}
		})
	}
}

// TestUpdateLife follows an update from the swap to its end, by way of
// the starts of the binaries and the clock.
func TestUpdateLife(t *testing.T) {
	type step struct {
		running string        // the version of the binary that starts
		after   time.Duration // time since the swap
		want    Outcome
		// then is what the agent does after Begin: confirm, rollback
		// (the timer ran out), resolve, or nothing.
		then string
	}
	for _, tc := range []struct {
		name        string
		steps       []step
		wantBinary  string
		wantPending bool
		wantReason  string
		wantBlocked bool
	}{
		{
			name:       "the new binary checks in",
			steps:      []step{{running: "1.1.0", after: time.Second, want: Waiting, then: "confirm"}, {running: "1.1.0", after: time.Hour, want: None}},
			wantBinary: "new binary",
		},
		{
			name: "the new binary does not check in before the timer runs out",
			steps: []step{
				{running: "1.1.0", after: time.Second, want: Waiting, then: "rollback"},
				{running: "1.0.0", after: 11 * time.Minute, want: Failed, then: "resolve"},
			},
			wantBinary: "old binary", wantReason: "update to 1.1.0 rolled back: no check-in within 10m", wantBlocked: true,
		},
		{
			name: "the new binary starts after its deadline",
			steps: []step{
				{running: "1.1.0", after: 11 * time.Minute, want: Restart},
				{running: "1.0.0", after: 12 * time.Minute, want: Failed, then: "resolve"},
			},
			wantBinary: "old binary", wantReason: "update to 1.1.0 rolled back: no check-in within 10m", wantBlocked: true,
		},
		{
			name: "the new binary keeps crashing before it checks in",
			steps: []step{
				{running: "1.1.0", after: time.Second, want: Waiting}, {running: "1.1.0", after: 2 * time.Second, want: Waiting},
				{running: "1.1.0", after: 3 * time.Second, want: Waiting}, {running: "1.1.0", after: 4 * time.Second, want: Restart},
				{running: "1.0.0", after: 5 * time.Second, want: Failed},
			},
			wantBinary: "old binary", wantPending: true, wantReason: "update to 1.1.0 rolled back: no check-in after 3 starts",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			swapped := f.now
			if err := f.updater(t, "1.0.0").Install(context.Background(), "1.1.0", signed(t, f.priv, "1.1.0", []byte("new binary")).fetch, json.RawMessage(`{"job":"j1"}`)); err != nil {
				t.Fatal(err)
			}
			if got := f.binary(t); got != "new binary" {
				t.Fatalf("after Install the binary is %q", got)
			}
			if b, err := os.ReadFile(f.exe + PreviousSuffix); err != nil || string(b) != "old binary" {
				t.Fatalf("the previous binary: %q, %v", b, err)
			}
			var last *Pending
			for i, s := range tc.steps {
				f.now = swapped.Add(s.after)
				u := f.updater(t, s.running)
				out, p, err := u.Begin()
				if err != nil {
					t.Fatalf("step %d: Begin: %v", i, err)
				}
				if out != s.want {
					t.Fatalf("step %d (%s after the swap, running %s): outcome %d, want %d", i, s.after, s.running, out, s.want)
				}
				if p != nil {
					last = p
					if string(p.Job) != `{"job":"j1"}` {
						t.Errorf("step %d: the pending job is %s", i, p.Job)
					}
				}
				switch s.then {
				case "confirm":
					err = u.Confirm()
				case "rollback":
					err = u.Rollback()
				case "resolve":
					err = u.Resolve()
				}
				if err != nil {
					t.Fatalf("step %d: %s: %v", i, s.then, err)
				}
			}
			if got := f.binary(t); got != tc.wantBinary {
				t.Errorf("the binary in the end is %q, want %q", got, tc.wantBinary)
			}
			st, err := f.updater(t, "1.0.0").Load()
			if err != nil {
				t.Fatal(err)
			}
			if (st.Pending != nil) != tc.wantPending {
				t.Errorf("pending in the end: %+v, want pending %v", st.Pending, tc.wantPending)
			}
			if tc.wantReason != "" && (last == nil || last.RolledBack != tc.wantReason) {
				t.Errorf("the reason: %+v, want %q", last, tc.wantReason)
			}
			if tc.wantBlocked {
				err := f.updater(t, "1.0.0").Install(context.Background(), "1.1.0", signed(t, f.priv, "1.1.0", []byte("new binary")).fetch, nil)
				if err == nil || !strings.Contains(err.Error(), "rolled back on this endpoint before") {
					t.Errorf("installing the rolled-back version again: %v, want a refusal", err)
				}
			}
		})
	}
}
