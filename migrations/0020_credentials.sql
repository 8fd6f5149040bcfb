-- Named API credentials with a role (issue 14). Only the SHA-256 of the token is stored.
-- The bootstrap admin token stays in settings (admin_token_hash) and acts as the admin
-- credential named 'bootstrap'.
CREATE TABLE credentials (
  id TEXT PRIMARY KEY,                     -- 'c-' + 12 hex
  name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
  token_hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  created_by TEXT,                         -- name of the credential that created it
  expires_at INTEGER,
  revoked_at INTEGER
);
-- One live credential per name, so the audit trail's names are unambiguous.
CREATE UNIQUE INDEX credentials_live_name ON credentials (name) WHERE revoked_at IS NULL;

-- The audit trail now records which credential did a change and from where, and also changes
-- that concern no node (credentials, enrollment tokens, logins): node_id becomes nullable, so
-- the table is rebuilt (SQLite cannot drop NOT NULL in place). Existing rows keep their ids.
CREATE TABLE audit_log_new (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,                     -- credential name ('bootstrap', a named credential), 'registration', 'system'
  credential_id TEXT,                      -- credentials.id, 'bootstrap', or NULL (registration, system, old rows)
  source TEXT,                             -- client address
  node_id TEXT,                            -- NULL for fleet-wide changes
  action TEXT NOT NULL,
  target TEXT,                             -- credential / enrollment token id the change was about
  generation INTEGER,
  before_json TEXT,
  after_json TEXT
);
INSERT INTO audit_log_new (id, at, actor, node_id, action, generation, before_json, after_json)
  SELECT id, at, actor, node_id, action, generation, before_json, after_json FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_new RENAME TO audit_log;
CREATE INDEX audit_log_node ON audit_log (node_id, at);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor, at);
