-- Why the server last refused the node's samples (422: "samples[i].field: message") and when
-- (milliseconds since 1970, the server's clock). The node's finding "samples_refused" stands
-- while sample_refused_at is later than last_seen_at (the receipt of the newest batch stored, or
-- a re-registration): a stored batch ends it. Each replica writes with its own clock, so clocks
-- apart by a few seconds can hide a refusal or keep one as long, until the next push. Kept in the store rather than in the refusing server's memory, so a
-- node whose agent pushes to one replica shows its finding through every replica, and after a
-- restart.
-- Never edit a migration once released: add migrations/NNNN_what.sql instead.
ALTER TABLE nodes ADD COLUMN sample_refusal TEXT;
ALTER TABLE nodes ADD COLUMN sample_refused_at INTEGER;
