-- Initial schema. Times are Unix nanoseconds (UTC); NULL means unset.
-- Lists and maps are JSON text; NULL means empty.

CREATE TABLE endpoints (
	id             TEXT PRIMARY KEY,
	client         TEXT NOT NULL,
	hostname       TEXT NOT NULL,
	node_key_hash  BLOB NOT NULL,
	enrolled_at    INTEGER NOT NULL,
	os_family      TEXT NOT NULL DEFAULT '',
	os_version     TEXT NOT NULL DEFAULT '',
	labels         TEXT,
	last_seen      INTEGER,
	reboot_pending INTEGER NOT NULL DEFAULT 0,
	-- job_seq is the last sequence number given to a job of this endpoint.
	-- It lives here, not as max(jobs.seq), so it never goes back when jobs
	-- are removed.
	job_seq        INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX endpoints_by_client ON endpoints (client, id);

-- updates holds the updates of each endpoint's last report.
CREATE TABLE updates (
	endpoint          TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
	id                TEXT NOT NULL,
	source            TEXT NOT NULL,
	name              TEXT NOT NULL,
	title             TEXT NOT NULL,
	version           TEXT NOT NULL,
	installed_version TEXT NOT NULL,
	category          TEXT NOT NULL,
	severity          TEXT NOT NULL,
	cvss              REAL NOT NULL,
	cves              TEXT,
	known_exploited   INTEGER NOT NULL,
	released          INTEGER,
	reboot_required   INTEGER NOT NULL,
	requires          TEXT,
	installed         INTEGER NOT NULL,
	-- installed_at is the store's own: when the update was first reported
	-- installed or a job installed it.
	installed_at      INTEGER,
	PRIMARY KEY (endpoint, id)
) WITHOUT ROWID;

CREATE TABLE jobs (
	id              TEXT PRIMARY KEY,
	seq             INTEGER NOT NULL,
	endpoint        TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
	client          TEXT NOT NULL,
	ring            TEXT NOT NULL,
	updates         TEXT NOT NULL,
	not_after       INTEGER NOT NULL,
	reboot          TEXT NOT NULL,
	reboot_deadline TEXT NOT NULL,
	revision        TEXT NOT NULL,
	idempotency_key TEXT NOT NULL UNIQUE,
	payload         BLOB,
	signature       BLOB,
	state           TEXT NOT NULL CHECK (state IN ('open', 'leased', 'done', 'expired')),
	lease_until     INTEGER,
	created_at      INTEGER NOT NULL,
	finished_at     INTEGER,
	UNIQUE (endpoint, seq)
);

-- Unfinished jobs are few; these partial indexes keep due-job lookups,
-- in-flight marking and expiry independent of job history.
CREATE INDEX jobs_unfinished_by_endpoint ON jobs (endpoint, seq) WHERE state IN ('open', 'leased');
CREATE INDEX jobs_unfinished_by_not_after ON jobs (not_after) WHERE state IN ('open', 'leased');

-- attempts are the recorded results of jobs, one row per update. They
-- outlive reports: an update that leaves and comes back keeps its history.
CREATE TABLE attempts (
	id        INTEGER PRIMARY KEY,
	endpoint  TEXT NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
	update_id TEXT NOT NULL,
	job       TEXT NOT NULL,
	ring      TEXT NOT NULL,
	at        INTEGER NOT NULL,
	result    TEXT NOT NULL,
	error     TEXT NOT NULL,
	output    TEXT NOT NULL
);

CREATE INDEX attempts_by_update ON attempts (endpoint, update_id, at, id);

CREATE TABLE revisions (
	id       INTEGER PRIMARY KEY,
	hash     TEXT NOT NULL,
	status   TEXT NOT NULL CHECK (status IN ('applied', 'refused')),
	at       INTEGER NOT NULL,
	client   TEXT NOT NULL,
	problems TEXT
);

CREATE INDEX revisions_by_client ON revisions (client, status, id);
CREATE INDEX revisions_by_status ON revisions (status, id);

-- AUTOINCREMENT: audit ids never repeat, so a reader paging with afterID
-- never misses or repeats an entry.
CREATE TABLE audit (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	at       INTEGER NOT NULL,
	kind     TEXT NOT NULL,
	client   TEXT NOT NULL,
	endpoint TEXT NOT NULL,
	revision TEXT NOT NULL,
	job      TEXT NOT NULL,
	detail   TEXT
);
