import type { Embedder } from '../../embedders/types.ts'
import { ErrorCodes, FatalError } from '../../errors.ts'
import type { LogAccess, LogRecord } from '../../ops/log.ts'
import {
  derivedName,
  displayName,
  parseTableName,
  type QualifiedName,
  quoteIdent,
  quoteQualified
} from '../../postgres/identifiers.ts'
import type { SqlDatabase } from '../../sinks/pgvector/database.ts'
import { PgvectorStore, type PgvectorStoreOptions } from '../../sinks/pgvector/store.ts'
import { QdrantStore, type QdrantStoreInput, toQdrantError } from '../../sinks/qdrant/index.ts'
import type { SinkContext } from '../../sinks/types.ts'
import type { VectorStore } from '../../sinks/vector/types.ts'
import { Delivery, Envelope } from '../../streams/envelope.ts'
import type { LatestRecord } from '../latest.ts'
import { badRecord, latestValue } from '../rebuild.ts'
import { reindexSink } from './reindex.ts'
import { embeddingText } from './text.ts'

/**
 * `npm run rebuild -- vectors`: builds a new vector table (pgvector) or collection (Qdrant) from `memory.latest` (the
 * last state of each memory), checks it against the fold of the topic, and optionally swaps it in for the live one.
 * The live topology keeps running meanwhile (it writes the live table or collection only).
 *
 * The fill is the reindex sink with `fill` (src/memory/vectors/reindex.ts) over the topic up to its end at the
 * start, into a table or collection it creates (the embedder's dimensions). The check: every live memory with text
 * to embed is there, live, at the fold's version; every memory whose last record is a tombstone is absent (or a
 * tombstone); nothing else is live (its live count equals the fold's). Before a swap, the records written to the
 * topic since the start are filled in too (catch-up). The swap, per target:
 * - pgvector: one transaction that locks the live table against writes, merges into the new table under the fence
 *   what the live topology wrote since the start (rows of the same vector dimensions; tombstones whatever the
 *   dimensions), then exchanges the two tables' names and their index names. The previous table stays under the
 *   `into` name.
 * - Qdrant: one alias update (delete the live alias, create it on the new collection), which Qdrant applies
 *   atomically; the live name must be an alias (or not exist yet). The previous collection stays, under its name.
 */
export interface RebuildVectorsOptions {
  /** The live table or collection (alias for Qdrant). */
  table: string
  /** The table or collection to build; it must not exist. */
  into: string
  /** The compacted latest topic. */
  topic: string
  swap?: boolean
  /** Records per batch (embedding call and write). Default 500. */
  batchSize?: number
  /** Called after each batch with the records read so far and the total to read. */
  onProgress?: (read: number, total: number) => void
}

/** Where a rebuild writes: the new store, and how to tell that a name is taken and to swap. */
export interface RebuildTarget {
  /** `table` or `collection`, for messages. */
  readonly what: string
  /** Checks the names (throws a FatalError for a bad one) and returns the display name of `into`. */
  names(live: string, into: string): string
  /** Whether a table or collection (or alias) by that name exists. */
  exists(name: string): Promise<boolean>
  /** Server time now, as the swap's lower bound of what the live topology wrote since. */
  now(): Promise<string>
  /** The store of the new table or collection (the rebuild opens and closes it). */
  store(into: string): VectorStore
  /** Throws (a FatalError, nothing changed) when `into` could not be swapped in for `live`; called before the build. */
  canSwap(live: string, into: string): Promise<void>
  /** Makes the checked `into` the live one. */
  swap(live: string, into: string, startedAt: string): Promise<SwapReport>
}

export interface SwapReport {
  /** pgvector: rows the live table wrote since the start, merged under the fence (tombstones included). */
  readonly merged?: number
  /** pgvector, other dimensions: live upserts since the start that could not be carried over (see the report). */
  readonly notCarried?: number
  /** Qdrant: the collection the live alias pointed at before (undefined: the alias is new). */
  readonly previous?: string
}

