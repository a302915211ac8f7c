package feeds

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// This file holds the generator of large NVD feeds and what uses it: the
// memory bound test and BenchmarkNVDStream.

var nvdBenchCVEs = flag.Int("nvd-cves", 200_000, "CVEs in the NVD stream BenchmarkNVDStream generates")

// nvdStream is an io.Reader producing an NVD CVE JSON 2.0 feed of n
// vulnerabilities, pretty-printed as NVD prints it, each about 2.2 KB. It
// generates each record as it is read, so the stream is never held
// anywhere: a 400 MB feed costs a few KB.
type nvdStream struct {
	n, next int
	buf     []byte
	pos     int
	state   int // 0: header to write, 1: records, 2: footer written
}

func newNVDStream(n int) *nvdStream { return &nvdStream{n: n} }

func (s *nvdStream) Read(p []byte) (int, error) {
	for s.pos == len(s.buf) {
		if !s.fill() {
			return 0, io.EOF
		}
	}
	n := copy(p, s.buf[s.pos:])
	s.pos += n
	return n, nil
}

// fill makes the next piece of the document.
func (s *nvdStream) fill() bool {
	s.buf, s.pos = s.buf[:0], 0
	switch {
	case s.state == 0:
		s.buf = fmt.Appendf(s.buf, "{\n  \"resultsPerPage\" : %d,\n  \"startIndex\" : 0,\n  \"totalResults\" : %d,\n"+
			"  \"format\" : \"NVD_CVE\",\n  \"version\" : \"2.0\",\n  \"timestamp\" : \"2025-08-25T03:00:01.8274561\",\n  \"vulnerabilities\" : [ ", s.n, s.n)
		s.state = 1
	case s.next < s.n:
		if s.next > 0 {
			s.buf = append(s.buf, ", "...)
		}
		s.buf = appendNVDRecord(s.buf, s.next)
		s.next++
	case s.state == 1:
		s.buf = append(s.buf, " ]\n}\n"...)
		s.state = 2
	default:
		return false
	}
	return true
}

// appendNVDRecord appends the i-th generated vulnerability: every one has
// a description, a weakness, a configuration and references, as real ones
// do; most have an NVD v3.1 metric, every third a CNA's v4.0 one too, and
// every tenth is awaiting analysis, without metrics.
func appendNVDRecord(b []byte, i int) []byte {
	year, num := 2000+i%26, 10000+i
	id := fmt.Sprintf("CVE-%d-%d", year, num)
	b = fmt.Appendf(b, `{
    "cve" : {
      "id" : "%s",
      "sourceIdentifier" : "cna@example.org",
      "published" : "%d-03-29T17:15:21.150",
      "lastModified" : "2025-%02d-%02dT09:15:10.%03d",
      "vulnStatus" : "Analyzed",
      "cveTags" : [ ],
      "descriptions" : [ {
        "lang" : "en",
        "value" : "A generated vulnerability in component %d of product %d allows a remote attacker to do something unwelcome by sending a crafted request, because input is not validated before it is used."
      } ],
      "metrics" : {`, id, year, 1+i%12, 1+i%28, i%1000, i%97, i%541)
	if i%10 != 9 {
		if i%3 == 0 {
			b = fmt.Appendf(b, `
        "cvssMetricV40" : [ {
          "source" : "cna@example.org",
          "type" : "Secondary",
          "cvssData" : {
            "version" : "4.0",
            "vectorString" : "CVSS:4.0/AV:N/AC:L/AT:N/PR:%s/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
            "baseScore" : %d.%d,
            "baseSeverity" : "HIGH"
          }
        } ],`, [...]string{"N", "L", "H"}[i%3], 5+i%5, i%10)
		}
		b = fmt.Appendf(b, `
        "cvssMetricV31" : [ {
          "source" : "nvd@nist.gov",
          "type" : "Primary",
          "cvssData" : {
            "version" : "3.1",
            "vectorString" : "CVSS:3.1/AV:N/AC:L/PR:%s/UI:N/S:U/C:H/I:H/A:H",
            "baseScore" : %d.%d,
            "baseSeverity" : "HIGH",
            "attackVector" : "NETWORK",
            "attackComplexity" : "LOW",
            "privilegesRequired" : "NONE",
            "userInteraction" : "NONE",
            "scope" : "UNCHANGED",
            "confidentialityImpact" : "HIGH",
            "integrityImpact" : "HIGH",
            "availabilityImpact" : "HIGH"
          },
          "exploitabilityScore" : 3.9,
          "impactScore" : 5.9
        } ]`, [...]string{"N", "L", "H"}[i%3], 4+i%6, i%10)
	}
	return fmt.Appendf(b, `
      },
      "weaknesses" : [ {
        "source" : "nvd@nist.gov",
        "type" : "Primary",
        "description" : [ {
          "lang" : "en",
          "value" : "CWE-%d"
        } ]
      } ],
      "configurations" : [ {
        "nodes" : [ {
          "operator" : "OR",
          "negate" : false,
          "cpeMatch" : [ {
            "vulnerable" : true,
            "criteria" : "cpe:2.3:a:example:product_%d:*:*:*:*:*:*:*:*",
            "versionEndExcluding" : "%d.%d.%d",
            "matchCriteriaId" : "1B4A3F6D-0E4B-4C5A-9E0B-%012X"
          } ]
        } ]
      } ],
      "references" : [ {
        "url" : "https://example.org/advisories/%s",
        "source" : "cna@example.org",
        "tags" : [ "Vendor Advisory" ]
      }, {
        "url" : "https://example.org/commits/%x",
        "source" : "cna@example.org",
        "tags" : [ "Patch" ]
      } ]
    }
  }`, 20+i%900, i%541, 1+i%9, i%20, i%100, i, id, i*2654435761)
}

