-- first_seen is when the fleet first saw each update (by source and id),
-- the release time of every update whose source gives none: minAge,
-- releasedBefore and SLAs count from it instead of from nothing.
CREATE TABLE first_seen (
	source TEXT NOT NULL,
	id     TEXT NOT NULL,
	at     INTEGER NOT NULL,
	PRIMARY KEY (source, id)
) WITHOUT ROWID;

-- released_from says where updates.released came from: 'vendor' (the
-- endpoint's tool), 'first-seen' (first_seen.at), '' (not known yet: a
-- row stored before this migration, filled at the endpoint's next report).
ALTER TABLE updates ADD COLUMN released_from TEXT NOT NULL DEFAULT '';
ALTER TABLE updates ADD COLUMN source_package TEXT NOT NULL DEFAULT '';
ALTER TABLE updates ADD COLUMN urgency TEXT NOT NULL DEFAULT '';