export interface RebuildVectorsReport {
  readonly into: string
  /** Records of the topic read (up to its end at the start). */
  readonly records: number
  /** Live memories in the fold (their last record is a state) with text to embed: the points of the new table. */
  readonly memories: number
  /** Live memories with nothing to embed (no text, empty payload), not indexed (as the vector branch does). */
  readonly empty: number
  /** Keys whose last record is a tombstone. */
  readonly deleted: number
  /** Records the fill dead-lettered (malformed, refused by the embedder): not indexed, not checked. */
  readonly failed: number
  /** Points that differ from the fold (0, or the rebuild fails). */
  readonly mismatches: number
  readonly dimensions: number
  readonly model: string
  readonly swapped: boolean
  /** On a swap: records written to the topic since the start, filled in before the swap. */
  readonly caughtUp?: number
  /** On a pgvector swap: rows the live table wrote since the start, merged under the fence (tombstones included). */
  readonly merged?: number
  /** On a Qdrant swap: the collection the live alias pointed at before. */
  readonly previous?: string
  /**
   * On a swap to other dimensions: live upserts written since the start that could not be carried over (their
   * vectors have the old dimensions). The memory topology, restarted with the new embedder, writes them again on
   * their next change; `SFM_REINDEX_FILL=true` reindex catches them up now.
   */
  readonly notCarried?: number
}

/** The fold of one memory id (null for a tombstone): its version and whether the fill indexed its state. */
interface Fold {
  readonly version: number
  outcome: 'indexed' | 'empty' | 'failed'
}

const host = { done() {}, deadLetter() {}, dropped() {} }

function envelope(record: LogRecord, value: LatestRecord): Envelope<LatestRecord> {
  const delivery = new Delivery(host, {
    origin: {
      topic: record.topic,
      partition: record.partition,
      offset: BigInt(record.offset),
      leaderEpoch: 0,
      timestamp: 0n
    },
    key: record.key,
    raw: record.value ?? Buffer.alloc(0),
    headers: new Map()
  })
  return new Envelope(delivery, value)
}

function decode(record: LogRecord): LatestRecord {
  if (record.key === undefined || record.key.length === 0) throw badRecord(record, 'no key')
  const id = record.key.toString('utf8')
  const state = latestValue(record)
  if (state === null) return { id, state: null }
  if (!Number.isSafeInteger(state.version)) throw badRecord(record, 'version missing')
  return { id, state }
}

/** The error of a rebuild into a table or collection that exists: a usage error (nothing was changed). */
export function existsError(what: string): FatalError {
  return new FatalError(
    `${what} exists: choose a new --into (a rebuild never writes into a table or collection it did not create), or ` +
      'drop it first',
    { code: ErrorCodes.CONFIG }
  )
}

