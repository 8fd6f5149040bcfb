-- Ten minutes of raw samples, every node's, in one blob (the format of raw_hour_pack,
-- FleetStore/RawHourPack.swift): a report reads the hour under way from these instead of one row
-- per sample, until the hour is over and has its own pack. A row per slice of
-- [slice_start, slice_start + 600 s) (unix seconds) that a rollup pass rolled up a sample of.
--   version: set by every rollup pass that rolls up a sample taken in the slice (the pass
--     counter's new value, never given twice), and by a purge for every slice.
--   pack_version, data: the slice's samples as they were at `version` (made by the rollup
--     service from one read, stored only if `version` has not moved since); used only while
--     pack_version = version, and, like the hour packs, not from the first slice a sample not
--     rolled up yet reaches, nor for a slice retention cut into.
CREATE TABLE raw_slice_pack (
  slice_start INTEGER PRIMARY KEY,
  version INTEGER NOT NULL,
  pack_version INTEGER,
  data BLOB
);
