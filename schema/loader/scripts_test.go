package loader

import (
	"context"
	"strings"
	"testing"

	"github.com/patchline/patchline/schema"
)

// TestHookScripts loads one client whose hooks name scripts of the
// repository and checks what the scripts' files do to the load: their
// content goes into the client, a change to a script alone changes the
// client's digest, and a script that is missing, too large or not text
// refuses the client.
func TestHookScripts(t *testing.T) {
	base := map[string][]byte{
		schema.ModuleFile:                []byte("module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n"),
		"fleet.cue":                      []byte("package fleet\n\nwindows: weekend: {days: [\"sat\"], start: \"01:00\", duration: \"6h\"}\n"),
		"clients/acme/policy.cue":        []byte("package fleet\n\nclient: {id: \"acme\", name: \"Acme\", timezone: \"UTC\"}\nhooks: {pre: \"scripts/stop.ps1\"}\nrings: [{name: \"all\", select: {}, window: \"weekend\"}]\n"),
		"scripts/stop.ps1":               []byte("Stop-Service EHR\n"),
		"scripts/unrelated/big.bin":      make([]byte, 1<<20),
		"clients/acme/scripts/notes.txt": []byte("not named by any hook\n"),
	}
	with := func(name string, b []byte) map[string][]byte {
		files := make(map[string][]byte, len(base)+1)
		for k, v := range base {
			files[k] = v
		}
		if b == nil {
			delete(files, name)
		} else {
			files[name] = b
		}
		return files
	}
	l := New(Options{Now: testNow})
	load := func(files map[string][]byte) *schema.Fleet {
		t.Helper()
		fleet, err := l.LoadFiles(context.Background(), files, "")
		if err != nil {
			t.Fatal(err)
		}
		return fleet
	}
	first := load(base)
	acme := first.Clients["acme"]
	if acme == nil {
		t.Fatalf("acme did not load: %v", first.Problems)
	}
	pre := acme.Rings[0].Hooks.Pre
	if pre.Content != "Stop-Service EHR\n" || pre.Shell != schema.ShellPowerShell || len(pre.SHA256) != 64 {
		t.Errorf("pre script = %+v, want the file's content, powershell and its SHA-256", pre)
	}
	edited := load(with("scripts/stop.ps1", []byte("Stop-Service EHR -Force\n"))).Clients["acme"]
	if edited == nil || edited.Digest == acme.Digest || edited.Rings[0].Hooks.Pre.SHA256 == pre.SHA256 {
		t.Errorf("editing the script alone kept the digest %s and hash %s", acme.Digest, pre.SHA256)
	}
	if again := load(base).Clients["acme"]; again.Digest != acme.Digest {
		t.Errorf("the same files gave another digest: %s, then %s", acme.Digest, again.Digest)
	}

	refused := []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"missing", with("scripts/stop.ps1", nil), `hook script "scripts/stop.ps1": no such file in the fleet repository at this revision`},
		{"too large", with("scripts/stop.ps1", []byte(strings.Repeat("#", schema.MaxScriptBytes+1))), `hook script "scripts/stop.ps1": 65537 bytes, more than the 64 KiB a script may have`},
		{"not text", with("scripts/stop.ps1", []byte{0xff, 0xfe, 0}), `hook script "scripts/stop.ps1": not text`},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			fleet := load(tc.files)
			if fleet.Clients["acme"] != nil {
				t.Fatal("acme loaded")
			}
			var got []string
			for _, p := range fleet.Problems {
				got = append(got, p.String())
			}
			if joined := strings.Join(got, "\n"); !strings.Contains(joined, "clients/acme/policy.cue:4:9: "+tc.want) {
				t.Errorf("problems:\n%s\nwant one at clients/acme/policy.cue:4:9 saying %q", joined, tc.want)
			}
		})
	}
}
