-- The stored fleet hours (0040) are sums of an hour's rollup_hour rows in the order of the index
-- rollup_hour_start, added left to right as PostgreSQL adds them. Servers before this one summed
-- them with SQLite's SUM, which compensates its additions from SQLite 3.43 on
-- (Kahan-Babuska-Neumaier): a server built against a newer SQLite stored other last bits than
-- PostgreSQL computes and than the hours this server stores (ksm_sum, LeftToRightSum.swift). Every
-- stored hour is added again here, left to right. ksm_sum is ksmfleet-server's own aggregate,
-- registered on each of its connections: this migration runs in the server only (as all do).
-- Hours without rows keep their value (the rollup service drops them: they are marked dirty).
UPDATE rollup_fleet_hour SET saved_byte_seconds = COALESCE((
  SELECT ksm_sum(h.saved_byte_seconds) FROM rollup_hour h INDEXED BY rollup_hour_start
  WHERE h.bucket_start = rollup_fleet_hour.bucket_start), saved_byte_seconds);
