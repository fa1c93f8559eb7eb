export interface OutboxSourceOptions {
  /** The PostgreSQL holding the outbox (the app's own database). Default: `SFM_OUTBOX_URL`. */
  connectionString?: string
  /**
   * The outbox table, `name` or `schema.name` (default `sfm_outbox`): columns `id bigint` (the order), `key text`
   * (the message key), `event jsonb` (the message value), `created_at timestamptz`, as in
   * clients/python/sfm_events/outbox.sql.
   */
  table?: string
  /** The channel the table's trigger notifies on commit (default `sfm_outbox`). */
  channel?: string
  /** Rows claimed per query; the runtime caps it at its in-flight window. */
  batchSize?: number
  /** How often an idle source looks for rows without a notification, ms (a lost NOTIFY only delays). */
  pollIntervalMs?: number
  /**
   * How long one claim transaction takes new rows, ms. Then it stops claiming, waits until the runtime is done with
   * every row it claimed, deletes them, commits and starts the next: rows committed late with a lower id (an app
   * transaction that took longer) are claimed then.
   */
  maxClaimMs?: number
}
