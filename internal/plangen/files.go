package plangen

import (
	"fmt"
	"strings"
	"time"
)

// FilesOptions shape the CUE fleet repo FleetFiles writes.
type FilesOptions struct {
	// Soak is every ring's soak time; zero lets an update move to the next
	// ring as soon as the ring before it has passed.
	Soak time.Duration
	// RealisticWindows gives canary and pilot weeknight windows and broad
	// a weekend window, instead of windows that are always open.
	RealisticWindows bool
	// Hold, when set, is an update id every client holds back from all its
	// endpoints with an exclusion in clients/<id>/exclusions.cue, until a
	// commit writes that file again without it (ExclusionsFile).
	Hold string
}

// FleetFiles returns the files of a fleet repo of n clients, path to
// content, valid under schema/fleet.cue: the clients of Fleet (ClientID),
// each with canary, pilot and broad rings selected by the "ring" label, a
// baseline that approves every update of every source (so simulated
// endpoints have drift to converge), two exclusions and, with opts.Hold, a
// hold on one update.
func FleetFiles(n int, opts FilesOptions) map[string][]byte {
	files := map[string][]byte{
		"cue.mod/module.cue": []byte("module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n"),
		"fleet.cue": []byte(`// A generated fleet (patchctl fleet generate) for benchmarks and the
// fleet simulator. Every client writes its own rings and baseline.
package fleet

defaults: {
	staleAfter: "7d"
	ring: {minSuccess: 0.9, maxFailures: 0.2}
}
`),
	}
	for i := range n {
		id := ClientID(i)
		files["clients/"+id+"/client.cue"] = clientFile(i, opts)
		files["clients/"+id+"/exclusions.cue"] = ExclusionsFile(i, opts.Hold)
	}
	return files
}

// ExclusionsPath is the path in the fleet repo of client i's exclusions.
func ExclusionsPath(i int) string { return "clients/" + ClientID(i) + "/exclusions.cue" }

// ExclusionsFile is the content of client i's exclusions file: a hold on a
// driver for SQL servers, one on Homebrew's Python for build machines and,
// when hold is not empty, a hold on that update for every endpoint.
func ExclusionsFile(i int, hold string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `package fleet

exclusions: [
	{update: "KB5000007", select: labels: role: "sql", reason: "breaks the line-of-business app", ticket: "PSA-%d", until: "2099-01-01"},
	{source: "brew", match: "python@*", select: labels: role: "build", reason: "build machines pin their Python", until: "2099-01-01"},
`, 1000+i)
	if hold != "" {
		fmt.Fprintf(&b, "\t{update: %q, select: {}, reason: \"held until a commit releases it\", ticket: \"SIM-%d\", until: \"2099-01-01\"},\n", hold, i)
	}
	b.WriteString("]\n")
	return []byte(b.String())
}

// clientFile is client i's identity, windows, rings and baseline.
func clientFile(i int, opts FilesOptions) []byte {
	soak := fmt.Sprintf("%dm", int(opts.Soak/time.Minute))
	early, late := "always", "always"
	windows := `windows: always: {days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start: "00:00", duration: "24h"}`
	if opts.RealisticWindows {
		early, late = "weeknights", "weekend"
		windows = `windows: {
	weeknights: {days: ["mon", "tue", "wed", "thu"], start: "22:00", duration: "4h"}
	weekend: {days: ["sat"], start: "01:00", duration: "6h"}
}`
	}
	return fmt.Appendf(nil, `package fleet

client: {id: %q, name: "Client %d", timezone: "UTC"}
mode: "enforce"

%s

// The simulator's canaries are all Windows: an apt or brew update has no
// endpoint there, so minEndpoints 0 lets it pass the canary empty.
rings: [
	{name: "canary", select: labels: ring: "canary", window: %q, soak: %q, minEndpoints: 0},
	{name: "pilot", select: labels: ring: "pilot", window: %q, soak: %q, minEndpoints: 0},
	{name: "broad", select: {}, window: %q, soak: %q, reboot: "never"},
]

baseline: approve: [
	{name: "everything", source: ["windows-update", "apt", "winget", "choco", "brew"]},
]
`, ClientID(i), i, windows, early, soak, early, soak, late, soak)
}
