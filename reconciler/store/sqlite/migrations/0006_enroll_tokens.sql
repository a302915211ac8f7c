-- enroll_tokens are the enrollment tokens made at runtime (patchctl
-- enroll create). Only the SHA-256 of a token's secret is kept. labels
-- is a JSON object, NULL for none; expires_at and max_uses are NULL for
-- no limit. A revoked token keeps its row (revoked_at set), so its name
-- is not given again. AUTOINCREMENT: an id is never given again either.
CREATE TABLE enroll_tokens (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	name       TEXT NOT NULL UNIQUE,
	client     TEXT NOT NULL,
	hash       BLOB NOT NULL UNIQUE,
	labels     TEXT,
	expires_at INTEGER,
	max_uses   INTEGER,
	uses       INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	revoked_at INTEGER,
	revoked_by TEXT NOT NULL DEFAULT ''
);

-- enroll_labels are the labels of the enrollment token an endpoint
-- enrolled with (a JSON object, NULL for none), merged into every report's
-- labels; enroll_token is that token's id, NULL for the client's static
-- secret.
ALTER TABLE endpoints ADD COLUMN enroll_labels TEXT;
ALTER TABLE endpoints ADD COLUMN enroll_token INTEGER;
