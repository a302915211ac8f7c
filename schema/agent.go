package schema

// AgentPolicy asks for an agent version (agent: version: "1.4.2").
type AgentPolicy struct {
	// Version is a release version, MAJOR.MINOR.PATCH.
	Version string `json:"version"`
	Pos     Pos    `json:"pos"`
}

// AgentFor returns the agent policy of an endpoint of c in ring (an index
// of c.Rings, or -1 for none): the ring's when it has one, else the
// client's; nil when neither names a version.
func (c *Client) AgentFor(ring int) *AgentPolicy {
	if ring >= 0 && ring < len(c.Rings) && c.Rings[ring].Agent != nil {
		return c.Rings[ring].Agent
	}
	return c.Agent
}
