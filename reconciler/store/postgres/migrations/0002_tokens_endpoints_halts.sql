-- What the SQLite store's migrations 0004 and 0005 added: scoped admin
-- tokens, revoked endpoints, job numbers known only from real jobs,
-- refusal reasons and halted rollouts.

-- tokens are the admin API's named tokens. Only the SHA-256 of a token's
-- secret is kept. clients is NULL for every client. A revoked token keeps
-- its row (revoked_at set), so its name is not given again.
CREATE TABLE tokens (
	name       text COLLATE "C" PRIMARY KEY,
	hash       bytea NOT NULL UNIQUE,
	scopes     text[] NOT NULL,
	clients    text[],
	created_at bigint NOT NULL,
	created_by text NOT NULL,
	last_used  bigint,
	revoked_at bigint,
	revoked_by text NOT NULL DEFAULT ''
);

-- revoked_at is when an endpoint was revoked (NULL while it is not), by
-- revoked_by, a token's name: its node key is refused from then on.
--
-- job_seq_unknown is true while the store cannot know the highest job
-- number the endpoint's agent has seen: from the endpoint's enrollment
-- (an agent enrolling again, say after its endpoint was deleted, keeps
-- the numbers it saw) until the agent's next report, whose word then
-- raises job_seq once. Otherwise a report moves nothing: job_seq moves
-- with the controller's own jobs and the refusal of an open one.
-- Endpoints stored before this migration keep false: their numbers are
-- known.
ALTER TABLE endpoints
	ADD COLUMN revoked_at bigint,
	ADD COLUMN revoked_by text NOT NULL DEFAULT '',
	ADD COLUMN job_seq_unknown boolean NOT NULL DEFAULT false;

-- reason is the word a refusal was recorded with ('invalid', 'verify'),
-- so a refusal shown after a restart still says why; '' for rows stored
-- before this migration and for applied revisions.
ALTER TABLE revisions ADD COLUMN reason text NOT NULL DEFAULT '';

-- halts are the rollouts halted right now, per client, as the audit log
-- last recorded them: a halt is audited when it appears and a resume when
-- it goes, once per change, and not again after a restart.
CREATE TABLE halts (
	client    text COLLATE "C" NOT NULL,
	ring      text COLLATE "C" NOT NULL,
	update_id text COLLATE "C" NOT NULL,
	reason    text NOT NULL,
	revision  text NOT NULL,
	at        bigint NOT NULL,
	PRIMARY KEY (client, ring, update_id)
);

-- The halts the audit log holds without a later resume: a store written
-- before this migration does not audit them again.
INSERT INTO halts (client, ring, update_id, reason, revision, at)
SELECT client, coalesce(ring, ''), coalesce(update_id, ''), coalesce(reason, ''), revision, at
FROM (
	SELECT DISTINCT ON (client, detail->>'ring', detail->>'update')
		kind, client, detail->>'ring' AS ring, detail->>'update' AS update_id, detail->>'reason' AS reason, revision, at
	FROM audit
	WHERE kind IN ('halt', 'resume') AND detail IS NOT NULL AND json_typeof(detail) = 'object'
	ORDER BY client, detail->>'ring', detail->>'update', id DESC
) AS last
WHERE kind = 'halt'
ON CONFLICT DO NOTHING;
