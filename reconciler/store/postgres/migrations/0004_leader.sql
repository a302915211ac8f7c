-- leader is the lease of the replica that follows the fleet repo and plans
-- (lease.go): at most one row, written by the first replica to take the
-- lease. holder is the replica's configured name (for /v1/status and the
-- patchline_leader metric), instance one run of it (so a replica that
-- restarts under the same name waits out the lease its last run held),
-- token the fencing token, raised each time the lease changes hands, and
-- expires_at the end of the lease by the database's clock.
CREATE TABLE leader (
	one        boolean PRIMARY KEY DEFAULT true CHECK (one),
	holder     text COLLATE "C" NOT NULL,
	instance   text NOT NULL,
	token      bigint NOT NULL,
	expires_at timestamptz NOT NULL
);

-- fence is the leader's fencing token a job was created under (NULL for
-- jobs created before replicas, or imported).
ALTER TABLE jobs ADD COLUMN fence bigint;
