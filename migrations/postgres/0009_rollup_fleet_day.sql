-- SQLite's 0045: the fleet's row per UTC day, folded from every node's rollup_day row of the day,
-- and the days whose rollup_day rows changed since (marked by the triggers below). Marks are made
-- as 0008 makes the fleet hours': an UPDATE of the day's mark once per transaction, so that a
-- flush on another connection that read the day's rows on an older snapshot conflicts when it
-- deletes the mark (a serialization failure, retried on a new snapshot) instead of deleting the
-- mark of rows it never folded. Times in unix SECONDS.
CREATE TABLE rollup_fleet_day (
  bucket_start BIGINT PRIMARY KEY NOT NULL,
  nodes BIGINT NOT NULL,
  with_data BIGINT NOT NULL,
  data_seconds DOUBLE PRECISION NOT NULL,
  samples BIGINT NOT NULL,
  saved_byte_seconds DOUBLE PRECISION NOT NULL,
  saved_peak BIGINT,
  cpu_seconds DOUBLE PRECISION NOT NULL,
  cpu_pct_peak DOUBLE PRECISION,
  full_scans BIGINT NOT NULL,
  running_seconds DOUBLE PRECISION NOT NULL,
  stopped_seconds DOUBLE PRECISION NOT NULL,
  pruned_seconds DOUBLE PRECISION NOT NULL,
  unmanaged_seconds DOUBLE PRECISION NOT NULL,
  profit_byte_seconds DOUBLE PRECISION NOT NULL,
  profit_seconds DOUBLE PRECISION NOT NULL,
  saved_avg_sum DOUBLE PRECISION,
  cpu_cores_sum DOUBLE PRECISION,
  net_profit_sum DOUBLE PRECISION,
  gaps TEXT
);
CREATE TABLE rollup_fleet_day_dirty (
  bucket_start BIGINT PRIMARY KEY NOT NULL
);
CREATE FUNCTION rollup_day_fleet_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' THEN
    INSERT INTO rollup_fleet_day_dirty AS d (bucket_start) VALUES (OLD.bucket_start)
      ON CONFLICT (bucket_start) DO UPDATE SET bucket_start = excluded.bucket_start
      WHERE d.xmin <> pg_current_xact_id()::xid;
  END IF;
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.bucket_start <> OLD.bucket_start) THEN
    INSERT INTO rollup_fleet_day_dirty AS d (bucket_start) VALUES (NEW.bucket_start)
      ON CONFLICT (bucket_start) DO UPDATE SET bucket_start = excluded.bucket_start
      WHERE d.xmin <> pg_current_xact_id()::xid;
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER rollup_day_fleet_insert AFTER INSERT ON rollup_day
  FOR EACH ROW EXECUTE FUNCTION rollup_day_fleet_mark_dirty();
CREATE TRIGGER rollup_day_fleet_delete AFTER DELETE ON rollup_day
  FOR EACH ROW EXECUTE FUNCTION rollup_day_fleet_mark_dirty();
CREATE TRIGGER rollup_day_fleet_update AFTER UPDATE ON rollup_day
  FOR EACH ROW EXECUTE FUNCTION rollup_day_fleet_mark_dirty();
-- Existing days: every one dirty, folded by the rollup service's first passes.
INSERT INTO rollup_fleet_day_dirty (bucket_start) SELECT DISTINCT bucket_start FROM rollup_day;
