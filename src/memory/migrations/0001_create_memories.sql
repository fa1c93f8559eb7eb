-- 0001: the memories table and the processed event ids.
-- Rendered per sink: {{memories}} and {{processed}} are the configured, quoted, schema-qualified tables.
-- Rule for every migration: never drop or rewrite data; add columns nullable or with a default.

CREATE TABLE IF NOT EXISTS {{memories}} (
  id text PRIMARY KEY,
  namespace text NOT NULL,
  type text,
  -- NULL only for a tombstone (deleted_at set); a JSON null payload is the jsonb value 'null'.
  payload jsonb,
  importance double precision,
  -- The fence: an event changes the row only if (version, event_ts) is greater than the stored pair.
  version bigint NOT NULL CHECK (version >= 0),
  event_id uuid NOT NULL,
  event_ts timestamptz NOT NULL,
  -- Set by a delete: the row stays as a tombstone so a late, older upsert cannot resurrect the memory.
  deleted_at timestamptz,
  -- When this sink last wrote the row (processing time); tombstones are purged by it.
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS {{memories_name:namespace_idx}} ON {{memories}} (namespace) WHERE deleted_at IS NULL;

-- Small: only tombstones. Serves purgeTombstones.
CREATE INDEX IF NOT EXISTS {{memories_name:tombstones_idx}} ON {{memories}} (updated_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS {{processed}} (
  event_id uuid PRIMARY KEY,
  processed_at timestamptz NOT NULL DEFAULT now()
);

-- processed_at grows with insertion order, so a BRIN index serves purgeProcessed at almost no write cost.
CREATE INDEX IF NOT EXISTS {{processed_name:processed_at_idx}} ON {{processed}} USING brin (processed_at);
