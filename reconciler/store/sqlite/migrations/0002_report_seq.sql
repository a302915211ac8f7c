-- report_seq is the sequence number of the endpoint's stored report, as
-- its agent numbered it: a late copy of an older report (a retry or a
-- duplicate from the network) must not replace a newer one.
ALTER TABLE endpoints ADD COLUMN report_seq INTEGER NOT NULL DEFAULT 0;
