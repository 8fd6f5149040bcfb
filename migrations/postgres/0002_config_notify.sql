-- Config changes wake long-polls on every replica: each committed change of node_configs sends a
-- notification on channel 'ksmfleet_config' (PostgreSQL delivers it at commit, in commit order,
-- to every connection listening). The payload carries the new config, so a replica wakes its
-- waiting agents without reading the database:
--   {"n": node_id, "g": generation, "k": kick_counter, "c": config_json}   (a change)
--   {"n": node_id, "deleted": true}                                        (the node was deleted)
-- A config too long for a notification (the limit is 8000 bytes) is sent without "c"; the
-- replica reads it then.
-- Never edit a migration once released: add migrations/postgres/NNNN_what.sql instead.
CREATE FUNCTION ksmfleet_config_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('ksmfleet_config', json_build_object('n', OLD.node_id, 'deleted', true)::text);
    RETURN OLD;
  END IF;
  IF length(NEW.config_json) > 7000 THEN
    PERFORM pg_notify('ksmfleet_config',
      json_build_object('n', NEW.node_id, 'g', NEW.generation, 'k', NEW.kick_counter)::text);
  ELSE
    PERFORM pg_notify('ksmfleet_config',
      json_build_object('n', NEW.node_id, 'g', NEW.generation, 'k', NEW.kick_counter, 'c', NEW.config_json)::text);
  END IF;
  RETURN NEW;
END;
$$;

CREATE TRIGGER node_configs_notify AFTER INSERT OR UPDATE OR DELETE ON node_configs
  FOR EACH ROW EXECUTE FUNCTION ksmfleet_config_notify();
