-- SQLite 0042 (see migrations/0042_process_savings_month.sql): the day table's figures per UTC
-- calendar month, backfilled from the days already stored.
CREATE TABLE process_savings_month (
  node_id TEXT NOT NULL,
  month_start BIGINT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  reports BIGINT NOT NULL,
  peak_merged_bytes BIGINT NOT NULL,
  peak_at BIGINT NOT NULL,
  last_merged_bytes BIGINT NOT NULL,
  last_at BIGINT NOT NULL,
  processes BIGINT NOT NULL,
  sum_merged_bytes DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (node_id, kind, name, month_start)
);
CREATE INDEX process_savings_month_start ON process_savings_month (month_start);

INSERT INTO process_savings_month (node_id, month_start, kind, name, reports, peak_merged_bytes, peak_at,
  last_merged_bytes, last_at, processes, sum_merged_bytes)
SELECT node_id, month_start, kind, name, SUM(reports), MAX(peak_merged_bytes),
  MAX(CASE WHEN peak_rank = 1 THEN peak_at END), MAX(CASE WHEN last_rank = 1 THEN last_merged_bytes END),
  MAX(last_at), MAX(CASE WHEN last_rank = 1 THEN processes END), SUM(sum_merged_bytes ORDER BY day_start)
FROM (
  SELECT d.*,
    ROW_NUMBER() OVER (PARTITION BY node_id, month_start, kind, name
      ORDER BY peak_merged_bytes DESC, peak_at, day_start) AS peak_rank,
    ROW_NUMBER() OVER (PARTITION BY node_id, month_start, kind, name ORDER BY last_at DESC, day_start DESC) AS last_rank
  FROM (
    SELECT p.*, CAST(EXTRACT(EPOCH FROM date_trunc('month', to_timestamp(p.day_start) AT TIME ZONE 'UTC')) AS BIGINT)
      AS month_start
    FROM process_savings_day p
  ) AS d
) AS r
GROUP BY node_id, month_start, kind, name;
