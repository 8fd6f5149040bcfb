-- The fleet's hourly series: per UTC hour, the sum of saved_byte_seconds over every rollup_hour row
-- of that hour (all nodes), so that reports read a year's fleet series as 8,760 rows instead of
-- summing 8.76 M hour rows per request (the by-day report's day peaks, fleet peaks over <= 7 days).
-- It is a rollup maintained beside rollup_hour, never an approximation of it: triggers mark every
-- hour whose rollup_hour rows change as dirty; the rollup service recomputes dirty hours with the
-- same SUM the reports ran before (same index, same order: the same double), and a report that
-- meets an hour still dirty sums that hour from rollup_hour itself. Times in unix SECONDS.
CREATE TABLE rollup_fleet_hour (
  bucket_start INTEGER PRIMARY KEY NOT NULL,
  saved_byte_seconds REAL NOT NULL
);
CREATE TABLE rollup_fleet_dirty (
  bucket_start INTEGER PRIMARY KEY NOT NULL
);
CREATE TRIGGER rollup_hour_fleet_insert AFTER INSERT ON rollup_hour BEGIN
  INSERT OR IGNORE INTO rollup_fleet_dirty (bucket_start) VALUES (NEW.bucket_start);
END;
CREATE TRIGGER rollup_hour_fleet_delete AFTER DELETE ON rollup_hour BEGIN
  INSERT OR IGNORE INTO rollup_fleet_dirty (bucket_start) VALUES (OLD.bucket_start);
END;
CREATE TRIGGER rollup_hour_fleet_update AFTER UPDATE ON rollup_hour BEGIN
  INSERT OR IGNORE INTO rollup_fleet_dirty (bucket_start) VALUES (OLD.bucket_start);
  INSERT OR IGNORE INTO rollup_fleet_dirty (bucket_start) VALUES (NEW.bucket_start);
END;
-- Existing hours: every one dirty, recomputed by the rollup service's first pass.
INSERT INTO rollup_fleet_dirty (bucket_start) SELECT DISTINCT bucket_start FROM rollup_hour;
