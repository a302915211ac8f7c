package commitstatus

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/patchline/patchline/internal/netaddr"
)

// Provider is a forge whose commit status API patchd posts to.
type Provider string

// The providers.
const (
	GitHub Provider = "github"
	GitLab Provider = "gitlab"
	Gitea  Provider = "gitea"
)

// defaultAPI is the API of each provider's hosted service, used when
// Config.API is empty. Gitea has none: every Gitea is someone's own.
var defaultAPI = map[Provider]string{
	GitHub: "https://api.github.com",
	GitLab: "https://gitlab.com/api/v4",
}

// Config says where statuses are posted. The zero Config posts none.
type Config struct {
	// Provider is github, gitlab or gitea; "" for no statuses.
	Provider Provider
	// API is the forge's API base URL: https://api.github.com (GitHub
	// Enterprise Server: https://HOST/api/v3), https://gitlab.com/api/v4,
	// https://HOST/api/v1 for Gitea. Empty for the provider's hosted
	// service.
	API string
	// Repo is the fleet repo on the forge: OWNER/NAME on GitHub and
	// Gitea; on GitLab the project's path with its groups
	// (msp/infra/fleet) or its numeric id.
	Repo string
	// Token may post commit statuses to Repo. It is sent to API only,
	// and never logged.
	Token string
}

// Enabled reports whether statuses are posted.
func (c Config) Enabled() bool { return c.Provider != "" }

// Check reports the first thing wrong with c, naming the flag that sets
// it. A Config that is not Enabled is fine.
func (c Config) Check() error {
	_, err := c.endpoint()
	return err
}

// endpoint checks c and returns the API's base URL.
func (c Config) endpoint() (*url.URL, error) {
	switch c.Provider {
	case "":
		if c.API != "" || c.Repo != "" || c.Token != "" {
			return nil, errors.New("--status-api, --status-repo and --status-token-file are used only with --status-provider; add it")
		}
		return nil, nil
	case GitHub, GitLab, Gitea:
	default:
		return nil, fmt.Errorf("--status-provider %q: want github, gitlab or gitea", string(c.Provider))
	}
	if err := c.checkRepo(); err != nil {
		return nil, err
	}
	if c.Token == "" {
		return nil, fmt.Errorf("--status-provider %s needs --status-token-file FILE, holding a token that may post commit statuses to %s", c.Provider, c.Repo)
	}
	// The token goes into a header: a line break in it would add headers
	// of the file's choosing.
	if strings.ContainsFunc(c.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, errors.New("--status-token-file: the token must be one word on one line (no spaces or control characters)")
	}
	api := c.API
	if api == "" {
		api = defaultAPI[c.Provider]
	}
	if api == "" {
		return nil, fmt.Errorf("--status-provider %s needs --status-api URL, the API of your server, e.g. https://gitea.msp.example/api/v1", c.Provider)
	}
	u, err := url.Parse(strings.TrimRight(api, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--status-api %q: want the API's base URL, like %s", api, example[c.Provider])
	}
	if netaddr.InClear(u) {
		return nil, fmt.Errorf("--status-api %q: plain http would send the token in clear; use https:// (http only to a loopback address)", api)
	}
	return u, nil
}

// example is an API base URL of each provider, for errors.
var example = map[Provider]string{
	GitHub: "https://api.github.com or https://github.msp.example/api/v3",
	GitLab: "https://gitlab.com/api/v4",
	Gitea:  "https://gitea.msp.example/api/v1",
}

// checkRepo checks the repository's name: OWNER/NAME, or on GitLab a
// project path of any depth or a numeric id.
func (c Config) checkRepo() error {
	if c.Repo == "" {
		return fmt.Errorf("--status-provider %s needs --status-repo OWNER/NAME, the fleet repo on %s", c.Provider, c.Provider)
	}
	parts := strings.Split(c.Repo, "/")
	if c.Provider == GitLab {
		if id, err := strconv.ParseUint(c.Repo, 10, 64); err == nil && id > 0 {
			return nil
		}
	} else if len(parts) != 2 {
		return fmt.Errorf("--status-repo %q: want OWNER/NAME, e.g. msp/fleet", c.Repo)
	}
	if len(parts) < 2 {
		return fmt.Errorf("--status-repo %q: want the project's path with its groups (msp/fleet, msp/infra/fleet) or its numeric id", c.Repo)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '?' || r == '#' || r == '%' || r == '\\' }) {
			return fmt.Errorf("--status-repo %q: %q is not a name the forge allows", c.Repo, p)
		}
	}
	return nil
}