// heapSampler passes a stream through and samples the Go heap every
// sampleEvery bytes, keeping the largest HeapInuse seen.
type heapSampler struct {
	r         io.Reader
	n, marker int64
	peak      uint64
}

const sampleEvery = 4 << 20

func (h *heapSampler) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.n += int64(n)
	if h.n >= h.marker {
		h.marker = h.n + sampleEvery
		h.sample()
	}
	return n, err
}

func (h *heapSampler) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = max(h.peak, ms.HeapInuse)
}

// TestNVDStreamKeepsMemoryBounded parses a generated feed of about 210 MB
// (a fifth of it under the race detector, which makes the parse several
// times slower) and checks that the heap follows the result, not the file: at
// its peak it holds a small fraction of the stream, and after the parse
// little more than the records kept.
func TestNVDStreamKeepsMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("parses a generated feed of hundreds of MB")
	}
	n := 100_000
	if raceEnabled {
		n = 20_000
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	src := &heapSampler{r: newNVDStream(n)}
	f, err := parseNVD(context.Background(), "nvdcve-2.0-generated.json", src)
	if err != nil {
		t.Fatal(err)
	}
	src.sample()
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(f.records) != n {
		t.Fatalf("%d records, want %d", len(f.records), n)
	}
	peak := int64(src.peak) - int64(before.HeapInuse)
	kept := int64(after.HeapInuse) - int64(before.HeapInuse)
	t.Logf("stream %d MiB, %d CVEs: heap in use at its peak %d MiB, after the parse %d MiB (%d bytes a CVE)",
		src.n>>20, n, peak>>20, kept>>20, kept/int64(n))
	if peak > src.n/4 {
		t.Errorf("the heap peaked at %d MiB while parsing a %d MiB stream: the parser holds the document", peak>>20, src.n>>20)
	}
	// A record kept is under 200 bytes; twice that leaves room for the
	// map's growth and the allocator's rounding.
	if limit := int64(n) * 400; kept > limit {
		t.Errorf("%d MiB in use after parsing %d CVEs, want at most %d MiB", kept>>20, n, limit>>20)
	}
	runtime.KeepAlive(f)
}

// BenchmarkNVDStream parses a generated NVD feed of -nvd-cves CVEs
// (200,000 by default, about 440 MB) and reports the heap's peak.
func BenchmarkNVDStream(b *testing.B) {
	n := *nvdBenchCVEs
	var size int64
	var peak uint64
	b.ReportAllocs()
	for b.Loop() {
		runtime.GC()
		src := &heapSampler{r: newNVDStream(n)}
		f, err := parseNVD(context.Background(), "nvdcve-2.0-generated.json", src)
		if err != nil {
			b.Fatal(err)
		}
		src.sample()
		if len(f.records) != n {
			b.Fatalf("%d records, want %d", len(f.records), n)
		}
		size, peak = src.n, max(peak, src.peak)
	}
	b.SetBytes(size)
	b.ReportMetric(float64(size)/(1<<20), "stream-MiB")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}
