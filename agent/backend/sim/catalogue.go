package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/patchline/patchline/protocol"
)

// cvssBands are the CVSS ranges of each severity.
var cvssBands = map[string][2]float64{"critical": {9.0, 9.8}, "important": {7.0, 8.9}, "moderate": {4.0, 6.9}, "low": {2.0, 3.9}}

// Severity mixes: Windows cumulative updates are rated by their worst fix,
// so they are mostly critical; packages spread over all ratings.
var (
	cumulativeSeverities = []string{"critical", "critical", "important"}
	anySeverity          = []string{"critical", "important", "important", "moderate", "moderate", "low"}
)

// cves draws n CVE ids of the release's year.
func cves(rng *rand.Rand, released time.Time, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("CVE-%d-%05d", released.Year(), 20000+rng.IntN(40000))
	}
	return out
}

// security fills in severity (drawn from mix), a CVSS score in that
// severity's band, CVEs and the known-exploited flag of a security update.
func security(rng *rand.Rand, u *protocol.Update, mix []string) {
	u.Category = "security"
	u.Severity = mix[rng.IntN(len(mix))]
	band := cvssBands[u.Severity]
	u.CVSS = float64(int((band[0]+rng.Float64()*(band[1]-band[0]))*10)) / 10
	u.CVEs = cves(rng, u.Released, 1+rng.IntN(4))
	u.KnownExploited = u.Severity == "critical" && rng.IntN(4) == 0
}

// windowsCatalogue makes a Windows 11 machine's updates: three months of
// cumulative, .NET and servicing-stack updates (the older months mostly
// installed, and each cumulative update requiring its month's servicing
// stack), a Defender definition update, the malicious software removal
// tool, a driver and a feature enablement package.
func windowsCatalogue(rng *rand.Rand, now time.Time) []*protocol.Update {
	kbBase := 5040000 + rng.IntN(20000)
	var us []*protocol.Update
	add := func(kb int, title, category string, released time.Time, reboot, installed bool) *protocol.Update {
		id := fmt.Sprintf("KB%d", kb)
		u := &protocol.Update{ID: id, Source: "windows-update", Name: id, Title: fmt.Sprintf("%s (%s)", title, id),
			Version: "1", Category: category, Released: released, RebootRequired: reboot, Installed: installed}
		if installed {
			u.InstalledVersion = u.Version
		}
		us = append(us, u)
		return u
	}
	for m := 2; m >= 0; m-- {
		released := now.AddDate(0, 0, -30*m-rng.IntN(10)).Truncate(24 * time.Hour)
		month := released.Format("2006-01")
		// The newest month is never installed; older ones mostly are, so
		// some machines drift.
		installed := m > 0 && rng.IntN(5) > 0
		kb := kbBase + 100*(2-m)
		ssu := add(kb, month+" Servicing Stack Update for Windows 11 Version 24H2 for x64-based Systems", "security", released, false, installed)
		ssu.Severity = "moderate"
		lcu := add(kb+1, month+" Cumulative Update for Windows 11 Version 24H2 for x64-based Systems", "", released, true, installed)
		security(rng, lcu, cumulativeSeverities)
		lcu.Requires = []string{ssu.ID}
		net := add(kb+2, month+" Cumulative Update for .NET Framework 3.5 and 4.8.1 for Windows 11, version 24H2 for x64", "", released, false, installed && rng.IntN(3) > 0)
		security(rng, net, cumulativeSeverities)
	}
	add(2267602, fmt.Sprintf("Security Intelligence Update for Microsoft Defender Antivirus - Version 1.%d.%d.0", 420+rng.IntN(20), rng.IntN(400)),
		"bugfix", now.Add(-time.Duration(1+rng.IntN(20))*time.Hour), false, false)
	add(890830, fmt.Sprintf("Windows Malicious Software Removal Tool x64 - v5.%d", 120+rng.IntN(20)), "bugfix", now.AddDate(0, 0, -rng.IntN(25)).Truncate(24*time.Hour), false, false)
	add(kbBase+900+rng.IntN(99), "Intel Corporation - System - 10.1.19.2", "driver", now.AddDate(0, 0, -40-rng.IntN(60)).Truncate(24*time.Hour), true, false)
	add(kbBase+999, "Feature update enablement package for Windows 11, version 25H2", "feature", now.AddDate(0, 0, -rng.IntN(50)).Truncate(24*time.Hour), true, false)
	sortByName(us)
	return us
}

