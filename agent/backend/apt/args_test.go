package apt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/patchline/patchline/protocol"
)

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		// rule is part of the error; empty when the name is accepted.
		rule string
	}{
		{"openssl", ""},
		{"libstdc++6", ""},
		{"g++-12", ""},
		{"g++", ""},
		{"bonnie++", ""},
		{"python3.11", ""},
		{"linux-image-6.1.0-28-amd64", ""},
		{"libc6:i386", ""},
		{"libgcc-s1:hurd-i386", ""},
		{"7zip", ""},

		{"", "it is empty"},
		{"a", "at least two (Debian policy 5.6.1)"},
		{"-oAPT::Get::Purge=1", "must start with a lowercase letter or digit"},
		{"--purge", "must start with a lowercase letter or digit"},
		{".hello", "must start with a lowercase letter or digit"},
		{"+hello", "must start with a lowercase letter or digit"},
		{"?name(hello)", "must start with a lowercase letter or digit"},
		{"~nhello", "must start with a lowercase letter or digit"},
		{"Hello", "must start with a lowercase letter or digit"},
		{"hellO", "contains 'O'"},
		{"h+llo*", "contains '*'"},
		{"hel?o", "contains '?'"},
		{"hel[l]o", "contains '['"},
		{"^hello", "must start with a lowercase letter or digit"},
		{"hello$", "contains '$'"},
		{"hello|bash", "contains '|'"},
		{"hello^", "contains '^'"},
		{"hello_", "contains '_'"},
		{"hello=1.0-1", "contains '='"},
		{"hello/bookworm-security", "contains '/'"},
		{"hello world", "contains ' '"},
		{"hello\n", `contains '\n'`},
		{"héllo", "contains 'é'"},
		{"hello-", `ends in "-", which apt-get reads as "remove"`},
		{"libc6:", "architecture \"\" is not a dpkg architecture name"},
		{"libc6:AMD64", "is not a dpkg architecture name"},
		{"libc6:amd64:i386", "is not a dpkg architecture name"},
		{"libc6:amd64-", "is not a dpkg architecture name"},
		{"libc6:any", "is a wildcard"},
		{"libc6:linux-any", "is a wildcard"},
		{"libc6:any-amd64", "is a wildcard"},
		{":amd64", "it is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkName(tc.name)
			switch {
			case tc.rule == "" && err != nil:
				t.Errorf("checkName(%q) = %v, want it accepted", tc.name, err)
			case tc.rule != "" && (err == nil || !strings.Contains(err.Error(), tc.rule)):
				t.Errorf("checkName(%q) = %v, want an error saying %q", tc.name, err, tc.rule)
			}
		})
	}
}

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		version string
		rule    string // part of the error; empty when accepted
	}{
		{"1:9.2p1-2+deb12u3", ""},
		{"3.0.15-1~deb12u1", ""},
		{"2.36-9+deb12u9", ""},
		{"1.0+dfsg-1", ""},
		{"2025a-0+deb12u1", ""},
		{"5.2.15-2+b7", ""},
		{"6.1.128-1", ""},
		{"1.0", ""},                    // a native package: no revision
		{"1.0-1-2", ""},                // "-" in upstream, before the revision
		{"2:1.2:3-1", ""},              // ":" in upstream, after an epoch
		{"12.2.0-14+deb12u1+", ""},     // gcc-bpf in Debian 12: a trailing "+" is apt-get's "install"
		{"2.4.0+dfsg-1~", ""},          // ruby-prawn in Debian 12
		{"1.0~rc1-1ubuntu0.22.04", ""}, // Ubuntu's revisions

		{"", "it is empty"},
		{"1.0-1-", `it ends in "-"`},
		{"1.0-", `it ends in "-"`},
		{"-1.0", "its upstream version is empty"},
		{"--force-yes", `upstream version "--force" must start with a digit`},
		{"v1.0-1", `upstream version "v1.0" must start with a digit`},
		{" 1.0", `must start with a digit`},
		{"1.0 -o", `upstream version "1.0 " contains ' '`},
		{"1.0-1 ", `Debian revision "1 " contains ' '`},
		{"1.0\t", `contains '\t'`},
		{":1.0", `epoch "" (before the first ":") is not a number`},
		{"a:1.0", `epoch "a" (before the first ":") is not a number`},
		{"1:", "its upstream version is empty"},
		{"1.0:1-1", `epoch "1.0" (before the first ":") is not a number`},
		{"1.0_1", `contains '_'`},
		{"1.0-1_1", `Debian revision "1_1" contains '_'`},
		{"1.0-1:1", `epoch "1.0-1" (before the first ":") is not a number`},
		{"1:1.0-1:1", `Debian revision "1:1" contains ':'`},
		{"1.0*", `contains '*'`},
		{"1.0-1/stable", `contains '/'`},
		{"1.0=2", `contains '='`},
		{"1.0-é", `contains 'é'`},
	}
	for _, tc := range tests {
		t.Run(tc.version, func(t *testing.T) {
			err := checkVersion(tc.version)
			switch {
			case tc.rule == "" && err != nil:
				t.Errorf("checkVersion(%q) = %v, want it accepted", tc.version, err)
			case tc.rule != "" && (err == nil || !strings.Contains(err.Error(), tc.rule)):
				t.Errorf("checkVersion(%q) = %v, want an error saying %q", tc.version, err, tc.rule)
			}
		})
	}
}

