-- A node's token changed through one replica: every replica forgets what it remembered of the
-- node's tokens. A server remembers which node a token is after its first lookup, so that a
-- push costs no query (FleetServer's NodeTokenCache). Until this, a replica that had seen a
-- node's token kept taking it after a rotation, a re-registration or the node's deletion through
-- another replica, and never told the agent of a rotation an admin had asked for there.
-- The notice goes on the config changes' channel, which every replica listens to (0002), as
--   {"n" : node_id, "token" : true}
-- A server of an earlier version reads it as a change without a generation and reads the node's
-- config again: no harm. The trigger fires only for statements that set one of the columns (the
-- pushes' UPDATE of nodes sets neither), and only for rows where one of them changed. A deletion
-- sets token_hash to NULL; a purge deletes the node's config first (0002's "deleted" notice).
-- Never edit a migration once released: add migrations/postgres/NNNN_what.sql instead.
CREATE FUNCTION ksmfleet_node_token_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('ksmfleet_config', json_build_object('n', NEW.id, 'token', true)::text);
  RETURN NULL;
END;
$$;

CREATE TRIGGER nodes_token_notify AFTER UPDATE OF token_hash, token_rotate_requested_at ON nodes
  FOR EACH ROW
  WHEN (OLD.token_hash IS DISTINCT FROM NEW.token_hash
        OR OLD.token_rotate_requested_at IS DISTINCT FROM NEW.token_rotate_requested_at)
  EXECUTE FUNCTION ksmfleet_node_token_notify();
