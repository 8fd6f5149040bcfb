-- History rollups for reports: per node per UTC hour and per UTC day, sums that merge exactly
-- (averages are derived: saved_avg = saved_byte_seconds / data_seconds, kept for cheap charts).
-- Times in these tables are unix SECONDS. A bucket row exists only when the node had data in it;
-- `gaps` lists the uncovered parts of the bucket as JSON [[from, to], ...] (NULL when fully
-- covered), so reports can name gaps exactly and never count them as zeros.
-- Maintained by the rollup service from `samples` by rowid watermark (late samples recompute
-- the hours they touch); raw samples and old rollups are pruned in the background.
CREATE TABLE rollup_hour (
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
-- Covering: fleet series (sum per bucket) read the index alone.
CREATE INDEX rollup_hour_start ON rollup_hour (bucket_start, saved_avg, cpu_pct_avg);
CREATE INDEX rollup_hour_gaps ON rollup_hour (node_id, bucket_start) WHERE gaps IS NOT NULL;

CREATE TABLE rollup_day (
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
CREATE INDEX rollup_day_start ON rollup_day (bucket_start, saved_avg, cpu_pct_avg);
CREATE INDEX rollup_day_gaps ON rollup_day (node_id, bucket_start) WHERE gaps IS NOT NULL;

-- Progress of background jobs, e.g. 'rollup_rowid': the highest samples.rowid rolled up.
CREATE TABLE rollup_state (
  key TEXT PRIMARY KEY NOT NULL,
  value INTEGER NOT NULL
);
