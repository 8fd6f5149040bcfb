-- The triggers on rollup_hour mark an hour dirty with an UPDATE of its rollup_fleet_dirty row when
-- it is already there, not DO NOTHING. A flush on another connection (another replica's rollup
-- service or a report's catch-up) that read the hour's sum on an older snapshot then conflicts
-- when it deletes that row (a serialization failure, retried on a new snapshot) instead of
-- deleting the mark of rows it never summed, which left the fleet's hourly sum wrong with nothing
-- to correct it. (SQLite has one writer: its flush and the triggers never overlap.)
CREATE OR REPLACE FUNCTION rollup_hour_fleet_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' THEN
    INSERT INTO rollup_fleet_dirty (bucket_start) VALUES (OLD.bucket_start)
      ON CONFLICT (bucket_start) DO UPDATE SET bucket_start = excluded.bucket_start;
  END IF;
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.bucket_start <> OLD.bucket_start) THEN
    INSERT INTO rollup_fleet_dirty (bucket_start) VALUES (NEW.bucket_start)
      ON CONFLICT (bucket_start) DO UPDATE SET bucket_start = excluded.bucket_start;
  END IF;
  RETURN NULL;
END;
$$;
