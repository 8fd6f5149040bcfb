-- A rollup row can hold no data time: an hour (or a day, a month) whose only sample is an agent's
-- goodbye after a gap (a goodbye holds no time). Its saved_avg and cpu_pct_avg are 0, so the
-- dashboard's fleet chart, which sums the rows' averages per bucket through the covering indexes
-- rollup_<level>_start, drew such an hour as 0 B saved when no other node had data in it (a
-- one-node fleet, a fleet-wide outage) instead of leaving it a gap, and counted the node as
-- reporting. These rows are rare: partial indexes of them let the chart find them per bucket
-- without reading every row (data_seconds is not in the covering indexes).
-- Never edit a migration once released: add migrations/postgres/NNNN_what.sql instead.
CREATE INDEX rollup_hour_no_data ON rollup_hour (bucket_start) WHERE data_seconds = 0;
CREATE INDEX rollup_day_no_data ON rollup_day (bucket_start) WHERE data_seconds = 0;
CREATE INDEX rollup_month_no_data ON rollup_month (bucket_start) WHERE data_seconds = 0;
