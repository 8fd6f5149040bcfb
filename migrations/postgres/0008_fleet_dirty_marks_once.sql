-- 0007 made the triggers on rollup_hour mark an hour dirty with an UPDATE of its
-- rollup_fleet_dirty row, so that a flush on another connection that read the hour's sum on an
-- older snapshot conflicts instead of deleting the mark. It updated that one row once for every
-- hour row written: a transaction that writes N rows of one hour (a rollup pass over a fleet)
-- made N versions of it, and each ON CONFLICT walked the versions before it (quadratic: 40,000
-- rows of one hour took 11.7 s, against 0.2 s with DO NOTHING). One update per transaction is
-- what makes the flush conflict; later marks in the same transaction only lock the row they
-- already updated (`xmin` is this transaction). In a subtransaction `xmin` is the
-- subtransaction's id and the row is updated again, as under 0007: slower, never wrong.
CREATE OR REPLACE FUNCTION rollup_hour_fleet_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR TG_OP = 'UPDATE' THEN
    INSERT INTO rollup_fleet_dirty AS d (bucket_start) VALUES (OLD.bucket_start)
      ON CONFLICT (bucket_start) DO UPDATE SET bucket_start = excluded.bucket_start
      WHERE d.xmin <> pg_current_xact_id()::xid;
  END IF;
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.bucket_start <> OLD.bucket_start) THEN
    INSERT INTO rollup_fleet_dirty AS d (bucket_start) VALUES (NEW.bucket_start)
      ON CONFLICT (bucket_start) DO UPDATE SET bucket_start = excluded.bucket_start
      WHERE d.xmin <> pg_current_xact_id()::xid;
  END IF;
  RETURN NULL;
END;
$$;