func TestCheckNamesTheUpdateAndField(t *testing.T) {
	tests := []struct {
		update protocol.Update
		want   string
	}{
		{protocol.Update{ID: "openssl@3.0.16-1~deb12u1", Name: "openssl", Version: "3.0.16-1~deb12u1"}, ""},
		{protocol.Update{ID: "x", Name: "hell.", Version: "1.0-1-"}, `update "x": version "1.0-1-" is not a Debian version: it ends in "-": its Debian revision, after the last "-", is empty (Debian policy 5.6.12), and apt-get reads a trailing "-" as "remove"`},
		{protocol.Update{ID: "y", Name: "Hello", Version: "1.0-1"}, `update "y": name "Hello" is not a Debian package name: it must start with a lowercase letter or digit (Debian policy 5.6.1)`},
	}
	for _, tc := range tests {
		got := ""
		if err := Check(&tc.update); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("Check(%+v) = %q, want %q", tc.update, got, tc.want)
		}
	}
}

// FuzzAptArgs checks that whatever a job says, what Check accepts makes an
// apt-get argument that holds one name and one version, and nothing apt-get
// reads as an option, a removal or a second argument.
func FuzzAptArgs(f *testing.F) {
	// Seeds: the recorded packages and upgrades of Debian 12 and Ubuntu
	// 22.04 endpoints.
	recorded := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	installed, err := parseInstalled(recorded("dpkg-query-bookworm.txt"), "amd64")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range installed {
		f.Add(p.name, p.version)
	}
	for _, file := range []string{"simulate-bookworm.txt", "simulate-jammy.txt"} {
		ups, err := parseSimulation(recorded(file))
		if err != nil {
			f.Fatal(err)
		}
		for _, u := range ups {
			f.Add(u.name, u.candidate)
		}
	}
	f.Add("hello", "1.0-1-")
	f.Add("hell.", "1.0-2")
	f.Add("-o", "1 -o")
	f.Add("libc6:any", "1:2:3-4~")
	f.Fuzz(func(t *testing.T, name, version string) {
		if Check(&protocol.Update{ID: "fuzz", Name: name, Version: version}) != nil {
			return
		}
		args := installArgs(name, version)
		arg := args[len(args)-1]
		if args[len(args)-2] != "--" {
			t.Fatalf("installArgs(%q, %q) = %q: the package does not follow --", name, version, args)
		}
		switch {
		case strings.IndexFunc(arg, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) || r > unicode.MaxASCII }) >= 0:
			t.Errorf("accepted %q: whitespace, a control or a non-ASCII character", arg)
		case strings.HasPrefix(name, "-") || strings.HasPrefix(version, "-"):
			t.Errorf("accepted %q: a leading -", arg)
		case strings.HasSuffix(name, "-") || strings.HasSuffix(version, "-"):
			t.Errorf("accepted %q: a trailing -", arg)
		case strings.LastIndexAny(arg, "/=") != len(name):
			t.Errorf("accepted %q: apt-get would not split it into %q and %q", arg, name, version)
		case strings.ContainsAny(name, "?*|[]^$!~_") || strings.ContainsAny(version, "/=_"):
			t.Errorf("accepted %q: a pattern or operation character", arg)
		}
	})
}