export async function rebuildVectors(
  access: LogAccess,
  embedder: Embedder,
  target: RebuildTarget,
  options: RebuildVectorsOptions
): Promise<RebuildVectorsReport> {
  const batchSize = options.batchSize ?? 500
  const into = target.names(options.table, options.into)
  if (await target.exists(options.into)) throw existsError(`${target.what} ${into}`)
  if (options.swap) await target.canSwap(options.table, options.into)
  const partitions = await access.partitions(options.topic)
  const total = partitions.reduce((sum, p) => sum + Number(p.end - p.start), 0)
  const startedAt = await target.now()

  const store = target.store(options.into)
  const sink = reindexSink({ embedder, store, fill: true, owns: false })
  const context: SinkContext = { topology: 'rebuild', branch: 'vectors', signal: new AbortController().signal }
  try {
    await sink.open(context)
    const fold = new Map<string, Fold | null>()
    let pending: { record: LogRecord; value: LatestRecord }[] = []
    let read = 0
    let failed = 0
    const flush = async () => {
      if (pending.length === 0) return
      const batch = pending
      pending = []
      const result = await sink.write(
        batch.map((p) => envelope(p.record, p.value)),
        context
      )
      for (const failure of result.failures ?? []) {
        const { id, state } = batch[failure.index]!.value
        const entry = fold.get(id)
        // Only the record that made the fold's state matters: an older one that failed was replaced anyway.
        if (entry && state?.version === entry.version) entry.outcome = 'failed'
        failed++
      }
      options.onProgress?.(read, total)
    }
    const fill = async (ranges: readonly { partition: number; from: bigint; to: bigint }[]) => {
      for (const range of ranges) {
        if (range.to <= range.from) continue
        await access.scan(options.topic, [range], (record) => {
          read++
          const value = decode(record)
          fold.set(
            value.id,
            value.state === null
              ? null
              : {
                  version: value.state.version,
                  outcome: embeddingText(value.state) === undefined ? 'empty' : 'indexed'
                }
          )
          pending.push({ record, value })
          return pending.length >= batchSize ? flush() : undefined
        })
        await flush()
      }
    }
    await fill(partitions.map((p) => ({ partition: p.partition, from: p.start, to: p.end })))

    const checked = await check(store, fold)
    const report = {
      into,
      records: read,
      ...checked,
      failed,
      dimensions: embedder.dimensions,
      model: embedder.revision
    }
    if (checked.mismatches > 0) {
      throw new FatalError(
        `${into} differs from the fold of ${options.topic} in ${checked.mismatches} point(s) (first: id ` +
          `${checked.first}): not swapped; inspect it, drop it and run again`,
        { code: ErrorCodes.INTERNAL }
      )
    }
    const { first: _, ...clean } = report
    if (!options.swap) return { ...clean, swapped: false }
    // Catch-up: what the topic got since the start, so the swap leaves little for the live topology's own writes.
    const before = read
    const now = await access.partitions(options.topic)
    const ends = new Map(partitions.map((p) => [p.partition, p.end]))
    await fill(now.map((p) => ({ partition: p.partition, from: ends.get(p.partition) ?? p.start, to: p.end })))
    const swapped = await target.swap(options.table, options.into, startedAt)
    return {
      ...clean,
      swapped: true,
      caughtUp: read - before,
      ...(swapped.merged === undefined ? {} : { merged: swapped.merged }),
      ...(swapped.notCarried ? { notCarried: swapped.notCarried } : {}),
      ...(swapped.previous === undefined ? {} : { previous: swapped.previous })
    }
  } finally {
    await store.close().catch(() => {})
  }
}

/** Compares the store with the fold: every indexed memory live at its version, deleted ones absent, no others. */
async function check(store: VectorStore, fold: Map<string, Fold | null>) {
  let memories = 0
  let empty = 0
  let deleted = 0
  let mismatches = 0
  let first: string | undefined
  const ids = [...fold.keys()]
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = ids.slice(i, i + 1000)
    const points = await store.points(chunk)
    for (const id of chunk) {
      const want = fold.get(id)!
      const point = points.get(id)
      let ok: boolean
      if (want === null) {
        deleted++
        ok = point === undefined || point.deleted
      } else if (want.outcome !== 'indexed') {
        if (want.outcome === 'empty') empty++
        ok = true
      } else {
        memories++
        ok = point !== undefined && !point.deleted && point.version === want.version
      }
      if (!ok) {
        mismatches++
        first ??= id
      }
    }
  }
  const count = await store.count()
  if (count !== memories) {
    mismatches += Math.abs(count - memories)
    first ??= `(${count} live points for ${memories} memories)`
  }
  return { memories, empty, deleted, mismatches, first }
}

