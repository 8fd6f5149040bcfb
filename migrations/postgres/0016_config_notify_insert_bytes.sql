-- The per-row notification of an inserted or deleted config (0002, still used for inserts and
-- deletes since 0015) left the config out when it was longer than 7,000 characters. The limit of
-- a notification is 8,000 bytes, and a config's characters can be more bytes than that once
-- escaped (a quote or backslash is two, a control character six) or encoded (up to four a
-- character): such an INSERT failed with "payload string too long". Measured now as 0015 does,
-- in bytes of the JSON string: "c" is left out above 7,000 (the rest of the payload, an id and
-- two numbers, is under 100 bytes).
-- Never edit a migration once released: add migrations/postgres/NNNN_what.sql instead.
CREATE OR REPLACE FUNCTION ksmfleet_config_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pg_notify('ksmfleet_config', json_build_object('n', OLD.node_id, 'deleted', true)::text);
    RETURN OLD;
  END IF;
  IF octet_length(to_json(NEW.config_json)::text) > 7000 THEN
    PERFORM pg_notify('ksmfleet_config',
      json_build_object('n', NEW.node_id, 'g', NEW.generation, 'k', NEW.kick_counter)::text);
  ELSE
    PERFORM pg_notify('ksmfleet_config',
      json_build_object('n', NEW.node_id, 'g', NEW.generation, 'k', NEW.kick_counter, 'c', NEW.config_json)::text);
  END IF;
  RETURN NEW;
END;
$$;
