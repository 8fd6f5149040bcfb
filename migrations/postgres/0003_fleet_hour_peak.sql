-- The fleet's exact peak per hour (SQLite: migrations/0041_fleet_hour_peak.sql, which says what
-- the columns mean).
ALTER TABLE rollup_fleet_hour ADD COLUMN saved_peak BIGINT;
ALTER TABLE rollup_fleet_hour ADD COLUMN peak_known INTEGER NOT NULL DEFAULT 0;
