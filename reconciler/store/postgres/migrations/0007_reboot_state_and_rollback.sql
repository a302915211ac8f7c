-- reboot_state is the reboot state the endpoint's agent last reported
-- (JSON of protocol.RebootState: mode, pending since, deferrals used,
-- scheduled at); NULL when its last report said none, as agents that
-- predate it do.
ALTER TABLE endpoints ADD COLUMN reboot_state jsonb;

-- action is a job's action, '' to install its updates or 'rollback' to
-- remove them, and the action of the job each attempt belonged to: a
-- succeeded rollback leaves the update not installed, and the planner
-- judges installs and rollbacks by their own attempts.
ALTER TABLE jobs ADD COLUMN action text NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN action text NOT NULL DEFAULT '';
