-- Ten minutes of raw samples in one blob (SQLite: migrations/0048_raw_slice_pack.sql, which says
-- what the rows mean and when they are used).
CREATE TABLE raw_slice_pack (
  slice_start BIGINT PRIMARY KEY,
  version BIGINT NOT NULL,
  pack_version BIGINT,
  data BYTEA
);
ALTER TABLE raw_slice_pack ALTER COLUMN data SET STORAGE EXTERNAL;
