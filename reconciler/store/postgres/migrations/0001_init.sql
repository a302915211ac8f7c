-- Initial schema: the tables of the SQLite store (its migrations 0001 to
-- 0003), in PostgreSQL's types.
--
-- Times are Unix nanoseconds in UTC (bigint), as in SQLite: the same
-- precision both ways (timestamptz keeps microseconds only), the same
-- range (1678 to 2261); NULL means unset. Lists are text[], labels jsonb,
-- an audit entry's detail json (kept byte for byte as it was given);
-- NULL means empty. Identifiers sort byte by byte (COLLATE "C"), as in
-- SQLite, whatever the database's collation: snapshots list endpoints and
-- updates in Go's string order.

CREATE TABLE endpoints (
	id             text COLLATE "C" PRIMARY KEY,
	client         text COLLATE "C" NOT NULL,
	hostname       text NOT NULL,
	node_key_hash  bytea NOT NULL,
	enrolled_at    bigint NOT NULL,
	os_family      text NOT NULL DEFAULT '',
	os_version     text NOT NULL DEFAULT '',
	labels         jsonb,
	last_seen      bigint,
	reboot_pending boolean NOT NULL DEFAULT false,
	-- job_seq is the last sequence number given to a job of this endpoint.
	-- It lives here, not as max(jobs.seq), so it never goes back when jobs
	-- are removed.
	job_seq        bigint NOT NULL DEFAULT 0,
	-- report_seq is the sequence number of the endpoint's stored report,
	-- as its agent numbered it: a late copy of an older report must not
	-- replace a newer one.
	report_seq     bigint NOT NULL DEFAULT 0
);

CREATE INDEX endpoints_by_client ON endpoints (client, id);

-- updates holds the updates of each endpoint's last report.
CREATE TABLE updates (
	endpoint          text COLLATE "C" NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
	id                text COLLATE "C" NOT NULL,
	source            text NOT NULL,
	name              text NOT NULL,
	title             text NOT NULL,
	version           text NOT NULL,
	installed_version text NOT NULL,
	category          text NOT NULL,
	severity          text NOT NULL,
	cvss              double precision NOT NULL,
	cves              text[],
	known_exploited   boolean NOT NULL,
	released          bigint,
	reboot_required   boolean NOT NULL,
	requires          text[],
	installed         boolean NOT NULL,
	-- installed_at is the store's own: when the update was first reported
	-- installed or a job installed it.
	installed_at      bigint,
	-- released_from says where released came from: 'vendor' (the
	-- endpoint's tool) or 'first-seen' (first_seen.at).
	released_from     text NOT NULL DEFAULT '',
	source_package    text NOT NULL DEFAULT '',
	urgency           text NOT NULL DEFAULT '',
	PRIMARY KEY (endpoint, id)
);

-- first_seen is when the fleet first saw each update (by source and id),
-- the release time of every update whose source gives none.
CREATE TABLE first_seen (
	source text COLLATE "C" NOT NULL,
	id     text COLLATE "C" NOT NULL,
	at     bigint NOT NULL,
	PRIMARY KEY (source, id)
);

CREATE TABLE jobs (
	id              text COLLATE "C" PRIMARY KEY,
	seq             bigint NOT NULL,
	endpoint        text COLLATE "C" NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
	client          text COLLATE "C" NOT NULL,
	ring            text NOT NULL,
	updates         text[] NOT NULL,
	not_after       bigint NOT NULL,
	reboot          text NOT NULL,
	reboot_deadline text NOT NULL,
	revision        text NOT NULL,
	idempotency_key text NOT NULL UNIQUE,
	payload         bytea,
	signature       bytea,
	state           text NOT NULL CHECK (state IN ('open', 'leased', 'done', 'expired')),
	lease_until     bigint,
	created_at      bigint NOT NULL,
	finished_at     bigint,
	UNIQUE (endpoint, seq)
);

-- Unfinished jobs are few; these partial indexes keep due-job lookups,
-- in-flight marking and expiry independent of job history.
CREATE INDEX jobs_unfinished_by_endpoint ON jobs (endpoint, seq) WHERE state IN ('open', 'leased');
CREATE INDEX jobs_unfinished_by_not_after ON jobs (not_after) WHERE state IN ('open', 'leased');

-- attempts are the recorded results of jobs, one row per update. They
-- outlive reports: an update that leaves and comes back keeps its history.
CREATE TABLE attempts (
	id        bigserial PRIMARY KEY,
	endpoint  text COLLATE "C" NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
	update_id text COLLATE "C" NOT NULL,
	job       text NOT NULL,
	ring      text NOT NULL,
	at        bigint NOT NULL,
	result    text NOT NULL,
	error     text NOT NULL,
	output    text NOT NULL
);

CREATE INDEX attempts_by_update ON attempts (endpoint, update_id, at, id);

-- A revision's id gives the order of recording; revisions are recorded
-- under the audit lock (see audit.go), so ids commit in order.
CREATE TABLE revisions (
	id       bigserial PRIMARY KEY,
	hash     text NOT NULL,
	status   text NOT NULL CHECK (status IN ('applied', 'refused')),
	at       bigint NOT NULL,
	client   text COLLATE "C" NOT NULL,
	problems text[]
);

CREATE INDEX revisions_by_client ON revisions (client, status, id);
CREATE INDEX revisions_by_status ON revisions (status, id);

-- Audit ids come from a sequence, taken under a transaction-scoped
-- advisory lock held until commit (see audit.go): ids commit in the order
-- they were given, so a reader paging with afterID never misses an entry
-- committed after its page.
CREATE TABLE audit (
	id       bigserial PRIMARY KEY,
	at       bigint NOT NULL,
	kind     text NOT NULL,
	client   text NOT NULL,
	endpoint text NOT NULL,
	revision text NOT NULL,
	job      text NOT NULL,
	detail   json
);
