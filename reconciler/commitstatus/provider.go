package commitstatus

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// userAgent names patchd to the forge (GitHub refuses requests without
// one).
const userAgent = "patchline-patchd"

// request is the POST that sets status s on the provider's API at base:
// each provider's documented path, JSON body and authentication.
func (c Config) request(ctx context.Context, base *url.URL, s Status) (*http.Request, error) {
	var (
		path string
		body any
	)
	sha := url.PathEscape(s.Revision)
	switch c.Provider {
	case GitHub, Gitea:
		// POST /repos/{owner}/{repo}/statuses/{sha}, the same on both.
		owner, name, _ := strings.Cut(c.Repo, "/")
		path = "/repos/" + url.PathEscape(owner) + "/" + url.PathEscape(name) + "/statuses/" + sha
		body = struct {
			State       string `json:"state"`
			Context     string `json:"context"`
			Description string `json:"description"`
		}{c.state(s.State), s.Context, s.Description}
	case GitLab:
		// POST /projects/{id}/statuses/{sha}, the id being the project's
		// number or its path URL-encoded whole (slashes too).
		path = "/projects/" + url.PathEscape(c.Repo) + "/statuses/" + sha
		body = struct {
			State       string `json:"state"`
			Name        string `json:"name"`
			Description string `json:"description"`
		}{c.state(s.State), s.Context, s.Description}
	default:
		return nil, fmt.Errorf("unknown provider %q", string(c.Provider))
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode status: %w", err)
	}
	// The path is joined as text so that GitLab's %2F stays encoded.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.String()+path, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("status request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	switch c.Provider {
	case GitHub:
		req.Header.Set("Authorization", "Bearer "+c.Token)
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	case GitLab:
		req.Header.Set("PRIVATE-TOKEN", c.Token)
		req.Header.Set("Accept", "application/json")
	case Gitea:
		req.Header.Set("Authorization", "token "+c.Token)
		req.Header.Set("Accept", "application/json")
	}
	return req, nil
}

// state is the provider's word for st: GitLab says failed where GitHub
// and Gitea say failure.
func (c Config) state(st State) string {
	switch {
	case st == Success:
		return "success"
	case c.Provider == GitLab:
		return "failed"
	default:
		return "failure"
	}
}

// verdict is what an answer of the forge means for the status sent.
type verdict int

const (
	// accepted: the status is set.
	accepted verdict = iota
	// retry: the forge is down, busy or rate-limiting; try again later.
	retry
	// rejected: the forge refused the status for good (a wrong token,
	// repository or commit); no retry would change that.
	rejected
)

// judge reads the forge's answer to status s: what it means, and, for a
// rate limit, how long the forge asks every request to wait (0 when it
// does not say).
func (c Config) judge(code int, h http.Header, message string, s Status, now time.Time) (verdict, time.Duration) {
	switch {
	case code >= 200 && code <= 299:
		return accepted, 0
	case code == http.StatusTooManyRequests:
		return retry, rateLimitWait(h, now)
	case code == http.StatusForbidden && (h.Get("Retry-After") != "" || h.Get("X-RateLimit-Remaining") == "0" ||
		strings.Contains(strings.ToLower(message), "rate limit")):
		// GitHub's secondary rate limits answer 403, with or without
		// the headers; without them it asks for a minute's wait.
		wait := rateLimitWait(h, now)
		if wait == 0 {
			wait = time.Minute
		}
		return retry, wait
	case code >= 500 || code == http.StatusRequestTimeout:
		return retry, 0
	case c.Provider == GitLab && code == http.StatusBadRequest &&
		strings.Contains(message, "Cannot transition status") && strings.Contains(message, "from :"+c.state(s.State)):
		// GitLab refuses to set a status to the state it already has
		// (a status posted again after a restart): it is set.
		return accepted, 0
	default:
		return rejected, 0
	}
}

// maxRateLimitWait bounds what a forge may ask patchd to wait.
const maxRateLimitWait = time.Hour

// rateLimitWait is how long a rate-limited answer asks to wait: its
// Retry-After (seconds or a date), else the reset time GitHub
// (X-RateLimit-Reset) or GitLab (RateLimit-Reset) gives in Unix seconds;
// 0 when it says nothing.
func rateLimitWait(h http.Header, now time.Time) time.Duration {
	var wait time.Duration
	if ra := h.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(strings.TrimSpace(ra)); err == nil {
			wait = time.Duration(secs) * time.Second
		} else if at, err := http.ParseTime(ra); err == nil {
			wait = at.Sub(now)
		}
	} else {
		for _, name := range []string{"X-RateLimit-Reset", "RateLimit-Reset"} {
			if v := h.Get(name); v != "" {
				if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					wait = time.Unix(secs, 0).Sub(now)
				}
				break
			}
		}
	}
	return min(max(wait, 0), maxRateLimitWait)
}

// errorMessage is the message in a forge's JSON error ("message" on all
// three, "error" on some of GitLab's), or the start of the body.
func errorMessage(body []byte) string {
	var e struct {
		Message json.RawMessage `json:"message"`
		Error   string          `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil {
		var s string
		switch {
		case json.Unmarshal(e.Message, &s) == nil && s != "":
			return s
		case len(e.Message) > 0 && string(e.Message) != "null":
			// GitLab gives field errors as an object.
			return string(e.Message)
		case e.Error != "":
			return e.Error
		}
	}
	return string(body)
}
