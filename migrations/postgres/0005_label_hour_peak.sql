-- Exact peaks per hour of the groups of a label key (SQLite: migrations/0043_label_hour_peak.sql,
-- which says what the rows mean and when they are valid).
ALTER TABLE rollup_fleet_hour ADD COLUMN labels_known INTEGER NOT NULL DEFAULT 0;
CREATE TABLE rollup_label_hour (
  bucket_start BIGINT NOT NULL,
  label_key TEXT NOT NULL,
  label_value TEXT NOT NULL,
  saved_peak BIGINT,
  PRIMARY KEY (bucket_start, label_key, label_value)
);
