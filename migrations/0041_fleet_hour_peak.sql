-- The fleet's exact peak per hour, kept beside its hourly sum: the highest sum of every node's
-- saved bytes at one moment of the hour (ReportMath.groupPeak over the raw samples, docs/numbers.md
-- "Peak"), so that a report up to 24 h long reads a stored peak per whole hour and sweeps raw
-- samples only for its partial edge hours, instead of sweeping every raw sample of the period.
-- The peak is a maximum of whole-byte sums (below 2^53: exact in any order), so the peak of a
-- period is the highest of its hours' peaks.
--   peak_known = 0: not computed (the hour was not over, its hour rows changed since, or its raw
--                   samples are gone): reports sweep that hour's raw samples themselves.
--   peak_known = 1: saved_peak is the hour's exact peak, NULL when no node had data in it.
-- The rollup service computes the peaks of hours that are over and whose raw samples are kept;
-- recomputing an hour's sum (rollup_fleet_dirty) resets its peak to unknown.
ALTER TABLE rollup_fleet_hour ADD COLUMN saved_peak INTEGER;
ALTER TABLE rollup_fleet_hour ADD COLUMN peak_known INTEGER NOT NULL DEFAULT 0;
