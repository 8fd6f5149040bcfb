-- Which version of an hour's rows its stored peaks were computed for (SQLite:
-- migrations/0044_fleet_hour_peak_version.sql, which says how it is used).
ALTER TABLE rollup_fleet_hour ADD COLUMN peak_version BIGINT NOT NULL DEFAULT 0;
