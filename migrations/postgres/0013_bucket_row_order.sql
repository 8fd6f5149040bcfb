-- The fleet's and the label groups' hourly sums add an hour's rows in the order SQLite adds them,
-- that of the covering index rollup_hour_start (StoreDB.bucketRowOrder), so that both engines give
-- the same doubles and the sums migrate-data copies are the ones PostgreSQL computes. Before, an
-- hour's rows were added here in node id order: the stored fleet sums are computed again in the
-- new order, and the label groups' sums are left to the rollup service to compute again.
UPDATE rollup_fleet_hour f SET saved_byte_seconds = s.total
FROM (
  SELECT bucket_start,
    SUM(saved_byte_seconds ORDER BY saved_avg, cpu_pct_avg, saved_byte_seconds, node_id COLLATE "C") AS total
  FROM rollup_hour GROUP BY bucket_start
) s
WHERE f.bucket_start = s.bucket_start AND f.saved_byte_seconds <> s.total;
UPDATE rollup_fleet_hour SET label_sums_known = 0 WHERE label_sums_known <> 0;
