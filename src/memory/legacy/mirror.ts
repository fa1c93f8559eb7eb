/**
 * The legacy mirror (the cutover's rollback path): keeps the legacy `kv_store` equal to this stack's state, read from
 * `memory.latest`, in the key and value layout the legacy app writes — key `{id}:data` (the id is the legacy memory
 * id, `{namespace}:{repr(coord)}`), value the memory's payload as stored (what the backfill reads back as the
 * payload, so backfill and parity round-trip). A tombstone removes the row. Only keys ending in `:data` are ever
 * written, so the table's other rows (`:meta`, `:wal:`, `:version:`, uuid5 keys) are never touched.
 *
 * The fence: `kv_store` has no version column, and its shape must stay the app's. The mirror keeps the fence in a
 * side table, `kv_store_mirror_versions (key, value, version, event_ts, deleted_at, updated_at)`, written by the generic
 * PostgreSQL sink (src/sinks/postgres) under its fence rule and tombstones; an AFTER INSERT OR UPDATE trigger on
 * it copies each row the sink actually writes into `kv_store` (upsert) or deletes it there (tombstone). A fenced or
 * duplicate record writes no side row, so the trigger never fires for it: an older record never overwrites a newer
 * one, and the side table and `kv_store` change in the same statement, so a kill -9 leaves both or neither. The
 * side table holds the value too, because the trigger copies it from the row; it is the mirror's own (drop it with
 * its trigger function after the rollback window, docs/CUTOVER.md).
 *
 * A `memory.latest` tombstone carries its fence pair in headers (`sfm.fence.*`, written by materialize.ts); one
 * without them (written before they existed) cannot be fenced and is dead-lettered with what to do.
 */
import type { Pool } from 'pg'
import { describeError, ErrorCodes, errorMessage, FatalError, PoisonError } from '../../errors.ts'
import { redact } from '../../logger.ts'
import { derivedName, displayName, parseTableName, quoteIdent, quoteQualified } from '../../postgres/identifiers.ts'
import {
  createPool,
  type PostgresSink,
  type PostgresTableLayout,
  type PreparedRow,
  parseEventTime,
  postgresSink,
  resolveConnectionOptions
} from '../../sinks/postgres/index.ts'
import { checkout } from '../../sinks/postgres/pool.ts'
import type { Sink, SinkContext, WriteResult } from '../../sinks/types.ts'
import type { Envelope } from '../../streams/envelope.ts'
import type { LatestRecord } from '../latest.ts'
import { LEGACY_DATA_SUFFIX } from './memory-id.ts'
import { LEGACY_TABLE } from './store.ts'

export const DEFAULT_MIRROR_TABLE = 'kv_store_mirror_versions'

/** One `memory.latest` record as a row of the side table: `id` is the `kv_store` key. */
export interface MirrorRow extends PreparedRow {
  /** The payload as JSON text; null for a tombstone. */
  readonly value: string | null
}

function poison(index: number, message: string): PoisonError {
  return new PoisonError(message, { code: ErrorCodes.VALIDATION, details: { index } })
}

/** Checks a `memory.latest` record and converts it to the side table's row (key `{id}:data`, the fence pair). */
export function prepareMirrorRow(record: LatestRecord, index: number): MirrorRow | PoisonError {
  const key = `${record.id}${LEGACY_DATA_SUFFIX}`
  const state = record.state
  if (state === null) {
    const fence = record.fence
    if (fence === undefined) {
      return poison(
        index,
        `tombstone of ${record.id} without its fence headers (sfm.fence.version, sfm.fence.timestamp; written by a ` +
          `runner older than the legacy mirror): not applied — delete the row ${key} from ${LEGACY_TABLE} by hand`
      )
    }
    const time = parseEventTime(fence.timestamp)
    if (typeof time === 'string') return poison(index, `tombstone of ${record.id}: sfm.fence.timestamp: ${time}`)
    return {
      index,
      id: key,
      // No ledger: the id only tells repeats within a batch apart, so it names the key (two memories deleted at the
      // same version and time are two deletes).
      eventId: `${key} delete ${fence.version} ${time.text}`,
      version: fence.version,
      micros: time.micros,
      deleted: true,
      value: null
    }
  }
  if (!Number.isSafeInteger(state.version)) return poison(index, `state of ${record.id}: version is not an integer`)
  if (typeof state.event_id !== 'string') return poison(index, `state of ${record.id}: no event_id`)
  const time = parseEventTime(state.timestamp)
  if (typeof time === 'string') return poison(index, `state of ${record.id}: timestamp: ${time}`)
  if (state.payload === undefined) return poison(index, `state of ${record.id}: no payload`)
  return {
    index,
    id: key,
    eventId: `${key} ${state.event_id}`,
    version: state.version,
    micros: time.micros,
    deleted: false,
    value: JSON.stringify(state.payload)
  }
}

