-- ksmfleet schema, version 1. Times are unix milliseconds (INTEGER) unless said otherwise.
-- Never edit a migration once released: add migrations/NNNN_what.sql instead.

-- Registered nodes. A deleted node keeps its row (deleted_at set, token cleared) so that reports
-- can still name it; its config goes at once, its samples stay unless a purge is asked for.
CREATE TABLE nodes (
  id TEXT PRIMARY KEY NOT NULL,            -- 'n-' + 12 hex chars
  name TEXT NOT NULL,                      -- hostname
  machine_id TEXT NOT NULL,                -- /etc/machine-id; re-registration key
  labels TEXT NOT NULL DEFAULT '{}',       -- JSON object of strings
  kernel TEXT NOT NULL,
  mem_total_bytes INTEGER NOT NULL,
  numa_nodes INTEGER NOT NULL,
  ksm_features TEXT NOT NULL DEFAULT '[]', -- JSON array of strings
  agent_version TEXT NOT NULL,
  page_size INTEGER,
  registered_at INTEGER NOT NULL,
  last_seen_at INTEGER,
  token_hash TEXT,                         -- SHA-256 hex of the node token; NULL once deleted
  phase TEXT,                              -- from the newest sample
  phase_reason TEXT,
  applied_generation INTEGER,
  apply_error TEXT,
  last_seq INTEGER,                        -- highest sample seq stored
  last_sample_json TEXT,                   -- the newest StatusSample, as received
  deleted_at INTEGER
);
-- One live node per machine; a deleted node's machine may register again as a new node.
CREATE UNIQUE INDEX nodes_live_machine_id ON nodes (machine_id) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX nodes_token_hash ON nodes (token_hash) WHERE token_hash IS NOT NULL;
CREATE INDEX nodes_name ON nodes (name);

-- The desired config of each live node. generation increases on every change (kicks included).
CREATE TABLE node_configs (
  node_id TEXT PRIMARY KEY NOT NULL REFERENCES nodes (id) ON DELETE CASCADE,
  generation INTEGER NOT NULL,
  kick_counter INTEGER NOT NULL DEFAULT 0,
  config_json TEXT NOT NULL,               -- KSMConfig, normalized
  updated_at INTEGER NOT NULL,
  updated_by TEXT NOT NULL
);

-- Status history. A plain rowid table: background rollups use rowid as their watermark.
-- No foreign key to nodes: history outlives a deleted node.
CREATE TABLE samples (
  node_id TEXT NOT NULL, seq INTEGER NOT NULL,
  taken_at INTEGER NOT NULL,        -- unix milliseconds (from the agent)
  received_at INTEGER NOT NULL,     -- unix milliseconds (server)
  phase TEXT NOT NULL, phase_reason TEXT, run INTEGER, pages_to_scan INTEGER, sleep_millisecs INTEGER,
  pages_shared INTEGER, pages_sharing INTEGER, pages_unshared INTEGER, pages_volatile INTEGER,
  full_scans INTEGER, stable_node_chains INTEGER, stable_node_dups INTEGER, ksm_zero_pages INTEGER,
  general_profit INTEGER, mem_total_kb INTEGER, mem_available_kb INTEGER, anon_pages_kb INTEGER,
  page_size INTEGER NOT NULL, saved_bytes INTEGER NOT NULL, ksmd_cpu_percent REAL,
  ksmd_cpu_seconds REAL, applied_generation INTEGER, apply_error TEXT,
  sample_json TEXT NOT NULL,        -- the whole StatusSample as received, for history
  UNIQUE (node_id, seq));
CREATE INDEX samples_node_taken_at ON samples (node_id, taken_at);
CREATE INDEX samples_taken_at ON samples (taken_at);

-- Enrollment tokens (only their hashes).
CREATE TABLE enrollment_tokens (
  id TEXT PRIMARY KEY NOT NULL,            -- 'e-' + 12 hex chars
  token_hash TEXT NOT NULL UNIQUE,
  description TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  revoked_at INTEGER
);

-- Server-wide settings, e.g. 'admin_token_hash'.
CREATE TABLE settings (
  key TEXT PRIMARY KEY NOT NULL,
  value TEXT NOT NULL
);

-- Every config change: who, when, what before and after.
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,                     -- 'admin', 'registration', 'system'
  node_id TEXT NOT NULL,
  action TEXT NOT NULL,                    -- 'create', 'replace', 'patch', 'apply', 'kick', 'delete', 'labels'
  generation INTEGER,
  before_json TEXT,
  after_json TEXT
);
CREATE INDEX audit_log_node ON audit_log (node_id, at);
