-- The by-process report over long periods: the figures of process_savings_day per UTC calendar
-- month, so that a year reads 12 rows per group instead of 365. Same columns and meaning as the
-- day table (month_start: unix SECONDS of the month's first day, 00:00 UTC). Written with the day
-- row by every new sample's process report (the same upsert), pruned by retention once any of
-- its days is cut (the report then reads that month's remaining days; see ProcessSavings.swift),
-- purged with the node.
CREATE TABLE process_savings_month (
  node_id TEXT NOT NULL,
  month_start INTEGER NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  reports INTEGER NOT NULL,
  peak_merged_bytes INTEGER NOT NULL,
  peak_at INTEGER NOT NULL,           -- the earliest time the month's peak was reported
  last_merged_bytes INTEGER NOT NULL,
  last_at INTEGER NOT NULL,
  processes INTEGER NOT NULL,
  sum_merged_bytes REAL NOT NULL,
  PRIMARY KEY (node_id, kind, name, month_start)
) WITHOUT ROWID;
CREATE INDEX process_savings_month_start ON process_savings_month (month_start);

-- The months of the days already stored: per group, the reports and sums added, the largest
-- peak at its earliest time, the figures of the latest report.
INSERT INTO process_savings_month (node_id, month_start, kind, name, reports, peak_merged_bytes, peak_at,
  last_merged_bytes, last_at, processes, sum_merged_bytes)
SELECT node_id, month_start, kind, name, SUM(reports), MAX(peak_merged_bytes),
  MAX(CASE WHEN peak_rank = 1 THEN peak_at END), MAX(CASE WHEN last_rank = 1 THEN last_merged_bytes END),
  MAX(last_at), MAX(CASE WHEN last_rank = 1 THEN processes END), SUM(sum_merged_bytes)
FROM (
  SELECT d.*,
    ROW_NUMBER() OVER (PARTITION BY node_id, month_start, kind, name
      ORDER BY peak_merged_bytes DESC, peak_at, day_start) AS peak_rank,
    ROW_NUMBER() OVER (PARTITION BY node_id, month_start, kind, name ORDER BY last_at DESC, day_start DESC) AS last_rank
  FROM (
    SELECT p.*, CAST(strftime('%s', p.day_start, 'unixepoch', 'start of month') AS INTEGER) AS month_start
    FROM process_savings_day p
  ) AS d
) AS r
GROUP BY node_id, month_start, kind, name;