/** The side table as a layout of the generic PostgreSQL sink: fence `(version, event_ts)`, tombstones, no ledger. */
export const legacyMirrorLayout: PostgresTableLayout<LatestRecord, MirrorRow> = {
  key: 'key',
  columns: [{ name: 'value', type: 'jsonb', value: (row) => row.value }, { name: 'version' }, { name: 'event_ts' }],
  fence: { version: 'version', time: 'event_ts' },
  tombstone: { column: 'deleted_at', clear: ['value'] },
  writtenAt: 'updated_at',
  item: 'memory.latest record',
  prepare: prepareMirrorRow
}

/** The SQL that creates the side table, the trigger function and the trigger (idempotent). */
export function mirrorSetupSql(kv: string, versions: string, schema: string, table: string): string {
  const fn = `${quoteIdent(schema)}.${quoteIdent(derivedName(table, 'apply'))}`
  const trigger = quoteIdent(derivedName(table, 'to_kv'))
  return `CREATE TABLE IF NOT EXISTS ${versions} (
  key text PRIMARY KEY,
  value jsonb,
  version bigint NOT NULL,
  event_ts timestamptz NOT NULL,
  deleted_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $mirror$
BEGIN
  IF NEW.deleted_at IS NULL THEN
    INSERT INTO ${kv} AS k (key, value) VALUES (NEW.key, NEW.value)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value WHERE k.value IS DISTINCT FROM EXCLUDED.value;
  ELSE
    DELETE FROM ${kv} WHERE key = NEW.key;
  END IF;
  RETURN NULL;
END
$mirror$;
DROP TRIGGER IF EXISTS ${trigger} ON ${versions};
CREATE TRIGGER ${trigger} AFTER INSERT OR UPDATE ON ${versions} FOR EACH ROW EXECUTE FUNCTION ${fn}();`
}

/**
 * Creates the side table and its trigger next to `kv_store` (the schema `kv_store` is found in on the connection's
 * search_path, unless `table` is qualified), in one transaction under an advisory lock. `kv_store` must exist with
 * the legacy columns (key text, value jsonb): a configuration error otherwise.
 */
export async function ensureMirrorTables(pool: Pool, table: string): Promise<{ kv: string; versions: string }> {
  const out = await checkout(pool, 'legacy mirror')
  let broken = true
  try {
    const { rows } = await out.client.query<{ schema: string | null; key: string | null; value: string | null }>(
      `SELECT n.nspname AS schema,
         (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'key' AND NOT a.attisdropped) AS key,
         (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'value' AND NOT a.attisdropped) AS value
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`,
      [LEGACY_TABLE]
    )
    const found = rows[0]
    if (found === undefined || found.schema === null) {
      throw new FatalError(
        `no ${LEGACY_TABLE} table on the legacy database's search_path — point SFM_LEGACY_URL at the SomaFractalMemory database`,
        { code: ErrorCodes.CONFIG }
      )
    }
    if (found.key !== 'text' || found.value !== 'jsonb') {
      throw new FatalError(
        `${found.schema}.${LEGACY_TABLE} has key ${found.key ?? 'missing'} and value ${found.value ?? 'missing'}, expected text and jsonb — not a SomaFractalMemory kv_store`,
        { code: ErrorCodes.CONFIG }
      )
    }
    const parsed = parseTableName(table, 'SFM_MIRROR_TABLE')
    const side = { schema: parsed.schema ?? found.schema, name: parsed.name }
    const kv = `${quoteIdent(found.schema)}.${quoteIdent(LEGACY_TABLE)}`
    const versions = quoteQualified(side)
    await out.client.query('BEGIN')
    try {
      await out.client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`sfm legacy mirror ${displayName(side)}`])
      await out.client.query(mirrorSetupSql(kv, versions, side.schema, side.name))
      await out.client.query('COMMIT')
    } catch (error) {
      await out.client.query('ROLLBACK').catch(() => {})
      throw error
    }
    broken = false
    return { kv, versions: displayName(side) }
  } catch (error) {
    if (error instanceof FatalError) {
      broken = false
      throw error
    }
    throw new FatalError(`legacy mirror: cannot set up ${table}: ${describeError(error)}`, {
      code: ErrorCodes.CONFIG,
      cause: error
    })
  } finally {
    await out.release(broken)
  }
}

