package loader

import (
	"context"
	"fmt"
	"maps"
	"testing"
)

// generateFleet returns the files of a fleet repository with n clients
// shaped like the example in testdata/fleets/valid.
func generateFleet(n int) map[string][]byte {
	files := map[string][]byte{
		"cue.mod/module.cue": []byte("module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n"),
		"fleet.cue": []byte(`package fleet

defaults: {
	rings: [
		{name: "pilot", select: labels: ring: "pilot", window: "weeknights", soak: "48h"},
		{name: "broad", select: {}, window: "weekend"},
	]
	exclusions: [
		{source: "apt", match: "linux-image-*", select: labels: role: "db", reason: "kernel pinned by vendor", until: "2027-03-01"},
	]
	baseline: approve: [
		{name: "security", category: ["security", "critical"], minSeverity: "important", minAge: "2d"},
		{name: "exploited", knownExploited: true},
	]
}
windows: weekend: {days: ["sat"], start: "01:00", duration: "6h"}
`),
	}
	for i := range n {
		id := fmt.Sprintf("client%04d", i)
		files["clients/"+id+"/policy.cue"] = fmt.Appendf(nil, `package fleet

client: {id: %q, name: "Client %d", timezone: "America/Chicago"}
windows: weeknights: {days: ["mon", "tue", "wed", "thu"], start: "22:00", duration: "4h"}
rings: [
	{name: "canary", select: labels: ring: "canary", window: "weeknights", minSuccess: 1.0, maxFailures: 0.0},
	{name: "pilot", select: labels: ring: "pilot", window: "weeknights", soak: "72h", maxConcurrent: 25},
	{name: "broad", select: {}, window: "weekend", reboot: "force", rebootDeadline: "24h"},
]
baseline: require: [{id: "KB5034441"}, {source: "apt", match: "openssl", minVersion: "3.0.15-1~deb12u1"}]
exclusions: [{update: "KB5034441", select: hostnames: ["HOST-%d"], reason: "breaks the vendor app", ticket: "PSA-%d", until: "2026-12-31"}]
`, id, i, i, i)
	}
	return files
}

func loadOrFail(b *testing.B, l *Loader, files map[string][]byte, want int) {
	fleet, err := l.LoadFiles(context.Background(), files, "")
	if err != nil {
		b.Fatal(err)
	}
	if len(fleet.Clients) != want {
		b.Fatalf("loaded %d clients, want %d: %v", len(fleet.Clients), want, fleet.Problems[:min(3, len(fleet.Problems))])
	}
}

// BenchmarkLoadCold1000 loads a 1,000-client fleet with an empty cache.
func BenchmarkLoadCold1000(b *testing.B) {
	files := generateFleet(1000)
	for b.Loop() {
		loadOrFail(b, New(Options{Now: testNow}), files, 1000)
	}
}

// BenchmarkReloadOneClient1000 reloads a 1,000-client fleet after one
// client's policy changed.
func BenchmarkReloadOneClient1000(b *testing.B) {
	files := generateFleet(1000)
	l := New(Options{Now: testNow})
	loadOrFail(b, l, files, 1000)
	edit := 0
	for b.Loop() {
		b.StopTimer()
		edited := maps.Clone(files)
		edit++
		p := "clients/client0007/policy.cue"
		edited[p] = fmt.Appendf(append([]byte(nil), files[p]...), "\n// edit %d\n", edit)
		b.StartTimer()
		loadOrFail(b, l, edited, 1000)
	}
}

// BenchmarkLoadColdInChildren100 loads a 100-client fleet with an empty
// cache, each client in a child evaluator (this test binary, as patchd
// and patchctl run themselves): the cost of a controller's start or of a
// CI vet, against BenchmarkLoadCold1000's in-process evaluation.
func BenchmarkLoadColdInChildren100(b *testing.B) {
	files := generateFleet(100)
	ev, err := SelfEvaluator()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		loadOrFail(b, New(Options{Now: testNow, Evaluator: ev}), files, 100)
	}
}
