-- agent_version is the version of the endpoint's agent as it last
-- reported it ('' when it did not say): the snapshot's
-- Endpoint.AgentVersion, which tells whether the endpoint has the agent
-- version its policy asks for.
ALTER TABLE endpoints ADD COLUMN agent_version TEXT NOT NULL DEFAULT '';
