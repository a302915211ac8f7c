package feeds

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDebianCVEsFixedByAnUpgrade(t *testing.T) {
	s, err := LoadDir(context.Background(), feedDir)
	if err != nil {
		t.Fatal(err)
	}
	nya := "not yet assigned"
	fix := func(cve, release, fixed string) DebianCVE {
		return DebianCVE{CVE: cve, DebianFix: DebianFix{Release: release, Status: "resolved", FixedVersion: fixed, Urgency: nya}}
	}
	tests := []struct {
		name                               string
		pkg, release, installed, candidate string
		want                               []DebianCVE
	}{{
		name: "openssh from the bookworm release to the security update: two fixes",
		pkg:  "openssh", release: "bookworm", installed: "1:9.2p1-2+deb12u1", candidate: "1:9.2p1-2+deb12u3",
		want: []DebianCVE{
			fix("CVE-2023-48795", "bookworm", "1:9.2p1-2+deb12u2"),
			fix("CVE-2024-6387", "bookworm", "1:9.2p1-2+deb12u3"),
		},
	}, {
		name: "a fix already installed does not count again",
		pkg:  "openssh", release: "bookworm", installed: "1:9.2p1-2+deb12u2", candidate: "1:9.2p1-2+deb12u3",
		want: []DebianCVE{fix("CVE-2024-6387", "bookworm", "1:9.2p1-2+deb12u3")},
	}, {
		name: "a fix above the candidate does not count",
		pkg:  "openssh", release: "bookworm", installed: "1:9.2p1-2+deb12u1", candidate: "1:9.2p1-2+deb12u2",
		want: []DebianCVE{fix("CVE-2023-48795", "bookworm", "1:9.2p1-2+deb12u2")},
	}, {
		name: "up to the latest point release: three fixes, the open issue not among them",
		pkg:  "openssh", release: "bookworm", installed: "1:9.2p1-2", candidate: "1:9.2p1-2+deb12u6",
		want: []DebianCVE{
			fix("CVE-2023-48795", "bookworm", "1:9.2p1-2+deb12u2"),
			fix("CVE-2024-6387", "bookworm", "1:9.2p1-2+deb12u3"),
			fix("CVE-2025-26465", "bookworm", "1:9.2p1-2+deb12u5"),
		},
	}, {
		name: "the epoch counts: without it the candidate is older than every fix",
		pkg:  "openssh", release: "bookworm", installed: "1:9.2p1-2", candidate: "9.9p1-1",
	}, {
		name: "a release never affected (fixed_version 0) has nothing to fix",
		pkg:  "xz-utils", release: "bookworm", installed: "5.4.1-1", candidate: "5.4.1-1+deb12u1",
	}, {
		name: "sid: the backdoor's fix by reverting to 5.4.5",
		pkg:  "xz-utils", release: "sid", installed: "5.6.0-0.2", candidate: "5.6.1+really5.4.5-1",
		want: []DebianCVE{fix("CVE-2024-3094", "sid", "5.6.1+really5.4.5-1")},
	}, {
		name: "a downgrade fixes nothing",
		pkg:  "openssh", release: "bookworm", installed: "1:9.2p1-2+deb12u6", candidate: "1:9.2p1-2+deb12u1",
	}, {
		name: "a package the tracker does not list",
		pkg:  "hello", release: "bookworm", installed: "2.10-3", candidate: "2.10-4",
	}, {
		name: "a release the tracker does not list",
		pkg:  "openssh", release: "hamm", installed: "1:9.2p1-2", candidate: "1:9.2p1-2+deb12u6",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := s.DebianCVEs(tt.pkg, tt.release, tt.installed, tt.candidate)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DebianCVEs(%s, %s, %s, %s) (-want +got):\n%s", tt.pkg, tt.release, tt.installed, tt.candidate, diff)
			}
		})
	}
}

func TestDebianFixesOfOneCVE(t *testing.T) {
	s, err := LoadDir(context.Background(), feedDir)
	if err != nil {
		t.Fatal(err)
	}
	want := []DebianFix{
		{Release: "bookworm", Status: "resolved", FixedVersion: "1:9.2p1-2+deb12u5", Urgency: "not yet assigned"},
		{Release: "bullseye", Status: "open", Urgency: "not yet assigned"},
		{Release: "sid", Status: "resolved", FixedVersion: "1:9.9p2-1", Urgency: "not yet assigned"},
		{Release: "trixie", Status: "resolved", FixedVersion: "1:9.9p2-1", Urgency: "not yet assigned"},
	}
	if diff := cmp.Diff(want, s.DebianFixes("openssh", "CVE-2025-26465")); diff != "" {
		t.Errorf("DebianFixes(openssh, CVE-2025-26465) (-want +got):\n%s", diff)
	}
	if got := s.DebianFixes("openssh", "TEMP-0000000-9D8E7F"); got != nil {
		t.Errorf("a TEMP- id is kept: %+v", got)
	}
	if got, want := s.Files(FeedDebian)[0].Entries, 7; got != want {
		t.Errorf("%d (package, CVE) entries, want %d (TEMP- ids left out)", got, want)
	}
}

func TestDebianRefusesABrokenTracker(t *testing.T) {
	good := readTestdata(t, DebianFile)
	tests := []refusal{{
		name:   "the download stopped half way",
		mutate: func(t *testing.T, s string) string { return s[:len(s)/2] },
		want:   "unexpected end of file",
	}, {
		name: "a status the tracker does not use",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"status":"undetermined"`, `"status":"fixed"`)
		},
		path: `["xz-utils"]["CVE-2025-31115"].releases`,
		want: `trixie.status: "fixed" is not resolved, open or undetermined`,
	}, {
		name:   "an advisory id where a CVE id belongs",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, `"CVE-2024-21626"`, `"DSA-5624-1"`) },
		path:   `["runc"]["DSA-5624-1"]`,
		want:   "neither a CVE id nor a TEMP- id",
	}, {
		name:   "a malformed CVE id",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, `"CVE-2024-21626"`, `"CVE-2024-2"`) },
		path:   `["runc"]["CVE-2024-2"]`,
		want:   `"CVE-2024-2" is neither a CVE id`,
	}, {
		name:   "a package listed twice",
		mutate: func(t *testing.T, s string) string { return replaceOnce(t, s, `"runc":{`, `"openssh":{`) },
		path:   `["openssh"]`,
		want:   "appears twice",
	}, {
		name: "a fixed version that is a number",
		mutate: func(t *testing.T, s string) string {
			return replaceOnce(t, s, `"fixed_version":"0"`, `"fixed_version":0`)
		},
		// The decoder names struct fields, not map keys: the
		// release is left out of the path, the offset points at it.
		path: `["openssh"]["CVE-2024-6387"].releases.fixed_version`,
		want: "a JSON number where the format has a string",
	}, {
		name:   "an empty tracker",
		mutate: func(t *testing.T, s string) string { return "{}" },
		want:   "no CVE in the tracker's data",
	}, {
		name:   "a list instead of the packages object",
		mutate: func(t *testing.T, s string) string { return "[" + s + "]" },
		want:   "expected an object",
	}, {
		name:   "an HTML error page",
		mutate: func(t *testing.T, s string) string { return "<html>502 Bad Gateway</html>" },
		want:   "invalid character '<'",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseDebian(context.Background(), DebianFile, strings.NewReader(tt.mutate(t, good)))
			checkRefusal(t, tt, DebianFile, err)
		})
	}
}
