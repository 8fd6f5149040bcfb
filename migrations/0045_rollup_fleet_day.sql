-- The fleet's row per UTC day: what the by-day savings report folds from every node's rollup_day
-- row of the day (ReportAggregation.GroupSums, in node id order), so that a report over a year
-- reads 365 rows instead of 365,000 (one per node per day). It is a rollup kept beside rollup_day,
-- never an approximation of it: triggers mark every day whose rollup_day rows change as dirty; the
-- rollup service folds dirty days again with the code the report runs over rollup_day itself, and
-- a report that meets a day still dirty (or a day in which some node registered or was deleted,
-- whose existence the stored sums do not know) folds that day's rollup_day rows itself.
-- Times in unix SECONDS.
--   nodes:        rollup_day rows folded (nodes with a row that day)
--   with_data:    nodes among them with an average (GroupSums.withData)
--   data_seconds … profit_seconds: the rows' figures merged (BucketStats.merge)
--   saved_avg_sum, cpu_cores_sum, net_profit_sum: sums of the nodes' averages, NULL when no node
--                 has one
--   gaps:         the parts of the day where none of the nodes had data, JSON [[from, to], ...]
--                 (NULL when some node had data throughout)
CREATE TABLE rollup_fleet_day (
  bucket_start INTEGER PRIMARY KEY NOT NULL,
  nodes INTEGER NOT NULL,
  with_data INTEGER NOT NULL,
  data_seconds REAL NOT NULL,
  samples INTEGER NOT NULL,
  saved_byte_seconds REAL NOT NULL,
  saved_peak INTEGER,
  cpu_seconds REAL NOT NULL,
  cpu_pct_peak REAL,
  full_scans INTEGER NOT NULL,
  running_seconds REAL NOT NULL,
  stopped_seconds REAL NOT NULL,
  pruned_seconds REAL NOT NULL,
  unmanaged_seconds REAL NOT NULL,
  profit_byte_seconds REAL NOT NULL,
  profit_seconds REAL NOT NULL,
  saved_avg_sum REAL,
  cpu_cores_sum REAL,
  net_profit_sum REAL,
  gaps TEXT
);
CREATE TABLE rollup_fleet_day_dirty (
  bucket_start INTEGER PRIMARY KEY NOT NULL
);
CREATE TRIGGER rollup_day_fleet_insert AFTER INSERT ON rollup_day BEGIN
  INSERT OR IGNORE INTO rollup_fleet_day_dirty (bucket_start) VALUES (NEW.bucket_start);
END;
CREATE TRIGGER rollup_day_fleet_delete AFTER DELETE ON rollup_day BEGIN
  INSERT OR IGNORE INTO rollup_fleet_day_dirty (bucket_start) VALUES (OLD.bucket_start);
END;
CREATE TRIGGER rollup_day_fleet_update AFTER UPDATE ON rollup_day BEGIN
  INSERT OR IGNORE INTO rollup_fleet_day_dirty (bucket_start) VALUES (OLD.bucket_start);
  INSERT OR IGNORE INTO rollup_fleet_day_dirty (bucket_start) VALUES (NEW.bucket_start);
END;
-- Existing days: every one dirty, folded by the rollup service's first passes.
INSERT INTO rollup_fleet_day_dirty (bucket_start) SELECT DISTINCT bucket_start FROM rollup_day;
