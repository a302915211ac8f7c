package agent

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/patchline/patchline/protocol"
)

// download fetches file name of agent release version into w, with the
// endpoint's node key, over the same retrying client as the agent's other
// calls. More than max bytes is an error.
func (c *client) download(ctx context.Context, version, name string, w io.Writer, max int64) error {
	path := protocol.ReleaseRoute(url.PathEscape(version), url.PathEscape(name))
	st := &attemptState{target: path}
	var base string
	st.replica, base = c.pick()
	ctx = context.WithValue(ctx, attemptKey{}, st)
	req, err := retryablehttp.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if c.nodeKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.nodeKey)
		req.Header.Set(protocol.HeaderEndpoint, c.endpoint)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %w", path, decodeError(resp))
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, max+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if n > max {
		return fmt.Errorf("GET %s: more than %d bytes", path, max)
	}
	return nil
}
