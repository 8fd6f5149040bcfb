-- Group series in reports are the time average of the group's saving over a bucket,
-- SUM(saved_byte_seconds) / bucket length (docs/numbers.md, "Peak"): the bucket_start indexes
-- carry that column too, so the per-bucket sums are still read from the index alone.
DROP INDEX rollup_hour_start;
CREATE INDEX rollup_hour_start ON rollup_hour (bucket_start, saved_avg, cpu_pct_avg, saved_byte_seconds);
DROP INDEX rollup_day_start;
CREATE INDEX rollup_day_start ON rollup_day (bucket_start, saved_avg, cpu_pct_avg, saved_byte_seconds);
DROP INDEX rollup_month_start;
CREATE INDEX rollup_month_start ON rollup_month (bucket_start, saved_avg, cpu_pct_avg, saved_byte_seconds);
