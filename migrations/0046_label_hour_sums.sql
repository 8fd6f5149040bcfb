-- Each label group's hourly sum of saved_byte_seconds (the group's hourly series, which savings
-- reports by label up to 7 days long read for their peaks), kept per UTC hour beside the fleet's
-- (0040), so that a report over a week reads a few thousand rows instead of joining every node's
-- 168 hour rows to its label. Groups are the nodes' current labels, as in 0043: a node without
-- the key is in the group "". Every row of an hour is written by the rollup service from that
-- hour's rollup_hour rows, added in one fixed order (FleetDatabase.labelHourSums), the same
-- function reports use for hours whose sums are not stored, so the two are the same double.
--   rollup_fleet_hour.label_sums_known = 1: the hour's rows hold every group of every label key
--     a node had when they were computed; 0 when any node's labels changed since (setLabels),
--     and for every hour when this migration runs (the rollup service computes them, newest
--     first). A report reads an hour's rows only while the hour is also not dirty
--     (rollup_fleet_dirty: its rollup_hour rows changed, the fleet sum and these not redone yet)
--     and has rows of the key asked for; any other hour it sums itself.
ALTER TABLE rollup_fleet_hour ADD COLUMN label_sums_known INTEGER NOT NULL DEFAULT 0;
CREATE TABLE rollup_label_sum (
  bucket_start INTEGER NOT NULL,
  label_key TEXT NOT NULL,
  label_value TEXT NOT NULL,
  saved_byte_seconds REAL NOT NULL,
  PRIMARY KEY (bucket_start, label_key, label_value)
) WITHOUT ROWID;
