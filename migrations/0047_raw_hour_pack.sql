-- One UTC hour of raw samples, every node's, in one blob (FleetStore/RawHourPack.swift says the
-- format): a report reads the partial hours at its edges from it, one row instead of one row per
-- sample. Written by the rollup service with the hour's peaks, from the same read of the hour's
-- samples; it holds exactly the rows of `samples` with taken_at in [bucket_start,
-- bucket_start + 3600 s) at the time, in the order a read of them gives.
--   peak_version: the hour's rollup_fleet_hour.peak_version it was made from. Any change of the
--     hour's rows gives the hour a new version (0044), so a pack whose version differs, or whose
--     hour is dirty (rollup_fleet_dirty), or that a sample not rolled up yet may reach, is not
--     used: reports read the hour's rows instead, and the service makes the pack again.
--   Retention deletes the packs of the hours whose samples it deletes, in the same transaction.
CREATE TABLE raw_hour_pack (
  bucket_start INTEGER PRIMARY KEY,
  peak_version INTEGER NOT NULL,
  data BLOB NOT NULL
);
