package loader

import "github.com/patchline/patchline/schema"

// rawAgent is an agent entry (agent: version: "1.4.2") as CUE decodes it;
// the schema checks the version's shape.
type rawAgent struct {
	Version string `json:"version"`
}

// agent decodes the agent entry at path p, nil when there is none or its
// version has an error.
func (ev *evaluation) agent(p string, a *rawAgent) *schema.AgentPolicy {
	if a == nil || a.Version == "" || ev.isBad(p+".version") {
		return nil
	}
	return &schema.AgentPolicy{Version: a.Version, Pos: ev.pos(p + ".version")}
}
