-- controller is the controller's own record, one row: the public half of
-- the job-signing key every patchd on this database signs with, recorded
-- by the first one to start (RecordSigningKey). Agents pin that key, so a
-- patchd with another one refuses to start.
CREATE TABLE controller (
	one         boolean PRIMARY KEY DEFAULT true CHECK (one),
	signing_key bytea NOT NULL,
	created     bigint NOT NULL
);
