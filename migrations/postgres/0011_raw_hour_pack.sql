-- One UTC hour of raw samples in one blob (SQLite: migrations/0047_raw_hour_pack.sql, which says
-- what the rows mean and when they are used).
CREATE TABLE raw_hour_pack (
  bucket_start BIGINT PRIMARY KEY,
  peak_version BIGINT NOT NULL,
  data BYTEA NOT NULL
);
-- Stored out of line without compression: the varints leave pglz little to gain, and a report
-- reads the whole value.
ALTER TABLE raw_hour_pack ALTER COLUMN data SET STORAGE EXTERNAL;