/** pgvector (a server PostgreSQL or PGlite) as a rebuild target: tables, swapped by renames in one transaction. */
export function pgvectorTarget(
  db: SqlDatabase,
  storeOptions: Partial<Omit<PgvectorStoreOptions, 'table'>> = {},
  lockTimeoutMs = 10_000
): RebuildTarget {
  return {
    what: 'table',
    names(liveName, intoName) {
      const live = parseTableName(liveName, 'vector table')
      const target = parseTableName(intoName, '--into')
      if (displayName(target) === displayName(live)) {
        throw new FatalError('--into must name another table than the live one', { code: ErrorCodes.CONFIG })
      }
      return displayName(target)
    },
    async exists(name) {
      const rows = await db.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [
        quoteQualified(parseTableName(name, 'vector table'))
      ])
      return rows[0]?.found !== null && rows[0]?.found !== undefined
    },
    async now() {
      const rows = await db.query<{ now: string }>('SELECT now()::text AS now')
      return rows[0]!.now
    },
    store(into) {
      return new PgvectorStore(db, { ...storeOptions, table: into })
    },
    async canSwap(liveName, intoName) {
      const live = parseTableName(liveName, 'vector table')
      const target = parseTableName(intoName, '--into')
      if (live.schema !== target.schema) {
        throw new FatalError(
          `--swap needs --into in the live table's schema (a rename keeps the schema): ${displayName(live)} and ` +
            `${displayName(target)} differ`,
          { code: ErrorCodes.CONFIG }
        )
      }
      if (!(await this.exists(liveName))) {
        throw new FatalError(
          `the live table ${displayName(live)} does not exist, so there is nothing to swap: leave out --swap and ` +
            'point SFM_VECTOR_TABLE at the new table, or name the live one with --table',
          { code: ErrorCodes.CONFIG }
        )
      }
    },
    async swap(liveName, intoName, startedAt) {
      await this.canSwap(liveName, intoName)
      const live = parseTableName(liveName, 'vector table')
      const target = parseTableName(intoName, '--into')
      return swapTables(db, live, target, startedAt, lockTimeoutMs)
    }
  }
}

/**
 * Qdrant as a rebuild target: collections, swapped by one alias update. The live topology must write through an
 * alias (SFM_QDRANT_COLLECTION names the alias) for the switch to reach it; a live name that is a collection is
 * refused. `input`: the store options (url, api key, request sizes) less the collection.
 */
export function qdrantTarget(input: Omit<QdrantStoreInput, 'collection'>): RebuildTarget {
  const admin = new QdrantStore({ ...input, collection: 'rebuild' })
  const call = async <T>(what: string, work: () => Promise<T>): Promise<T> => {
    try {
      return await work()
    } catch (error) {
      throw toQdrantError(error, what)
    }
  }
  const aliases = async () =>
    new Map(
      (await call('list aliases', () => admin.client.getAliases())).aliases.map((a) => [
        a.alias_name,
        a.collection_name
      ])
    )
  return {
    what: 'collection',
    names(live, into) {
      for (const name of [live, into]) {
        if (!/^[A-Za-z0-9_.-]{1,255}$/.test(name)) {
          throw new FatalError(
            `qdrant: a collection or alias name must match [A-Za-z0-9_.-]{1,255}, got ${JSON.stringify(name)}`,
            {
              code: ErrorCodes.CONFIG
            }
          )
        }
      }
      if (live === into) {
        throw new FatalError('--into must name another collection than the live one', { code: ErrorCodes.CONFIG })
      }
      return into
    },
    async exists(name) {
      if ((await aliases()).has(name)) return true
      return (await call('collection exists', () => admin.client.collectionExists(name))).exists
    },
    async now() {
      return new Date().toISOString()
    },
    store(into) {
      return new QdrantStore({ ...input, collection: into })
    },
    async canSwap(live) {
      if ((await aliases()).has(live)) return
      if ((await call('collection exists', () => admin.client.collectionExists(live))).exists) {
        throw new FatalError(
          `qdrant: ${live} is a collection, not an alias, and only an alias can be switched atomically: rebuild ` +
            'with --swap --table <a new alias name> (it creates the alias on the new collection), then restart the ' +
            'memory topology with SFM_QDRANT_COLLECTION=<that alias>',
          { code: ErrorCodes.CONFIG }
        )
      }
    },
    async swap(live, into) {
      await this.canSwap(live, into)
      const previous = (await aliases()).get(live)
      await call('switch alias', () =>
        admin.client.updateCollectionAliases({
          actions: [
            ...(previous === undefined ? [] : [{ delete_alias: { alias_name: live } }]),
            { create_alias: { collection_name: into, alias_name: live } }
          ]
        })
      )
      return previous === undefined ? {} : { previous }
    }
  }
}

