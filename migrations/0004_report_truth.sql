-- An agent's goodbye: the last sample it sends on a clean stop has ends_data = 1. Its value
-- does not hold past it (no tail), so the time after a clean stop is a gap, not saving.
ALTER TABLE samples ADD COLUMN ends_data INTEGER NOT NULL DEFAULT 0;

-- Hours whose last sample's tail was cut at "now" when rolled up (an hour never claims time
-- that has not passed yet); later rollup passes recompute them until the tail is whole.
CREATE TABLE rollup_pending (
  node_id TEXT NOT NULL,
  bucket_start INTEGER NOT NULL,
  PRIMARY KEY (node_id, bucket_start)
) WITHOUT ROWID;
