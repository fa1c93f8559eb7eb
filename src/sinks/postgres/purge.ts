import type { Pool } from 'pg'
import { toSinkError } from '../../postgres/errors.ts'
import { parseTableName, type QualifiedName, quoteQualified } from '../../postgres/identifiers.ts'
import { columnName } from './layout.ts'

/**
 * Retention for the two tables that only grow.
 *
 * Tombstones: a deleted memory stays as a row (deleted_at set, payload null) so that a late upsert with a smaller
 * `(version, timestamp)` cannot resurrect it. Once no such upsert can arrive any more — longer than the retention of
 * the `memory.events` topic plus the worst consumer lag — the tombstone can go. Age is measured on `updated_at`
 * (when the sink wrote the tombstone), not on the event's own timestamp, because lateness is a processing-time
 * matter: a replay of old events must still find the tombstones it needs.
 *
 * Processed event ids: they turn a redelivery into `duplicate`. Keep them at least as long as a message can be
 * redelivered (topic retention) and at least as long as tombstones: a redelivered upsert whose memory's tombstone is
 * gone is stopped only by its event id.
 *
 * Both purges delete in bounded chunks (one short transaction each) to keep locks and WAL bursts small. Run them
 * from a scheduled job, e.g. daily.
 */
export interface PurgeOptions {
  /** Rows older than this many milliseconds are removed. */
  readonly olderThanMs: number
  /** Rows per DELETE statement. */
  readonly chunkSize?: number
}

const DEFAULT_CHUNK = 5_000

async function purgeInChunks(pool: Pool, text: string, options: PurgeOptions, what: string): Promise<number> {
  if (!Number.isSafeInteger(options.olderThanMs) || options.olderThanMs < 0) {
    throw new RangeError(`${what}: olderThanMs must be a non-negative integer`)
  }
  const chunk = options.chunkSize ?? DEFAULT_CHUNK
  if (!Number.isSafeInteger(chunk) || chunk < 1) throw new RangeError(`${what}: chunkSize must be a positive integer`)
  let total = 0
  for (;;) {
    let deleted: number
    try {
      const result = await pool.query(text, [options.olderThanMs, chunk])
      deleted = result.rowCount ?? 0
    } catch (error) {
      throw toSinkError(error, what)
    }
    total += deleted
    if (deleted < chunk) return total
  }
}

function qualified(table: string | QualifiedName): string {
  return quoteQualified(typeof table === 'string' ? parseTableName(table) : table)
}

/** The columns of a layout's table that `purgeTombstones` reads; the defaults are the memories layout's. */
export interface TombstoneColumns {
  readonly key?: string
  /** The layout's `tombstone.column`. */
  readonly tombstone?: string
  /** The layout's `writtenAt`: age is measured on it. */
  readonly writtenAt?: string
}

/** Deletes tombstones written more than `olderThanMs` ago from `table`. Returns the count. */
export function purgeTombstones(
  pool: Pool,
  table: string | QualifiedName,
  options: PurgeOptions & TombstoneColumns
): Promise<number> {
  const t = qualified(table)
  const key = columnName(options.key ?? 'id')
  const tombstone = columnName(options.tombstone ?? 'deleted_at')
  const writtenAt = columnName(options.writtenAt ?? 'updated_at')
  // Re-checks the tombstone on the row being deleted: a re-create between the SELECT and the DELETE keeps its row.
  const text = `DELETE FROM ${t} WHERE ${key} IN (
    SELECT ${key} FROM ${t}
    WHERE ${tombstone} IS NOT NULL AND ${writtenAt} < now() - $1::int8 * interval '1 millisecond'
    LIMIT $2
  ) AND ${tombstone} IS NOT NULL AND ${writtenAt} < now() - $1::int8 * interval '1 millisecond'`
  return purgeInChunks(pool, text, options, 'purge tombstones')
}

/** Deletes processed ids recorded more than `olderThanMs` ago from a ledger `table`. Returns the count. */
export function purgeProcessed(pool: Pool, table: string | QualifiedName, options: PurgeOptions): Promise<number> {
  const t = qualified(table)
  const text = `DELETE FROM ${t} WHERE event_id IN (
    SELECT event_id FROM ${t} WHERE processed_at < now() - $1::int8 * interval '1 millisecond' LIMIT $2
  )`
  return purgeInChunks(pool, text, options, 'purge processed event ids')
}
