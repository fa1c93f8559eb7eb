import type { Pool } from 'pg'
import { ErrorCodes, FatalError } from '../errors.ts'
import type { LogAccess, LogRecord } from '../ops/log.ts'
import { displayName, quoteIdent, quoteQualified } from '../postgres/identifiers.ts'
import { checkout } from '../sinks/postgres/pool.ts'
import type { LatestMemory } from './latest.ts'
import { migrate, type TableNames, tableNames } from './memories.ts'

/**
 * Rebuilds the memories table from `memory.latest` into a new table, checks it against the fold of the topic, and
 * optionally swaps it in for the live one (`npm run rebuild -- kv`). The live topology keeps running meanwhile.
 *
 * The new table is made by the sink's migrations (same columns and indexes, under the new name), filled with the
 * last state of each key up to the topic's end at the start, then compared row by row with that fold (id, version,
 * event id). The swap is one transaction: it locks the live table against writes, merges into the new table under
 * the fence the rows the live topology wrote since the rebuild started and every tombstone (a `memory.latest`
 * tombstone carries no fence, so deletes are taken from the live table), then exchanges the two names. The previous
 * table stays, under the `into` name, until someone drops it.
 */
export interface RebuildKvOptions {
  /** The live memories table (default `memories`). */
  table?: string
  /** The table to build; it must not exist. */
  into: string
  /** The compacted latest topic (default `memory.latest`). */
  topic: string
  swap?: boolean
  /** Rows per INSERT. Default 1000. */
  batchSize?: number
  /** Called after each batch with the records read so far and the total to read. */
  onProgress?: (read: number, total: number) => void
  /** How long the swap waits for the live table's lock, ms (default 10 s). */
  lockTimeoutMs?: number
}

export interface RebuildKvReport {
  readonly into: string
  /** Records of the topic read (up to its end at the start). */
  readonly records: number
  /** Live memories in the fold (the last record of their key is a state, not a tombstone). */
  readonly memories: number
  /** Keys whose last record is a tombstone. */
  readonly deleted: number
  /** Rows of the new table that differ from the fold (0, or the rebuild fails). */
  readonly mismatches: number
  readonly swapped: boolean
  /** On a swap: rows the live table had written since the start, merged under the fence, and tombstones taken. */
  readonly merged?: number
}

interface Fold {
  readonly version: number
  readonly eventId: string
}

const UPSERT_COLUMNS = `id, namespace, type, payload, importance, version, event_id, event_ts`

/**
 * A memory.latest record's value as read by a rebuild: null for a tombstone, else the JSON object; anything else
 * stops the rebuild (badRecord). The caller checks the fields it needs.
 */
