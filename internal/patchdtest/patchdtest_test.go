package patchdtest

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/patchline/patchline/internal/apitest"
	"github.com/patchline/patchline/internal/buildinfo"
	"github.com/patchline/patchline/internal/gittest"
	"github.com/patchline/patchline/protocol"
)

// fleetRepo makes a local fleet repository with client acme and returns
// its directory and head.
func fleetRepo(t *testing.T) (dir, head string) {
	t.Helper()
	up := gittest.NewUpstream(t, t.TempDir(), "fleet")
	up.Write(map[string]string{
		"cue.mod/module.cue":      "module: \"example.com/fleet\"\nlanguage: version: \"v0.12.0\"\n",
		"fleet.cue":               "package fleet\n",
		"clients/acme/policy.cue": "package fleet\n\nclient: {id: \"acme\", name: \"Acme Dental\", timezone: \"UTC\"}\n",
	})
	return up.Work, up.Commit("Onboard Acme Dental").String()
}

// TestStartServesTheFleetRepo: a started controller listens on loopback,
// has read the head of its repository, given as a directory or by URL, and
// takes the secrets Config wrote.
func TestStartServesTheFleetRepo(t *testing.T) {
	dir, head := fleetRepo(t)
	for name, repo := range map[string]string{"a local repository": dir, "a repository URL": "file://" + dir} {
		t.Run(name, func(t *testing.T) {
			p := Start(t, Config(t, repo, map[string]string{"acme": "acme-enrollment-secret"}))
			if host, _, err := net.SplitHostPort(p.Addr); err != nil || host != "127.0.0.1" || p.URL != "http://"+p.Addr {
				t.Errorf("listens on %s (URL %s), want 127.0.0.1", p.Addr, p.URL)
			}
			if st := p.Status(); st.Head != head || st.Version != buildinfo.Version() {
				t.Errorf("head %q, version %q; want %s and %s", st.Head, st.Version, head, buildinfo.Version())
			}
			var resp protocol.EnrollResponse
			code, body := apitest.Do(t, p.URL, "POST", protocol.PathEnroll, nil, protocol.EnrollRequest{
				Client: "acme", Secret: "acme-enrollment-secret", InstanceID: "instance-ws-01",
				NodeKey: "node-key-0123456789abcdef0123456789abcdef-ws-01", Hostname: "ACME-WS-01", OS: protocol.OS{Family: "windows"},
			}, &resp)
			if code != 200 || !strings.HasPrefix(resp.Endpoint, "acme-") {
				t.Errorf("enroll with the secret of Config: %d %s", code, body)
			}
			if code, _ := apitest.Do(t, p.URL, "GET", "/v1/status", map[string]string{"Authorization": "Bearer not-" + AdminToken}, nil, nil); code != 401 {
				t.Errorf("status with a wrong admin token: %d, want 401", code)
			}
			if host, _, err := net.SplitHostPort(p.MetricsAddr); err != nil || host != "127.0.0.1" || p.MetricsAddr == p.Addr ||
				p.MetricsURL != "http://"+p.MetricsAddr+"/metrics" {
				t.Errorf("metrics on %s (URL %s), want another port of 127.0.0.1 than the API's %s", p.MetricsAddr, p.MetricsURL, p.Addr)
			}
			mresp, err := http.Get(p.MetricsURL)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(mresp.Body)
			mresp.Body.Close()
			if err != nil || mresp.StatusCode != 200 || !strings.Contains(string(b), "patchline_longpolls_waiting") ||
				!strings.Contains(string(b), `patchline_build_info{goversion="`+runtime.Version()+`",version="`+buildinfo.Version()+`"} 1`) {
				t.Errorf("GET %s: %d, %v, %.200s", p.MetricsURL, mresp.StatusCode, err, b)
			}
		})
	}
}

// TestControllerStopsWithTheTest: when the test that started a controller
// ends, or it is stopped before, nothing listens on its address any more.
func TestControllerStopsWithTheTest(t *testing.T) {
	dir, _ := fleetRepo(t)
	var addr, metricsAddr string
	t.Run("run", func(t *testing.T) {
		p := Start(t, Config(t, dir, nil))
		addr, metricsAddr = p.Addr, p.MetricsAddr
	})
	refused := func(addr string) bool {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	}
	for _, a := range []string{addr, metricsAddr} {
		if !refused(a) {
			t.Errorf("%s still accepts connections after the test ended", a)
		}
	}
	p := Start(t, Config(t, dir, nil))
	p.Stop()
	p.Stop()
	if !refused(p.Addr) {
		t.Errorf("%s still accepts connections after Stop", p.Addr)
	}
}
