// Package apitest sends JSON requests to a controller under test: the one
// helper the controller, dashboard, report and end-to-end tests share for
// talking to a real patchd on loopback. It is for tests only.
package apitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// Do sends method path to the server at base with headers and body (JSON
// encoded when not nil), decodes a 2xx answer into out (when not nil), and
// returns the status code and the raw answer. Transport and decoding
// failures fail the test.
func Do(t testing.TB, base, method, path string, headers map[string]string, body, out any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, bytes.TrimSpace(data)
}
