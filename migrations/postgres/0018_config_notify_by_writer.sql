-- The statement trigger of config updates (0015) sends nothing while the transaction's setting
-- ksmfleet.announced is 'on': the fleet-wide apply then sends the notifications of the
-- statements that give one config to many nodes itself, in 0015's form, from the values it
-- already holds (FleetDatabase.storeConfigs, ConfigNotices). Building them here took a sort, a
-- window and an aggregate over the statement's rows: 103 ms of a 30,000-node UPDATE's 275-340 ms
-- (EXPLAIN ANALYZE). Every other update finds the setting unset or 'off' (the apply turns it off
-- again before its other statements), as does every update of a server of an earlier version,
-- and the trigger announces as before.
-- Never edit a migration once released: add migrations/postgres/NNNN_what.sql instead.
CREATE OR REPLACE FUNCTION ksmfleet_config_notify_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
BEGIN
  IF current_setting('ksmfleet.announced', true) = 'on' THEN
    RETURN NULL;
  END IF;
  FOR r IN
    SELECT CASE WHEN octet_length(to_json(config_json)::text) > 3000 THEN NULL ELSE config_json END AS c,
           json_agg(json_build_array(node_id, generation, kick_counter) ORDER BY node_id) AS u
    FROM (SELECT node_id, generation, kick_counter, config_json,
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