// pkgTemplate is a package a simulated machine may have, with the version
// installed and the one an upgrade would bring.
type pkgTemplate struct {
	name, installed, candidate string
	// security says whether the candidate is a security fix.
	security bool
	reboot   bool
}

var aptPackages = []pkgTemplate{
	{"bash", "5.2.15-2+b7", "5.2.15-2+b8", false, false},
	{"curl", "7.88.1-10+deb12u8", "7.88.1-10+deb12u12", true, false},
	{"libc6", "2.36-9+deb12u9", "2.36-9+deb12u10", true, false},
	{"libssl3", "3.0.15-1~deb12u1", "3.0.16-1~deb12u1", true, false},
	{"linux-image-amd64", "6.1.124-1", "6.1.128-1", true, true},
	{"nginx", "1.22.1-9", "1.22.1-9+deb12u1", true, false},
	{"openssh-server", "1:9.2p1-2+deb12u4", "1:9.2p1-2+deb12u5", true, false},
	{"openssl", "3.0.15-1~deb12u1", "3.0.16-1~deb12u1", true, false},
	{"sudo", "1.9.13p3-1+deb12u1", "1.9.13p3-1+deb12u2", true, false},
	{"systemd", "252.33-1~deb12u1", "252.36-1~deb12u1", false, false},
	{"tzdata", "2024a-0+deb12u1", "2025a-0+deb12u1", false, false},
	{"vim", "2:9.0.1378-2", "2:9.0.1378-2+deb12u2", true, false},
}

var brewPackages = []pkgTemplate{
	{"curl", "8.11.1", "8.14.1", true, false},
	{"firefox", "128.0.3", "139.0.1", true, false},
	{"git", "2.45.2", "2.49.0", true, false},
	{"google-chrome", "126.0.6478.127", "137.0.7151.69", true, false},
	{"jq", "1.7.1", "1.8.0", false, false},
	{"node", "22.3.0", "24.1.0", false, false},
	{"openssl@3", "3.3.2", "3.5.0", true, false},
	{"python@3.13", "3.13.1", "3.13.3", false, false},
	{"wget", "1.24.5", "1.25.0", false, false},
}

// packageCatalogue makes a package machine's updates: every template
// installed at its old version, and for about two in three of them the
// upgrade, released within the last 45 days.
func packageCatalogue(rng *rand.Rand, now time.Time, source string, templates []pkgTemplate) []*protocol.Update {
	var us []*protocol.Update
	for _, p := range templates {
		us = append(us, &protocol.Update{ID: p.name + "@" + p.installed, Source: source, Name: p.name,
			Version: p.installed, InstalledVersion: p.installed, RebootRequired: p.reboot, Installed: true,
			Released: now.AddDate(0, 0, -60-rng.IntN(300)).Truncate(24 * time.Hour)})
		if rng.IntN(3) == 0 {
			continue
		}
		u := &protocol.Update{ID: p.name + "@" + p.candidate, Source: source, Name: p.name, Version: p.candidate,
			InstalledVersion: p.installed, Category: "bugfix", RebootRequired: p.reboot,
			Released: now.Add(-time.Duration(rng.IntN(45*24)) * time.Hour).Truncate(time.Hour)}
		if p.security {
			security(rng, u, anySeverity)
		}
		us = append(us, u)
	}
	sortByName(us)
	return us
}