const COLUMNS =
  'id, namespace, type, importance, version, event_ts, model_revision, embedding, excerpt, deleted_at, updated_at'

async function swapTables(
  db: SqlDatabase,
  live: QualifiedName,
  target: QualifiedName,
  startedAt: string,
  lockTimeoutMs: number
): Promise<{ merged: number; notCarried: number }> {
  const qualify = (name: string) => quoteQualified({ schema: live.schema, name })
  const liveTable = qualify(live.name)
  const fresh = qualify(target.name)
  try {
    return await db.transaction(async (query) => {
      await query(`SET LOCAL lock_timeout = ${Math.max(1, Math.trunc(lockTimeoutMs))}`)
      // Readers go on; the live topology's writes wait for the commit (then land in the new table by its name).
      await query(`LOCK TABLE ${liveTable} IN SHARE ROW EXCLUSIVE MODE`)
      const dims = await query<{ table: string; dims: number }>(
        `SELECT attrelid::regclass::text AS table, atttypmod AS dims FROM pg_attribute
          WHERE attrelid IN ($1::regclass, $2::regclass) AND attname = 'embedding'`,
        [liveTable, fresh]
      )
      const sameDimensions = dims.length === 2 && dims[0]!.dims === dims[1]!.dims
      // What the live table wrote since the start (and every tombstone), newer than the rebuilt point.
      const since = `(l.updated_at >= $1::timestamptz OR l.deleted_at IS NOT NULL)`
      const newer = `NOT EXISTS (SELECT 1 FROM ${fresh} f WHERE f.id = l.id AND (f.version, f.event_ts) >= (l.version, l.event_ts))`
      const notCarried = sameDimensions
        ? 0
        : Number(
            (
              await query<{ n: string }>(
                `SELECT count(*)::text AS n FROM ${liveTable} l WHERE ${since} AND l.deleted_at IS NULL AND ${newer}`,
                [startedAt]
              )
            )[0]?.n ?? 0
          )
      const merged = await query<{ id: string }>(
        `INSERT INTO ${fresh} AS f (${COLUMNS})
         SELECT ${COLUMNS} FROM ${liveTable} l
          WHERE ${since} ${sameDimensions ? '' : 'AND l.deleted_at IS NOT NULL'}
         ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace, type = excluded.type,
           importance = excluded.importance, version = excluded.version, event_ts = excluded.event_ts,
           model_revision = excluded.model_revision, embedding = excluded.embedding, excerpt = excluded.excerpt,
           deleted_at = excluded.deleted_at, updated_at = excluded.updated_at
         WHERE (excluded.version, excluded.event_ts) > (f.version, f.event_ts)
         RETURNING f.id`,
        [startedAt]
      )
      const parking = `${target.name.slice(0, 40)}_swap_${process.pid}`
      const rename = async (from: string, to: string) => {
        await query(`ALTER TABLE ${qualify(from)} RENAME TO ${quoteIdent(to)}`)
        for (const suffix of ['embedding_idx', 'namespace_idx']) {
          await query(
            `ALTER INDEX IF EXISTS ${qualify(derivedName(from, suffix))} RENAME TO ${quoteIdent(derivedName(to, suffix))}`
          )
        }
      }
      await rename(live.name, parking)
      await rename(target.name, live.name)
      await rename(parking, target.name)
      return { merged: merged.length, notCarried }
    })
  } catch (error) {
    if (/lock timeout/i.test(String((error as Error)?.message))) {
      throw new FatalError(
        `the live table stayed locked for ${lockTimeoutMs} ms (a long transaction on it?): nothing was swapped; ` +
          'run the rebuild again',
        { code: ErrorCodes.TIMEOUT, cause: error }
      )
    }
    throw error
  }
}
