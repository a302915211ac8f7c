package feeds_test

import (
	"context"
	"fmt"
	"time"

	"github.com/patchline/patchline/reconciler/feeds"
)

// What the feeds say about an update: the CVEs an openssh upgrade on a
// bookworm endpoint fixes, and for each whether it is known to be
// exploited, how likely exploitation is and how severe it is.
func ExampleLoadDir() {
	s, err := feeds.LoadDir(context.Background(), "testdata/feeds")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range s.DebianCVEs("openssh", "bookworm", "1:9.2p1-2+deb12u1", "1:9.2p1-2+deb12u3") {
		fmt.Printf("%s fixed in %s (urgency: %s)\n", c.CVE, c.FixedVersion, c.Urgency)
		if e, ok := s.EPSS(c.CVE); ok {
			fmt.Printf("  EPSS %.3f, percentile %.3f\n", e.Score, e.Percentile)
		}
		if v, ok := s.CVSS(c.CVE); ok {
			fmt.Printf("  CVSS %.1f (v%s, from %s in %s)\n", v.Score, v.Version, v.Source, v.File)
		}
		if _, ok := s.KEV(c.CVE); !ok {
			fmt.Println("  not in CISA's KEV catalog")
		}
	}
	k, _ := s.KEV("CVE-2024-3400")
	fmt.Printf("CVE-2024-3400 known exploited since %s, ransomware: %v\n", k.DateAdded.Format(time.DateOnly), k.Ransomware)
	// Output:
	// CVE-2023-48795 fixed in 1:9.2p1-2+deb12u2 (urgency: not yet assigned)
	//   EPSS 0.555, percentile 0.979
	//   not in CISA's KEV catalog
	// CVE-2024-6387 fixed in 1:9.2p1-2+deb12u3 (urgency: not yet assigned)
	//   EPSS 0.377, percentile 0.970
	//   CVSS 9.8 (v3.1, from cna@example.org in nvdcve-2.0-2024.json)
	//   not in CISA's KEV catalog
	// CVE-2024-3400 known exploited since 2024-04-12, ransomware: true
}
