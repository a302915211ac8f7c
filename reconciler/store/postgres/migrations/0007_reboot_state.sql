-- reboot_state is the reboot state the endpoint's agent last reported
-- (JSON of protocol.RebootState: mode, pending since, deferrals used,
-- scheduled at); NULL when its last report said none, as agents that
-- predate it do.
ALTER TABLE endpoints ADD COLUMN reboot_state jsonb;