export function latestValue(record: LogRecord): LatestMemory | null {
  if (record.value === null || record.value.length === 0) return null
  let value: unknown
  try {
    value = JSON.parse(record.value.toString('utf8'))
  } catch {
    throw badRecord(record, 'its value is not JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRecord(record, 'not an object')
  return value as LatestMemory
}

function stateOf(record: LogRecord): LatestMemory | null {
  const state = latestValue(record)
  if (state === null) return null
  if (
    typeof state.namespace !== 'string' ||
    !Number.isSafeInteger(state.version) ||
    typeof state.event_id !== 'string'
  ) {
    throw badRecord(record, 'namespace, version or event_id missing')
  }
  return state
}

/** A record of the topic read that is not a memory state: the wrong --topic, most likely. */
export function badRecord(record: LogRecord, why: string): FatalError {
  return new FatalError(
    `${record.topic} partition ${record.partition} offset ${record.offset} is not a memory state (${why}): ` +
      'check --topic names the latest topic',
    { code: ErrorCodes.CONFIG }
  )
}

export async function rebuildKv(access: LogAccess, pool: Pool, options: RebuildKvOptions): Promise<RebuildKvReport> {
  const batchSize = options.batchSize ?? 1000
  const live = tableNames(options.table ?? 'memories')
  // The new table shares the live processed-events table: dedupe state is per event, not per table.
  const target = tableNames(options.into, displayName(live.processed))
  if (displayName(target.memories) === displayName(live.memories)) {
    throw new FatalError('--into must name another table than the live one', { code: ErrorCodes.CONFIG })
  }
  const exists = async (names: TableNames['memories']) => {
    const { rows } = await pool.query<{ found: string | null }>('SELECT to_regclass($1) AS found', [
      quoteQualified(names)
    ])
    return rows[0]?.found !== null && rows[0]?.found !== undefined
  }
  if (await exists(target.memories)) {
    throw new FatalError(
      `table ${displayName(target.memories)} exists: choose a new --into (a rebuild never writes into a table it did ` +
        'not create), or drop it first',
      { code: ErrorCodes.CONFIG }
    )
  }
  const partitions = await access.partitions(options.topic)
  const total = partitions.reduce((sum, p) => sum + Number(p.end - p.start), 0)
  const { rows: clock } = await pool.query<{ now: Date }>('SELECT now() AS now')
  const startedAt = clock[0]!.now
  const resolved = (await migrate(pool, target)).names
  const table = quoteQualified(resolved.memories)

  const fold = new Map<string, Fold | null>()
  let pending = new Map<string, LatestMemory | null>()
  let read = 0
  const flush = async () => {
    if (pending.size === 0) return
    const batch = pending
    pending = new Map()
    const deletes = [...batch].filter(([, s]) => s === null).map(([id]) => id)
    const upserts = [...batch].filter(([, s]) => s !== null).map(([id, s]) => ({ ...s!, id }))
    if (deletes.length > 0) await pool.query(`DELETE FROM ${table} WHERE id = ANY($1::text[])`, [deletes])
    if (upserts.length > 0) {
      await pool.query(
        `INSERT INTO ${table} (${UPSERT_COLUMNS})
         SELECT r.id, r.namespace, r.type, r.payload, r.importance, r.version, r.event_id::uuid, r.timestamp::timestamptz
         FROM jsonb_to_recordset($1::jsonb) AS r(id text, namespace text, type text, payload jsonb,
           importance double precision, version bigint, event_id text, timestamp text)
         ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace, type = excluded.type,
           payload = excluded.payload, importance = excluded.importance, version = excluded.version,
           event_id = excluded.event_id, event_ts = excluded.event_ts, deleted_at = NULL, updated_at = now()`,
        [JSON.stringify(upserts)]
      )
    }
    options.onProgress?.(read, total)
  }
  // A key's records all sit in one partition, in order: the last one read is its state. A batch is written when it
  // is full (the scan waits for it) and at the end of each partition; a key seen again replaces its pending state.
  for (const p of partitions) {
    await access.scan(options.topic, [{ partition: p.partition, from: p.start, to: p.end }], (record) => {
      read++
      if (record.key === undefined) throw badRecord(record, 'no key')
      const id = record.key.toString('utf8')
      const state = stateOf(record)
      fold.set(id, state === null ? null : { version: state.version, eventId: state.event_id })
      pending.set(id, state)
      return pending.size >= batchSize ? flush() : undefined
    })
    await flush()
  }

  const { rows } = await pool.query<{ id: string; version: string; event_id: string; deleted: boolean }>(
    `SELECT id, version::text, event_id::text, deleted_at IS NOT NULL AS deleted FROM ${table}`
  )
  let mismatches = 0
  let first: string | undefined
  const inTable = new Set<string>()
  for (const row of rows) {
    inTable.add(row.id)
    const want = fold.get(row.id)
    if (!want || row.deleted || Number(row.version) !== want.version || row.event_id !== want.eventId) {
      mismatches++
      first ??= row.id
    }
  }
  let memories = 0
  let deleted = 0
  for (const [id, want] of fold) {
    if (want === null) deleted++
    else {
      memories++
      if (!inTable.has(id)) {
        mismatches++
        first ??= id
      }
    }
  }
  const report = { into: displayName(resolved.memories), records: read, memories, deleted, mismatches }
  if (mismatches > 0) {
    throw new FatalError(
      `${report.into} differs from the fold of ${options.topic} in ${mismatches} row(s) (first: id ${first}): not ` +
        'swapped; inspect it, drop it and run again',
      { code: ErrorCodes.INTERNAL }
    )
  }
  if (!options.swap) return { ...report, swapped: false }
  if (live.memories.schema !== undefined && live.memories.schema !== resolved.memories.schema) {
    throw new FatalError(
      `--swap needs the new table in the live table's schema ${live.memories.schema} (a rename keeps the schema): ` +
        `${report.into} was built and checked, not swapped`,
      { code: ErrorCodes.CONFIG }
    )
  }
  const merged = await swap(pool, resolved, live, startedAt, options.lockTimeoutMs ?? 10_000)
  return { ...report, swapped: true, merged }
}

async function swap(
  pool: Pool,
  target: TableNames,
  liveNames: TableNames,
  startedAt: Date,
  lockTimeoutMs: number
): Promise<number> {
  const out = await checkout(pool, 'rebuild swap')
  const client = out.client
  let broken = false
  try {
    await client.query('BEGIN')
    try {
      const live = quoteQualified({
        schema: liveNames.memories.schema ?? target.memories.schema,
        name: liveNames.memories.name
      })
      const fresh = quoteQualified(target.memories)
      await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.trunc(lockTimeoutMs))}`)
      // Readers go on; the live topology's writes wait for the commit (then land in the new table by its name).
      await client.query(`LOCK TABLE ${live} IN SHARE ROW EXCLUSIVE MODE`)
      const merged = await client.query(
        `INSERT INTO ${fresh} (${UPSERT_COLUMNS}, deleted_at, updated_at)
         SELECT ${UPSERT_COLUMNS}, deleted_at, updated_at FROM ${live}
         WHERE updated_at >= $1 OR deleted_at IS NOT NULL
         ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace, type = excluded.type,
           payload = excluded.payload, importance = excluded.importance, version = excluded.version,
           event_id = excluded.event_id, event_ts = excluded.event_ts, deleted_at = excluded.deleted_at,
           updated_at = excluded.updated_at
         WHERE (excluded.version, excluded.event_ts) > (${fresh}.version, ${fresh}.event_ts)`,
        [startedAt]
      )
      const schema = target.memories.schema!
      const parking = `${target.memories.name.slice(0, 40)}_swap_${process.pid}`
      const liveName = liveNames.memories.name
      await client.query(`ALTER TABLE ${live} RENAME TO ${quoteIdent(parking)}`)
      await client.query(`ALTER TABLE ${fresh} RENAME TO ${quoteIdent(liveName)}`)
      await client.query(
        `ALTER TABLE ${quoteIdent(schema)}.${quoteIdent(parking)} RENAME TO ${quoteIdent(target.memories.name)}`
      )
      await client.query('COMMIT')
      return merged.rowCount ?? 0
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {
        broken = true
      })
      if (/lock timeout/i.test(String((error as Error)?.message))) {
        throw new FatalError(
          `the live table stayed locked for ${lockTimeoutMs} ms (a long transaction on it?): nothing was swapped; ` +
            'run the swap again',
          { code: ErrorCodes.TIMEOUT, cause: error }
        )
      }
      throw error
    }
  } finally {
    out.release(broken)
  }
}
