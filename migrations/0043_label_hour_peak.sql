-- Exact peaks per hour of the groups of a label key (the nodes sharing a value of it; nodes
-- without the key form the group ""), kept beside the fleet's (0041): a savings report by label
-- up to 24 h long takes each group's highest stored hour peak and sweeps raw samples only for its
-- edge hours and the hours without stored peaks, instead of every raw sample of the day.
-- Groups are the nodes' current labels, so the rows are only valid while no node's labels
-- changed since they were computed:
--   rollup_fleet_hour.labels_known = 1: the rows of that hour are complete for every label key a
--     node had when they were computed (a key without rows for the hour is not known: swept);
--     reset to 0 when the hour's rows change (with peak_known) and, for every hour, when any
--     node's labels change; the rollup service computes them again.
-- saved_peak NULL: no node of the group had data in the hour.
ALTER TABLE rollup_fleet_hour ADD COLUMN labels_known INTEGER NOT NULL DEFAULT 0;
CREATE TABLE rollup_label_hour (
  bucket_start INTEGER NOT NULL,
  label_key TEXT NOT NULL,
  label_value TEXT NOT NULL,
  saved_peak INTEGER,
  PRIMARY KEY (bucket_start, label_key, label_value)
) WITHOUT ROWID;
