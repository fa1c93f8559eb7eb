-- The outbox of memory.event v1 events, written by the app in the transaction of its own write
-- (sfm_events.outbox.insert) and emptied by the relay (topologies/outbox-relay.ts), which deletes a row only after
-- Kafka acknowledged its event. `id` is the order the relay publishes in; `key` is the memory id (the Kafka key).
CREATE TABLE IF NOT EXISTS sfm_outbox (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key text NOT NULL,
  event jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Wakes the relay when a transaction that inserted rows commits (NOTIFY is delivered at commit, once per
-- transaction and channel); the relay also polls, so a lost notification only delays.
CREATE OR REPLACE FUNCTION sfm_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('sfm_outbox', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);
  RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS sfm_outbox_notify ON sfm_outbox;
CREATE TRIGGER sfm_outbox_notify AFTER INSERT ON sfm_outbox FOR EACH STATEMENT EXECUTE FUNCTION sfm_outbox_notify();
