package plan_test

import (
	"testing"
	"time"

	"github.com/patchline/patchline/internal/plangen"
	"github.com/patchline/patchline/reconciler/plan"
)

// BenchmarkPlan100k plans 100,000 endpoints of 200 clients with 40 updates
// each: four million pairs.
func BenchmarkPlan100k(b *testing.B) {
	now := time.Date(2026, 11, 12, 23, 0, 0, 0, time.UTC)
	fleet := plangen.Fleet(200)
	snap := plangen.Snapshot(200, 100_000, 40, now)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		res, err := plan.Plan(fleet, snap, now, plan.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Jobs) == 0 {
			b.Fatal("no jobs planned")
		}
	}
}

// BenchmarkPlan100kDecisions is BenchmarkPlan100k with every decision kept,
// as `patchctl plan` does.
func BenchmarkPlan100kDecisions(b *testing.B) {
	now := time.Date(2026, 11, 12, 23, 0, 0, 0, time.UTC)
	fleet := plangen.Fleet(200)
	snap := plangen.Snapshot(200, 100_000, 40, now)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := plan.Plan(fleet, snap, now, plan.Options{Decisions: true}); err != nil {
			b.Fatal(err)
		}
	}
}
