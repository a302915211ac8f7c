-- tokens are the admin API's named tokens. Only the SHA-256 of a token's
-- secret is kept. scopes is a JSON list; clients a JSON list, NULL for
-- every client. A revoked token keeps its row (revoked_at set), so its
-- name is not given again.
CREATE TABLE tokens (
	name       TEXT PRIMARY KEY,
	hash       BLOB NOT NULL UNIQUE,
	scopes     TEXT NOT NULL,
	clients    TEXT,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	last_used  INTEGER,
	revoked_at INTEGER,
	revoked_by TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

-- revoked_at is when an endpoint was revoked (NULL while it is not), by
-- revoked_by, a token's name: its node key is refused from then on.
ALTER TABLE endpoints ADD COLUMN revoked_at INTEGER;
ALTER TABLE endpoints ADD COLUMN revoked_by TEXT NOT NULL DEFAULT '';

-- job_seq_unknown is 1 while the store cannot know the highest job number
-- the endpoint's agent has seen: from the endpoint's enrollment (an agent
-- enrolling again, say after its endpoint was deleted, keeps the numbers
-- it saw) and from a restore from a backup (the jobs created after the
-- backup are not in the store), until the agent's next report, whose word
-- then raises job_seq once. Otherwise a report moves nothing: job_seq
-- moves with the controller's own jobs and the refusal of an open one.
-- Endpoints stored before this migration keep 0: their numbers are known.
ALTER TABLE endpoints ADD COLUMN job_seq_unknown INTEGER NOT NULL DEFAULT 0;
