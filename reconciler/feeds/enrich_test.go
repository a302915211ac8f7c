package feeds

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/protocol"
)

func TestEnrich(t *testing.T) {
	set, err := LoadDir(context.Background(), "testdata/feeds")
	if err != nil {
		t.Fatal(err)
	}
	snap := &protocol.Snapshot{Endpoints: []*protocol.Endpoint{
		{ID: "acme-ws-1", OS: protocol.OS{Family: "windows"}, Updates: []*protocol.Update{
			// Palo Alto's PAN-OS CVE in the KEV excerpt stands in for a
			// Windows CVE: what matters is the CVE, not the product.
			{ID: "KB5036000", Source: "windows-update", CVEs: []string{"CVE-2024-3400"}, Severity: "critical"},
			{ID: "KB5036001", Source: "windows-update", CVEs: []string{"CVE-2024-0001"}},
			{ID: "Notepad++.Notepad++@8.6", Source: "winget"},
		}},
		{ID: "acme-srv-1", OS: protocol.OS{Family: "linux", Version: "debian 12"}, Updates: []*protocol.Update{
			{ID: "openssh-server@1:9.2p1-2+deb12u3", Source: "apt", Name: "openssh-server", SourcePackage: "openssh",
				Version: "1:9.2p1-2+deb12u3", InstalledVersion: "1:9.2p1-2+deb12u1"},
		}},
	}}
	Enrich(snap, set)

	k, ok := set.KEV("CVE-2024-3400")
	if !ok {
		t.Fatal("CVE-2024-3400 is not in the KEV excerpt")
	}
	pan := snap.Endpoints[0].Updates[0].Intel
	if pan == nil || len(pan.KEV) != 1 || pan.KEV[0] != (protocol.KEVListing{CVE: "CVE-2024-3400", DateAdded: k.DateAdded, DueDate: k.DueDate}) {
		t.Fatalf("KB5036000's KEV listing: %+v", pan)
	}
	if pan.EPSS != 0.94273 || pan.EPSSCVE != "CVE-2024-3400" || pan.CVSS != 10 || pan.Severity != "critical" || pan.SeverityFrom != "vendor" {
		t.Errorf("KB5036000: EPSS %v (%s), CVSS %v, severity %s (%s); want EPSS 0.94273, NVD's 10.0 and the vendor's critical",
			pan.EPSS, pan.EPSSCVE, pan.CVSS, pan.Severity, pan.SeverityFrom)
	}
	if !snap.Endpoints[0].Updates[0].EffectiveKnownExploited() {
		t.Error("KB5036000 is not known exploited")
	}
	unrated := snap.Endpoints[0].Updates[1]
	if unrated.EffectiveKnownExploited() || unrated.Intel.SeverityFrom != "cvss" ||
		unrated.EffectiveSeverity() != protocol.SeverityForCVSS(unrated.Intel.CVSS) {
		t.Errorf("KB5036001 (no vendor severity): %+v; want a severity derived from NVD's score and not known exploited", unrated.Intel)
	}
	if want := []string{"kev", "epss", "nvd", "debian"}; len(pan.Feeds) != len(want) {
		t.Errorf("feeds stamped: %+v, want %v", pan.Feeds, want)
	}

	ssh := snap.Endpoints[1].Updates[0]
	if diff := cmp.Diff([]string{"CVE-2023-48795", "CVE-2024-6387"}, ssh.Intel.CVEs); diff != "" {
		t.Errorf("CVEs the Debian tracker says openssh 1:9.2p1-2+deb12u3 fixes over deb12u1 (-want +got):\n%s", diff)
	}
	if ssh.Intel.EPSS != 0.55542 || ssh.Intel.CVSS == 0 {
		t.Errorf("openssh: EPSS %v, CVSS %v; want the highest of its CVEs' (0.55542) and NVD's score of CVE-2024-6387", ssh.Intel.EPSS, ssh.Intel.CVSS)
	}
}

func TestEnrichWithoutFeeds(t *testing.T) {
	u := &protocol.Update{ID: "KB1", Source: "windows-update", CVSS: 7.5}
	v := &protocol.Update{ID: "KB2", Source: "windows-update", Severity: "low"}
	Enrich(&protocol.Snapshot{Endpoints: []*protocol.Endpoint{{Updates: []*protocol.Update{u, v}}}}, nil)
	if u.Intel == nil || u.Intel.Severity != "important" || u.Intel.SeverityFrom != "cvss" || len(u.Intel.Feeds) != 0 {
		t.Errorf("no feeds, reported CVSS 7.5, no severity: intel %+v; want important derived from CVSS", u.Intel)
	}
	if v.Intel != nil {
		t.Errorf("no feeds and a vendor severity: intel %+v, want none", v.Intel)
	}
	kept := &protocol.Intel{EPSS: 0.9, Feeds: []protocol.FeedStamp{{Feed: "epss"}}}
	w := &protocol.Update{ID: "KB3", Source: "windows-update", Intel: kept}
	Enrich(&protocol.Snapshot{Endpoints: []*protocol.Endpoint{{Updates: []*protocol.Update{w}}}}, nil)
	if w.Intel != kept {
		t.Errorf("no feeds: a snapshot's own intel became %+v, want it kept", w.Intel)
	}
}

func TestTrackerRelease(t *testing.T) {
	for in, want := range map[string]string{"debian 12": "bookworm", "12.11": "bookworm", "11": "bullseye", "trixie": "trixie", "ubuntu 24.04": "", "": ""} {
		if got := trackerRelease(protocol.OS{Family: "linux", Version: in}); got != want {
			t.Errorf("trackerRelease(%q) = %q, want %q", in, got, want)
		}
	}
}