export interface LegacyMirrorOptions {
  /** The legacy PostgreSQL (the `--legacy-url` of backfill and parity). */
  legacyUrl: string
  /** The side table holding the fence (default `kv_store_mirror_versions`, next to `kv_store`). */
  table?: string
  poolSize?: number
}

/** What the mirror did since it started. */
export interface MirrorCounts {
  /** Records that changed `kv_store` (upserts and deletes). */
  applied: number
  /** Of them, deletes. */
  deleted: number
  /** Older than what the mirror holds: nothing written. */
  fenced: number
  /** The same state again: nothing written. */
  duplicate: number
  /** Dead-lettered (or retried, when retriable). */
  failed: number
}

export type LegacyMirrorSink = Sink<LatestRecord> & {
  open(context?: SinkContext): Promise<void>
  close(): Promise<void>
  readonly counts: Readonly<MirrorCounts>
  /** The side table and kv_store, once open. */
  readonly tables: { readonly kv: string; readonly versions: string } | undefined
}

/** The mirror's sink: the generic PostgreSQL sink on the side table, set up on open. */
export function legacyMirrorSink(options: LegacyMirrorOptions): LegacyMirrorSink {
  const table = options.table || DEFAULT_MIRROR_TABLE
  parseTableName(table, 'SFM_MIRROR_TABLE')
  const resolved = resolveConnectionOptions({
    connectionString: options.legacyUrl,
    applicationName: 'sfm-legacy-mirror',
    ...(options.poolSize === undefined ? {} : { poolSize: options.poolSize })
  })
  let pool: Pool | undefined
  let inner: PostgresSink<LatestRecord, MirrorRow> | undefined
  let tables: { kv: string; versions: string } | undefined
  const counts: MirrorCounts = { applied: 0, deleted: 0, fenced: 0, duplicate: 0, failed: 0 }
  const ensure = async (): Promise<PostgresSink<LatestRecord, MirrorRow>> => {
    if (inner !== undefined) return inner
    pool ??= createPool(resolved)
    try {
      tables = await ensureMirrorTables(pool, table)
    } catch (error) {
      if (error instanceof FatalError) throw error
      // The legacy database does not answer at start: a configuration to fix now, not an outage to wait for.
      throw new FatalError(
        `cannot connect to the legacy store at ${redact(options.legacyUrl)}: ${errorMessage(error)} — check SFM_LEGACY_URL`,
        { code: ErrorCodes.CONFIG, cause: error }
      )
    }
    inner = postgresSink({ ...resolved, pool, table, layout: legacyMirrorLayout, migrate: false })
    return inner
  }
  return {
    kind: 'postgres',
    // A shadow run: the side table's statement is rolled back, so kv_store is not touched either (the trigger's
    // writes are part of it). The side table and its trigger are still created at start (idempotent DDL).
    dryRun: true,
    get counts() {
      return { ...counts }
    },
    get tables() {
      return tables
    },
    async open(context?: SinkContext) {
      await (await ensure()).open(context)
    },
    async write(batch: readonly Envelope<LatestRecord>[], context: SinkContext): Promise<WriteResult> {
      const result = await (await ensure()).write(batch, context)
      counts.applied += result.counts.applied
      counts.fenced += result.counts.fenced
      counts.duplicate += result.counts.duplicate
      counts.failed += result.counts.failed
      result.outcomes.forEach((outcome, index) => {
        if (outcome === 'applied' && result.prepared[index]?.deleted) counts.deleted++
      })
      return result
    },
    async close() {
      await inner?.close()
      await pool?.end().catch(() => {})
      inner = undefined
      pool = undefined
    }
  }
}
