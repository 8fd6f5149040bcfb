-- Month rollups (per node per UTC calendar month), merged from day rollups like days from
-- hours, so that a report over a year reads ~12 rows per node instead of ~365. Same columns and
-- conventions as rollup_day (times in unix seconds; `gaps` = uncovered parts of the month).
-- Existing day rollups are merged into months by the rollup service when it starts.
CREATE TABLE rollup_month (
  node_id TEXT NOT NULL,
  bucket_start INTEGER NOT NULL,
  data_seconds REAL NOT NULL,
  samples INTEGER NOT NULL,
  saved_byte_seconds REAL NOT NULL,
  saved_avg REAL NOT NULL,
  saved_peak INTEGER,
  cpu_seconds REAL NOT NULL,
  cpu_pct_avg REAL NOT NULL,
  cpu_pct_peak REAL,
  full_scans INTEGER NOT NULL,
  running_seconds REAL NOT NULL,
  stopped_seconds REAL NOT NULL,
  pruned_seconds REAL NOT NULL,
  unmanaged_seconds REAL NOT NULL,
  profit_byte_seconds REAL NOT NULL,
  profit_seconds REAL NOT NULL,
  gaps TEXT,
  PRIMARY KEY (node_id, bucket_start)
) WITHOUT ROWID;
CREATE INDEX rollup_month_start ON rollup_month (bucket_start, saved_avg, cpu_pct_avg);
