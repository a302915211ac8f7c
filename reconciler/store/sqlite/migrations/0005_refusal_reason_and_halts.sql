-- reason is the word a refusal was recorded with ('invalid', 'verify'),
-- so a refusal shown after a restart still says why; '' for rows stored
-- before this migration and for applied revisions.
ALTER TABLE revisions ADD COLUMN reason TEXT NOT NULL DEFAULT '';

-- halts are the rollouts halted right now, per client, as the audit log
-- last recorded them: a halt is audited when it appears and a resume when
-- it goes, once per change, and not again after a restart.
CREATE TABLE halts (
	client    TEXT NOT NULL,
	ring      TEXT NOT NULL,
	update_id TEXT NOT NULL,
	reason    TEXT NOT NULL,
	revision  TEXT NOT NULL,
	at        INTEGER NOT NULL,
	PRIMARY KEY (client, ring, update_id)
) WITHOUT ROWID;

-- The halts the audit log holds without a later resume: a store written
-- before this migration does not audit them again.
INSERT INTO halts (client, ring, update_id, reason, revision, at)
SELECT a.client, coalesce(json_extract(a.detail, '$.ring'), ''), coalesce(json_extract(a.detail, '$.update'), ''),
       coalesce(json_extract(a.detail, '$.reason'), ''), a.revision, a.at
FROM audit a
JOIN (SELECT max(id) AS id FROM audit WHERE kind IN ('halt', 'resume') AND json_valid(detail)
      GROUP BY client, json_extract(detail, '$.ring'), json_extract(detail, '$.update')) last ON a.id = last.id
WHERE a.kind = 'halt';
