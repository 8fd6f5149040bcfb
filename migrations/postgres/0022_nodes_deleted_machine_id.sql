-- A registration of a machine no live node has looks for the newest deleted node of that machine
-- id (its agent then waits for an admin: docs/identity.md). Only live nodes had an index on
-- machine_id (nodes_live_machine_id), so that look-up read the whole nodes table, holding the
-- replica's one writer connection meanwhile: every new node's registration cost in proportion to
-- the fleet already registered (docs/benchmarks.md, "Registrations as the fleet grows"). Deleted
-- rows by machine id and deletion time, read newest first.
-- Never edit a migration once released: add migrations/postgres/NNNN_what.sql instead.
CREATE INDEX nodes_deleted_machine_id ON nodes (machine_id, deleted_at) WHERE deleted_at IS NOT NULL;
