package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/patchline/patchline/internal/patchdtest"
	"github.com/patchline/patchline/protocol"
)

// send makes one request and returns its status code (0 when the
// connection failed).
func send(hc *http.Client, method, url string, headers map[string]string, body []byte) int {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestFloodAndMalformedRequests floods enrollment at 1,000 requests a
// second and sends oversized and malformed bodies to every route. The
// controller keeps answering status requests, answers every bad request
// with a 4xx (429 for the flood once its bucket is empty), never a 2xx or
// 5xx, and the stored state is the same before and after.
func TestFloodAndMalformedRequests(t *testing.T) {
	floodFor := 2 * time.Second
	if *long {
		floodFor = 20 * time.Second
	}
	repo := newFleetRepo(t, "7d", approveNothing)
	c := startController(t, controllerConfig(t, repo))
	a := startAgent(t, c.URL, "acme-canary-0000", "canary", agentOptions{})
	waitEnrolled(t, c.URL, []*simAgent{a}, 30*time.Second)
	a.stop(t)
	var id struct {
		Endpoint string `json:"endpoint"`
		NodeKey  string `json:"nodeKey"`
	}
	b, err := os.ReadFile(filepath.Join(a.dir, "identity.json"))
	if err != nil || json.Unmarshal(b, &id) != nil {
		t.Fatalf("identity: %v", err)
	}
	auth := map[string]string{"Authorization": "Bearer " + id.NodeKey, protocol.HeaderEndpoint: id.Endpoint, "Content-Type": "application/json"}
	admin := map[string]string{"Authorization": "Bearer " + patchdtest.AdminToken}
	before, beforeAudit := snapshot(t, c.URL), len(audit(t, c.URL))
	before.GeneratedAt = time.Time{}

	hc := &http.Client{Timeout: 10 * time.Second}
	var codes counter
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond) // 1,000 a second
	stopFlood := time.After(floodFor)
	statusDuring := make(chan int, 1)
	go func() {
		time.Sleep(floodFor / 2)
		statusDuring <- send(hc, http.MethodGet, c.URL+"/v1/status", admin, nil)
	}()
	sem := make(chan struct{}, 64)
	n := 0
flood:
	for {
		select {
		case <-stopFlood:
			break flood
		case <-tick.C:
		}
		n++
		body, _ := json.Marshal(protocol.EnrollRequest{Client: client, Secret: fmt.Sprintf("guess-%d", n),
			InstanceID: fmt.Sprintf("flood-instance-%016d", n), NodeKey: fmt.Sprintf("flood-node-key-%032d", n), Hostname: "flood"})
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			codes.add(fmt.Sprint(send(hc, http.MethodPost, c.URL+protocol.PathEnroll, nil, body)))
		}()
	}
	tick.Stop()
	wg.Wait()
	t.Logf("enrollment flood: %d requests, answers %s", n, codes.String())
	if code := <-statusDuring; code != http.StatusOK {
		t.Errorf("GET /v1/status during the flood: %d, want 200", code)
	}
	codes.mu.Lock()
	for code := range codes.n {
		if code != "401" && code != "403" && code != "429" {
			t.Errorf("flood answered %s %d times; want only 401, 403 or 429", code, codes.n[code])
		}
	}
	if codes.n["429"] == 0 {
		t.Error("the flood was never rate-limited (no 429)")
	}
	codes.mu.Unlock()

	huge := bytes.Repeat([]byte("x"), protocol.MaxBodyBytes+1024)
	hugeJSON := append(append([]byte(`{"hostname":"`), huge...), []byte(`"}`)...)
	result := protocol.ResultPath("no-such-job")
	tests := []struct {
		name, method, path string
		headers            map[string]string
		body               []byte
	}{
		{"enroll: truncated JSON", "POST", protocol.PathEnroll, nil, []byte(`{"client":`)},
		{"enroll: wrong types", "POST", protocol.PathEnroll, nil, []byte(`{"client": 5, "labels": [1]}`)},
		{"enroll: oversized", "POST", protocol.PathEnroll, nil, hugeJSON},
		{"enroll: empty", "POST", protocol.PathEnroll, nil, nil},
		{"report: truncated JSON", "POST", protocol.PathReport, auth, []byte(`{"updates": [`)},
		{"report: wrong types", "POST", protocol.PathReport, auth, []byte(`{"updates": "all of them"}`)},
		{"report: oversized", "POST", protocol.PathReport, auth, hugeJSON},
		{"report: not JSON", "POST", protocol.PathReport, auth, []byte("\x00\x01\x02")},
		{"report: no credentials", "POST", protocol.PathReport, nil, []byte(`{"updates": []}`)},
		{"report: an update without id", "POST", protocol.PathReport, auth, []byte(`{"hostname":"h","os":{"family":"linux"},"updates":[{"source":"apt"}]}`)},
		{"result: truncated JSON", "POST", result, auth, []byte(`{"job":`)},
		{"result: empty update id", "POST", result, auth, []byte(`{"updates":[{"update":"","result":"succeeded"}]}`)},
		{"result: oversized", "POST", result, auth, hugeJSON},
		{"result: unknown job", "POST", result, auth, []byte(`{"updates":[]}`)},
		{"jobs: bad wait", "GET", protocol.PathJobs + "?wait=banana", auth, nil},
		{"jobs: wrong node key", "GET", protocol.PathJobs, map[string]string{"Authorization": "Bearer nope", protocol.HeaderEndpoint: id.Endpoint}, nil},
		{"git hook: oversized", "POST", "/v1/hooks/git", nil, huge},
		{"git hook: unsigned garbage", "POST", "/v1/hooks/git", map[string]string{"X-GitHub-Event": "push"}, []byte("{{{")},
		{"audit: bad limit", "GET", "/v1/audit?limit=-1", admin, nil},
		{"state: no token", "GET", "/v1/state", nil, nil},
		{"unknown route", "POST", "/v1/nothing-here", nil, []byte("{}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := send(hc, tt.method, c.URL+tt.path, tt.headers, tt.body)
			if code < 400 || code > 499 {
				t.Errorf("%s %s: %d, want a 4xx", tt.method, tt.path, code)
			}
		})
	}

	if code := send(hc, http.MethodGet, c.URL+"/v1/status", admin, nil); code != http.StatusOK {
		t.Errorf("GET /v1/status after the abuse: %d", code)
	}
	after := snapshot(t, c.URL)
	after.GeneratedAt = time.Time{}
	if d := cmp.Diff(before, after); d != "" {
		t.Errorf("stored state changed (-before +after):\n%s", d)
	}
	if got := audit(t, c.URL); len(got) != beforeAudit {
		var kinds []string
		for _, e := range got[beforeAudit:] {
			kinds = append(kinds, e.Kind)
		}
		t.Errorf("audit log grew by %d entries (%s)", len(got)-beforeAudit, strings.Join(kinds, ", "))
	}
}
