-- Node identity that cannot be taken over (issue 14).
-- A node keeps its identity only by proving it holds its current token. A registration that
-- claims a known machine id without that proof (or the machine id of a deleted node) is kept
-- here as a pending registration until an admin accepts or rejects it.

-- Token rotation: when the current token was issued, when an admin asked for a rotation, and
-- the previous token, valid until the agent has used the new one (plus a short grace for
-- requests already in flight) or until previous_token_expires_at.
ALTER TABLE nodes ADD COLUMN token_issued_at INTEGER;
ALTER TABLE nodes ADD COLUMN token_rotate_requested_at INTEGER;
ALTER TABLE nodes ADD COLUMN previous_token_hash TEXT;
ALTER TABLE nodes ADD COLUMN previous_token_expires_at INTEGER;
CREATE UNIQUE INDEX nodes_previous_token_hash ON nodes (previous_token_hash) WHERE previous_token_hash IS NOT NULL;
UPDATE nodes SET token_issued_at = COALESCE(last_seen_at, registered_at) WHERE token_hash IS NOT NULL;

CREATE TABLE pending_registrations (
  id TEXT PRIMARY KEY NOT NULL,            -- 'p-' + 12 hex chars
  machine_id TEXT NOT NULL,
  registration_key_hash TEXT NOT NULL,     -- SHA-256 hex of the agent's registration key
  reason TEXT NOT NULL,                    -- 'conflict' (a live node has this machine id) or 'deleted'
  node_id TEXT,                            -- the live or deleted node that holds the machine id
  hostname TEXT NOT NULL,
  kernel TEXT NOT NULL,
  agent_version TEXT NOT NULL,
  mem_total_bytes INTEGER NOT NULL,
  numa_nodes INTEGER NOT NULL,
  ksm_features TEXT NOT NULL DEFAULT '[]',
  page_size INTEGER,
  source TEXT,                             -- the source address of the last attempt
  enrollment_token_id TEXT,
  first_seen_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 1,
  status TEXT NOT NULL DEFAULT 'pending',  -- 'pending', 'accepted', 'rejected'
  decided_at INTEGER,
  decided_by TEXT
);
CREATE UNIQUE INDEX pending_registrations_key ON pending_registrations (machine_id, registration_key_hash);
CREATE INDEX pending_registrations_status ON pending_registrations (status, last_seen_at);

-- The address the node's last registration came from (shown next to a pending registration).
ALTER TABLE nodes ADD COLUMN last_source TEXT;

-- Names are DNS host names, stored in lower case and unique among live nodes. Where live nodes
-- share a name today, the oldest keeps it and the others get '-<node id>' appended.
UPDATE nodes SET name = lower(name);
UPDATE nodes SET name = name || '-' || substr(id, 3)
 WHERE deleted_at IS NULL AND EXISTS (
   SELECT 1 FROM nodes o WHERE o.deleted_at IS NULL AND o.name = nodes.name
     AND (o.registered_at < nodes.registered_at OR (o.registered_at = nodes.registered_at AND o.id < nodes.id)));
CREATE UNIQUE INDEX nodes_live_name ON nodes (name) WHERE deleted_at IS NULL;
