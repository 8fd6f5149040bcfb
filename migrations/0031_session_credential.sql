-- The credential behind a dashboard session (its id in `credentials`): every request re-checks
-- that it still works and its role decides what the page shows and accepts. NULL is the
-- bootstrap admin token (sessions from before this migration were all signed in with it).
ALTER TABLE dashboard_sessions ADD COLUMN credential_id TEXT;
