-- Config updates are announced per statement, grouped by config, instead of one notification per
-- row (0002). A fleet-wide change of 10,000 nodes sent 10,000 notifications, each built by a
-- PL/pgSQL call per row inside the apply's UPDATE, delivered to every listening replica and parsed
-- there one by one; the nodes of such a change share a few configs, so the same config text
-- travelled 10,000 times.
--
-- An UPDATE of node_configs now sends, at commit, one notification per config per chunk of nodes:
--   {"c": config_json, "u": [[node_id, generation, kick_counter], …]}
-- "c" is null when the config, as a JSON string, is longer than 3,000 bytes (the replica reads
-- it then). The nodes are chunked by their bytes in the payload (about 4,000 bytes: 153 nodes
-- of today's 14-character ids with one-digit generations), so a payload stays under PostgreSQL's 8,000-byte limit: at most
-- 3,000 for "c", 4,000 plus one node's entry for "u", and the object's own bytes. Node ids are
-- the server's own ("n-" and 12 hex digits). Inserts (a registration's first config) and deletes
-- still notify per row, in 0002's form.
--
-- The payload's form changes: a replica of an earlier version cannot read it, so all replicas must
-- run this version (README: to upgrade, stop every replica, then start the new version).
-- Never edit a migration once released: add migrations/postgres/NNNN_what.sql instead.
CREATE FUNCTION ksmfleet_config_notify_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT CASE WHEN octet_length(to_json(config_json)::text) > 3000 THEN NULL ELSE config_json END AS c,
           json_agg(json_build_array(node_id, generation, kick_counter) ORDER BY node_id) AS u
    FROM (SELECT node_id, generation, kick_counter, config_json,
                 -- each entry's bytes: the quoted id, both numbers, "[", ", " twice, "]", and the ", "
                 -- before the next entry
                 sum(octet_length(to_json(node_id)::text) + octet_length(generation::text)
                     + octet_length(kick_counter::text) + 8)
                   OVER (PARTITION BY config_json ORDER BY node_id ROWS UNBOUNDED PRECEDING) / 4000 AS chunk
          FROM updated) t
    GROUP BY config_json, chunk
  LOOP
    PERFORM pg_notify('ksmfleet_config', json_build_object('c', r.c, 'u', r.u)::text);
  END LOOP;
  RETURN NULL;
END;
$$;

DROP TRIGGER node_configs_notify ON node_configs;
CREATE TRIGGER node_configs_notify AFTER INSERT OR DELETE ON node_configs
  FOR EACH ROW EXECUTE FUNCTION ksmfleet_config_notify();
CREATE TRIGGER node_configs_notify_updated AFTER UPDATE ON node_configs
  REFERENCING NEW TABLE AS updated FOR EACH STATEMENT EXECUTE FUNCTION ksmfleet_config_notify_updated();
