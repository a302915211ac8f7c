package api

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchline/patchline/reconciler/api/wire"
)

// BenchmarkReportIngest posts inventory reports (testdata/report.json)
// through the API handler into a real SQLite store on disk, from 64
// enrolled endpoints reporting at once, as agents do after a controller
// restart. Each report is one durable transaction; reports/s is the
// ingestion rate the performance bar asks 2,000 of.
func BenchmarkReportIngest(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.Now, c.EnrollRate = time.Now, 1000 })
	const n = 64
	agents := make([]agent, n)
	for i := range agents {
		agents[i] = e.enroll(fmt.Sprintf("WS-%03d", i))
	}
	body := reportFixture(b)
	var next atomic.Int64
	b.SetParallelism(n / 2) // 2 cores × 32 = 64 concurrent reports
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine is one endpoint: an agent never sends two reports
		// at once, and the store refuses the older of two that race.
		a := agents[next.Add(1)%n]
		for pb.Next() {
			rec := serve(e, http.MethodPost, wire.PathReport, body, a.auth())
			if rec.Code != http.StatusOK {
				b.Errorf("report: %d %s", rec.Code, rec.Body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}
