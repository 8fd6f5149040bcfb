-- A change to many nodes at once (a fleet-wide apply, a selector's nodes) is audited once for
-- every distinct pair of configs before and after it: one audit_log row with node_id NULL and
-- node_count set, and a narrow row here for each node it changed, with the generation the node
-- got. A fleet shares a few configs, so a change to 30,000 nodes is one or a few audit rows, not
-- 30,000 rows each holding the config twice (FleetDatabase.storeConfigs). A change to one node
-- keeps its own audit_log row, node_id set and node_count NULL. The audit trail filtered by a
-- node reads both (FleetDatabase.auditLog) by the key; the nodes of one shared row are read by
-- the second index (`GET /api/v1/audit?record=ID`). No foreign key to audit_log: audit rows are
-- never deleted, and on PostgreSQL a foreign key is a trigger run for each of the 30,000 rows.
ALTER TABLE audit_log ADD COLUMN node_count BIGINT;
CREATE TABLE audit_nodes (
  audit_id BIGINT NOT NULL,
  node_id TEXT NOT NULL,
  generation BIGINT NOT NULL,
  PRIMARY KEY (node_id, audit_id)
);
-- The record's nodes are listed and paged in byte order (`COLLATE "C"`, as on SQLite): the index
-- must be in that collation for PostgreSQL to read a page from it instead of sorting them all.
CREATE INDEX audit_nodes_record ON audit_nodes (audit_id, node_id COLLATE "C");
