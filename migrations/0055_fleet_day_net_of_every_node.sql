-- A group's net saving (general_profit) is now the sum over its nodes only when every node with
-- data reports it, none otherwise (GroupSums.netProfit, docs/numbers.md): a sum over some nodes
-- beside the whole group's saving read as KSM's metadata eating most of it. The folded fleet days
-- whose net_profit_sum is such a partial sum are folded again by the rollup service.
-- Never edit a migration once released: add migrations/NNNN_what.sql instead.
INSERT OR IGNORE INTO rollup_fleet_day_dirty (bucket_start)
SELECT f.bucket_start FROM rollup_fleet_day f
WHERE f.net_profit_sum IS NOT NULL
  AND EXISTS (
    SELECT 1 FROM rollup_day d WHERE d.bucket_start = f.bucket_start AND d.data_seconds > 0 AND d.profit_seconds = 0);
