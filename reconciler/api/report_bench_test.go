package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/patchline/patchline/protocol"
)

// BenchmarkReportIngest posts inventory reports of 40 updates (made from
// testdata/report.json) through the API handler into a real SQLite store
// on disk, from 64 enrolled endpoints reporting at once. Each endpoint's
// first report stores its inventory; the later ones repeat it, as hourly
// reports do. reports/s is the ingestion rate the performance bar asks
// 2,000 of.
//
// BenchmarkReportIngest/changing posts, from each endpoint in turn, two
// reports in which every update's installed flag differs, so each report
// rewrites all 40 rows: the same rows the stores' BenchmarkRawInventory
// writes with plain prepared statements, for the ratio of the API path to
// the store's raw rate.
func BenchmarkReportIngest(b *testing.B) {
	b.Run("repeated", func(b *testing.B) { benchReportIngest(b, false) })
	b.Run("changing", func(b *testing.B) { benchReportIngest(b, true) })
}

// benchReportIngest is BenchmarkReportIngest, with reports that repeat or
// change, and the environment's configuration changed by configure
// (another store).
func benchReportIngest(b *testing.B, changing bool, configure ...func(*Config)) {
	e := newEnv(b, append([]func(*Config){func(c *Config) { c.Now, c.EnrollRate = time.Now, 1000 }}, configure...)...)
	const n = 64
	agents := make([]agent, n)
	for i := range agents {
		agents[i] = e.enroll(fmt.Sprintf("WS-%03d", i))
	}
	bodies := [2][]byte{bigReport(b, 40, 1), bigReport(b, 40, 1)}
	if changing {
		bodies[1] = bigReport(b, 40, 0)
	}
	var next atomic.Int64
	b.SetParallelism(n / 2) // 2 cores × 32 = 64 concurrent reports
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine is one endpoint: an agent never sends two reports
		// at once, and the store refuses the older of two that race.
		a := agents[next.Add(1)%n]
		for i := 0; pb.Next(); i++ {
			rec := serve(e, http.MethodPost, protocol.PathReport, bodies[i%2], a.auth())
			if rec.Code != http.StatusOK {
				b.Errorf("report: %d %s", rec.Code, rec.Body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
}

// bigReport is testdata/report.json with n updates: its two, copied under
// new ids, every other one installed (those whose index has parity
// installed).
func bigReport(b *testing.B, n, installed int) []byte {
	var r map[string]any
	if err := json.Unmarshal(reportFixture(b), &r); err != nil {
		b.Fatal(err)
	}
	tmpl := r["updates"].([]any)
	ups := make([]any, n)
	for i := range ups {
		u := maps.Clone(tmpl[i%len(tmpl)].(map[string]any))
		u["id"] = fmt.Sprintf("%s-%02d", u["id"], i)
		u["installed"] = i%2 == installed
		ups[i] = u
	}
	r["updates"] = ups
	body, err := json.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	return body
}
