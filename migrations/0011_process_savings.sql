-- Who benefits from KSM: the agent's per-process scan (/proc/PID/ksm_stat), grouped as a VM, a
-- container, a pod, a systemd unit or a command. Sent with every Nth sample (see agent/README).

-- The newest process report of each node, as received (a ProcessReport), and its sample time.
ALTER TABLE nodes ADD COLUMN processes_json TEXT;
ALTER TABLE nodes ADD COLUMN processes_at INTEGER;  -- unix milliseconds

-- Per node, per UTC day, per group: the peak and the last merged bytes of the groups a report
-- listed (its top groups only), for the savings report's by-process view. Times in unix SECONDS
-- except peak_at/last_at (unix milliseconds, like samples). Pruned with the rollups; purged
-- with the node.
CREATE TABLE process_savings_day (
  node_id TEXT NOT NULL,
  day_start INTEGER NOT NULL,
  kind TEXT NOT NULL,                 -- vm, container, pod, unit, command
  name TEXT NOT NULL,
  reports INTEGER NOT NULL,           -- reports of that day that listed the group
  peak_merged_bytes INTEGER NOT NULL, -- (ksm_merging_pages + ksm_zero_pages) x page size
  peak_at INTEGER NOT NULL,
  last_merged_bytes INTEGER NOT NULL,
  last_at INTEGER NOT NULL,
  processes INTEGER NOT NULL,         -- processes of the group in the last report
  sum_merged_bytes REAL NOT NULL,     -- sum over the reports, for the day's average
  PRIMARY KEY (node_id, day_start, kind, name)
) WITHOUT ROWID;
CREATE INDEX process_savings_day_start ON process_savings_day (day_start);
