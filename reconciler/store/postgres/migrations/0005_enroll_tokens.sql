-- What the SQLite store's migration 0006 added: enrollment tokens made at
-- runtime (patchctl enroll create), and the labels and token endpoints
-- enrolled with.

-- enroll_tokens: only the SHA-256 of a token's secret is kept. labels is
-- NULL for none; expires_at and max_uses are NULL for no limit. A revoked
-- token keeps its row (revoked_at set), so its name is not given again.
CREATE TABLE enroll_tokens (
	id         bigserial PRIMARY KEY,
	name       text COLLATE "C" NOT NULL UNIQUE,
	client     text COLLATE "C" NOT NULL,
	hash       bytea NOT NULL UNIQUE,
	labels     jsonb,
	expires_at bigint,
	max_uses   bigint,
	uses       bigint NOT NULL DEFAULT 0,
	created_at bigint NOT NULL,
	created_by text NOT NULL,
	revoked_at bigint,
	revoked_by text NOT NULL DEFAULT ''
);

-- enroll_labels are the labels of the enrollment token an endpoint
-- enrolled with, merged into every report's labels; enroll_token is that
-- token's id, NULL for the client's static secret.
ALTER TABLE endpoints
	ADD COLUMN enroll_labels jsonb,
	ADD COLUMN enroll_token bigint;
