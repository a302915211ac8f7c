package protocol

import (
	"crypto/ed25519"
	"strings"
	"testing"
)

func TestSemver(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.4.2", "1.4.2", 0},
		{"1.4.10", "1.4.9", 1},
		{"1.10.0", "1.9.9", 1},
		{"v2.0.0", "1.99.99", 1},
		{"0.9.0", "1.0.0", -1},
	} {
		a, err := ParseSemver(tc.a)
		if err != nil {
			t.Fatal(err)
		}
		b, err := ParseSemver(tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Compare(b); got != tc.want {
			t.Errorf("%s vs %s: %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	for _, bad := range []string{"", "1.4", "1.4.2.1", "1.4.2-rc1", "devel", "01.4.2", "1.-4.2", "1.4.x"} {
		if _, err := ParseSemver(bad); err == nil {
			t.Errorf("ParseSemver(%q): no error", bad)
		}
	}
}

func TestAgentUpdateID(t *testing.T) {
	id := AgentUpdateID("1.4.2")
	if v, ok := AgentUpdateVersion(id); !ok || v != "1.4.2" {
		t.Errorf("AgentUpdateVersion(%q) = %q, %v", id, v, ok)
	}
	// An apt package of the same name is another update.
	if _, ok := AgentUpdateVersion("patch-agent@1.4.2"); ok {
		t.Error("an apt package named patch-agent reads as the agent update")
	}
}

func TestVerifyRelease(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	good := []byte(`{"version":"1.4.2","files":[{"name":"patch-agent_linux_amd64","sha256":"` + strings.Repeat("ab", 32) + `","size":10}]}`)
	for _, tc := range []struct {
		name     string
		key      ed25519.PublicKey
		manifest []byte
		want     string
	}{
		{"signed by the key", pub, good, ""},
		{"signed by another key", other, good, "does not verify"},
		{"a path in a file name", pub, []byte(`{"version":"1.4.2","files":[{"name":"../patch-agent","sha256":"` + strings.Repeat("ab", 32) + `","size":10}]}`), "plain file name"},
		{"not a release version", pub, []byte(`{"version":"latest","files":[]}`), "MAJOR.MINOR.PATCH"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyRelease(tc.key, tc.manifest, ed25519.Sign(priv, tc.manifest))
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("VerifyRelease: %v, want %q", err, tc.want)
			}
		})
	}
}
