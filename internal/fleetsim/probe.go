package fleetsim

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/patchline/patchline/internal/adminclient"
	"github.com/patchline/patchline/protocol"
	"github.com/patchline/patchline/reconciler/source"
)

// probe reads the controller's admin status and metrics and sends it
// webhooks. It uses its own HTTP client: the agents' clients belong to the
// agents. With several replicas, the status is read from the first that
// answers and webhooks go to the first (a replica that does not lead
// passes a webhook to the leader through the database).
type probe struct {
	// base is the first controller URL, where webhooks go.
	base string
	// metrics are the URLs of the controller's metrics, one a replica.
	metrics []string
	secrets *protocol.SecretsFile
	http    *http.Client
	admin   *adminclient.Client
}

func newProbe(controller, metrics string, s *protocol.SecretsFile) *probe {
	p := &probe{
		base:    strings.TrimSuffix(adminclient.SplitURLs(controller)[0], "/"),
		secrets: s,
		http:    &http.Client{Timeout: 30 * time.Second},
	}
	if metrics != "" {
		p.metrics = adminclient.SplitURLs(metrics)
	}
	p.admin = &adminclient.Client{Base: controller, Token: s.AdminToken, HTTP: p.http}
	return p
}

// status reads GET /v1/status with the admin token.
func (p *probe) status(ctx context.Context) (*protocol.Status, error) {
	st, err := p.admin.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return st, nil
}

// rss reads a controller's resident memory from its metrics at url (the
// process collector's process_resident_memory_bytes); 0 when the
// controller does not export it (not on Linux).
func (p *probe) rss(ctx context.Context, url string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("metrics: process_resident_memory_bytes %q: %w", v, err)
			}
			return int64(f), nil
		}
	}
	return 0, sc.Err()
}

// webhook posts a push webhook signed with the webhook secret, as GitHub
// sends it.
func (p *probe) webhook(ctx context.Context) error {
	body := []byte(`{"ref": "refs/heads/main"}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.base+"/v1/hooks/git", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", source.GitHubSignature([]byte(p.secrets.WebhookSecret), body))
	resp, err := p.http.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook: controller answered %s", resp.Status)
	}
	return nil
}

// selfRSS is this process's peak resident memory (VmHWM), 0 where /proc
// does not tell.
func selfRSS() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
