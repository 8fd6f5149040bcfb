-- A registration of a machine no live node has looks for the newest deleted node of that machine
-- id (its agent then waits for an admin: docs/identity.md). Only live nodes had an index on
-- machine_id (nodes_live_machine_id), so that look-up read the whole nodes table: every new
-- node's registration cost in proportion to the fleet already registered (0.75 ms of server CPU
-- a registration with none, 3.2 ms at 17,500 nodes; docs/benchmarks.md, "Registrations as the
-- fleet grows"). Deleted rows by machine id and deletion time, read newest first.
-- Never edit a migration once released: add migrations/NNNN_what.sql instead.
CREATE INDEX nodes_deleted_machine_id ON nodes (machine_id, deleted_at) WHERE deleted_at IS NOT NULL;
