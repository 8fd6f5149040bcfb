-- Each label group's hourly sum of saved_byte_seconds (SQLite: migrations/0046_label_hour_sums.sql,
-- which says what the rows mean and when they are valid).
ALTER TABLE rollup_fleet_hour ADD COLUMN label_sums_known INTEGER NOT NULL DEFAULT 0;
CREATE TABLE rollup_label_sum (
  bucket_start BIGINT NOT NULL,
  label_key TEXT NOT NULL,
  label_value TEXT NOT NULL,
  saved_byte_seconds DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (bucket_start, label_key, label_value)
);
