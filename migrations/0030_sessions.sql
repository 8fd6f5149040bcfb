-- Dashboard sessions, kept across restarts. Only the SHA-256 of the session id (the cookie's
-- value) is stored, so a copy of the database signs nobody in. The CSRF token of the session is
-- derived from the id and not stored either. Expired rows are removed on sign-in and by expiry.
-- Columns for the credential behind a session (its id, its role) can be added by a later
-- migration; a session row without them is the bootstrap admin's.
CREATE TABLE dashboard_sessions (
  id_hash TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  -- Where the sign-in came from (for the operator; not used for checks).
  address TEXT
) WITHOUT ROWID;
CREATE INDEX dashboard_sessions_expires ON dashboard_sessions (expires_at);
