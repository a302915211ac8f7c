// Package feeds reads the public vulnerability feeds that tell Patchline
// more about an update than the endpoint's own tool does: whether its CVEs
// are known to be exploited, how likely exploitation is, how severe they
// are, and which Debian version fixes which CVE. The controller and
// patchctl use it to enrich the updates endpoints report.
//
// Four feeds, each kept in one directory under the publisher's own file
// name and format:
//
//   - CISA's Known Exploited Vulnerabilities catalog,
//     known_exploited_vulnerabilities.json. Licence: CC0 1.0.
//   - FIRST's daily EPSS scores, epss_scores-current.csv.gz (or .csv).
//     Terms: free to use, with attribution to FIRST's EPSS.
//   - NVD's CVE JSON 2.0 data feeds, nvdcve-2.0-*.json(.gz), yearly files
//     plus "modified" and "recent" ones merged by each CVE's lastModified.
//     Terms: U.S. Government work, public domain; NVD asks users to say
//     the product uses NVD data but is not endorsed by NVD.
//   - The Debian Security Tracker's JSON, debian-security-tracker.json.
//     Terms: published openly by the Debian Security Team; no separate
//     licence is stated for the data.
//
// [LoadDir] and [Set.Reload] parse a directory of feeds into a [Set], whose
// lookups ([Set.KEV], [Set.EPSS], [Set.CVSS], [Set.DebianCVEs]) are safe on
// a nil Set or a missing feed. A file that does not parse or validate is
// refused with a [*ParseError] naming the file and the position, and a
// Reload keeps the last good copy of that feed in force. NVD and Debian
// files are parsed as streams, one record at a time, so memory follows the
// size of the result, not of the file.
//
// [Fetch] downloads the feeds with conditional requests and bounded
// retries, validates each download with the same parsers, and only then
// replaces the old file, atomically. Its [Report] gives a per-file outcome
// the caller can export as metrics; this package registers none.
//
// Nothing here decides policy: the package says what each publisher says,
// with the file and date it came from, and the planner decides what that
// means for a client's baseline.
package feeds
