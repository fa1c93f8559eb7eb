import type { Pool } from 'pg'
import {
  type CreateProducerOptions,
  createProducer,
  type OutgoingMessage,
  type SfmProducer
} from '../kafka/producer.ts'
import { RecordsTooLargeError } from '../kafka/record-limit.ts'
import { acquirePglite, displayFolder, pgliteFolder, type SharedPglite } from '../pglite/shared.ts'
import { createPool, type Outcome, Outcomes, pglitePool, resolveConnectionOptions } from '../sinks/postgres/index.ts'
import type { Sink, SinkContext, WriteResult } from '../sinks/types.ts'
import type { Delivery, Envelope } from '../streams/envelope.ts'
import { type PostgresBatchMessage, postgresBatchChannel } from '../telemetry/channels.ts'
import { injectContext } from '../telemetry/propagation.ts'
import { type AuditFormat, auditEncoder, resolveAuditFormat } from './audit-format.ts'
import { isDelete, type MemoryEvent } from './event.ts'
import { withTombstoneFence } from './latest.ts'
import { DEFAULT_TABLE, type MemoriesSink, memoriesSink, tableNames } from './memories.ts'
import type { PreparedEvent } from './prepare.ts'

export interface MaterializeOptions extends CreateProducerOptions {
  /**
   * PostgreSQL connection string. Without it the table lives in the embedded PGlite of `<dataDir>/pg` (shared with
   * the vector store, see src/pglite/shared.ts): same migrations, same statement.
   */
  connectionString?: string | undefined
  /** Memories table (`name` or `schema.name`). */
  table?: string
  poolSize?: number
  /** Compacted topic that receives the latest state of each memory touched (null value for a deleted one). */
  latestTopic: string
  /** Append-only topic that receives one record per processed event, with its outcome. */
  auditTopic: string
  /** Topology name written into audit records. */
  topology?: string
  /**
   * Wire format of the audit records: `json` (default, the memory.audit v1 record) or `connect` (that record in a
   * Kafka Connect JsonConverter envelope, for the JDBC sink). See src/memory/audit-format.ts.
   */
  auditFormat?: AuditFormat
}

/** One row of `memories` as read back after a write (and by the console's memory lookup). */
export interface StoredRow {
  id: string
  namespace: string
  type: string | null
  payload: string | null
  importance: number | null
  version: string
  event_id: string
  /** `YYYY-MM-DDTHH:MM:SS.ffffffZ`: the fence's exact microseconds (a `Date` would cut them to milliseconds). */
  event_ts: string
  deleted_at: string | null
}

/** The database behind the sink: a pg.Pool, or the adapter over this process's shared PGlite. */
interface Store {
  pool: Pool
  postgres: MemoriesSink
  shared?: SharedPglite
}

/** Where the memories table lives, for start banners. */
export function kvStoreDescription(options: Pick<MaterializeOptions, 'connectionString' | 'dataDir'>): string {
  return options.connectionString
    ? 'PostgreSQL at DATABASE_URL'
    : `PGlite at ${displayFolder(pgliteFolder(options.dataDir))} (set DATABASE_URL for a PostgreSQL server)`
}

/**
 * The memory topology's KV stage: PostgreSQL first, then what follows from it, in one sink so that a batch is acked
 * only when all of it is durable.
 *
 * 1. The Postgres sink writes the batch (fence rule, event_id idempotency) and reports each event's outcome.
 * 2. The state of each memory the batch touched is published to `memory.latest` (a tombstone for a deleted memory):
 *    what the table holds — rather than the event — keeps the compacted topic right even for redeliveries and stale
 *    events, and makes republishing harmless. Where an event was `applied`, the row now holds exactly that event as
 *    the sink wrote it (its payload JSON text, canonical timestamp), so the record is built from it; only the ids
 *    whose events were all fenced or duplicates are read back (reading back every touched row costs a query per
 *    batch and the parsing of every payload).
 * 3. One audit record per event goes to `memory.audit` (applied / fenced / duplicate).
 *
 * Steps 2 and 3 are one send (split into requests under each topic's record-size limit by the producer). If it fails,
 * the whole batch is retried: step 1 then reports the events as duplicates, so the outcome of the first attempt is
 * remembered per delivery for the audit record. A record too large for its topic is not retried: its event is
 * dead-lettered with the reason and the rest of the batch is done.
 */
export function materializeMemories(options: MaterializeOptions): Sink<MemoryEvent> & {
  readonly postgres: MemoriesSink | undefined
  /** The memories table's row of `id` (a deleted memory's tombstone included), or undefined; after `open`. */
  readMemory(id: string): Promise<StoredRow | undefined>
} {
  const table = options.table ?? DEFAULT_TABLE
  tableNames(table)
  const resolved = resolveConnectionOptions(
    options.connectionString
      ? {
          connectionString: options.connectionString,
          ...(options.poolSize === undefined ? {} : { poolSize: options.poolSize })
        }
      : // Validated now with a stand-in pool; the PGlite one is made on open.
        { pool: {} as Pool }
  )
  // Opened on first use: PGlite is opened asynchronously (and takes the data folder's lock).
  let store: Store | undefined
  let storing: Promise<Store> | undefined
  const openStore = async (): Promise<Store> => {
    if (options.connectionString) {
      const pool = createPool(resolved)
      pool.on('error', () => {
        // An idle client lost its connection; the next query reconnects (see the Postgres sink).
      })
      return { pool, postgres: memoriesSink({ ...resolved, pool, table }) }
    }
    const shared = await acquirePglite(options.dataDir)
    const pool = pglitePool(shared.db)
    return { pool, postgres: memoriesSink({ ...resolved, pool, table }), shared }
  }
  const ensureStore = async (): Promise<Store> => {
    if (store) return store
    storing ??= openStore().catch((error: unknown) => {
      storing = undefined
      throw error
    })
    store = await storing
    return store
  }
  const firstOutcome = new WeakMap<Delivery, Outcome>()
  let producer: SfmProducer | undefined
  const topology = options.topology ?? 'memory'
  const encodeAudit = auditEncoder(resolveAuditFormat(options.auditFormat, 'auditFormat'))

  return {
    kind: 'postgres+kafka',
    dryRun: true,
    get postgres() {
      return store?.postgres
    },
    async readMemory(id: string) {
      const { postgres } = await ensureStore()
      return ((await postgres.readRows([id], 'console: memory lookup')) as unknown as StoredRow[])[0]
    },
    async open(context?: SinkContext) {
      const { postgres } = await ensureStore()
      await postgres.open(context)
      if (context?.dryRun) return
      producer ??= createProducer({ clientId: `sfm-${topology}-materialize`, ...options })
    },
    async write(batch: readonly Envelope<MemoryEvent>[], context: SinkContext): Promise<WriteResult> {
      const { postgres } = await ensureStore()
      const started = performance.now()
      const result = await postgres.write(batch, context)
      if (context.dryRun) return dryRunReport(batch, result, options)
      postgresBatchChannel.publish({
        table,
        applied: result.counts.applied,
        fenced: result.counts.fenced,
        duplicate: result.counts.duplicate,
        seconds: (performance.now() - started) / 1000
      } satisfies PostgresBatchMessage)

      const records: OutgoingMessage[] = []
      // Per record, the batch index of the envelope it is for (to dead-letter that one if the record is too large).
      const owners: number[] = []
      // Per id, the index of its last envelope in the batch.
      const touched = new Map<string, number>()
      // Per id, its applied event (at most one: a batch is reduced to one winner per id).
      const applied = new Map<string, PreparedEvent>()
      const processedAt = new Date().toISOString()
      batch.forEach((envelope, index) => {
        const outcome = result.outcomes[index]
        if (outcome === undefined) return
        if (!firstOutcome.has(envelope.delivery)) firstOutcome.set(envelope.delivery, outcome)
        const event = envelope.value
        touched.set(event.id, index)
        const prepared = result.prepared[index]
        if (outcome === Outcomes.APPLIED && prepared !== undefined && CANONICAL_UUID.test(prepared.eventId)) {
          applied.set(event.id, prepared)
        }
        records.push({
          topic: options.auditTopic,
          key: event.id,
          value: encodeAudit({
            event_id: event.event_id,
            id: event.id,
            namespace: event.namespace,
            op: isDelete(event) ? 'delete' : 'upsert',
            version: event.version ?? 0,
            timestamp: event.timestamp,
            outcome: firstOutcome.get(envelope.delivery),
            topology,
            processed_at: processedAt
          }),
          headers: traceHeaders(envelope.delivery)
        })
        owners.push(index)
      })
      for (const [id, event] of applied) {
        const index = touched.get(id)!
        const delivery = batch[index]!.delivery
        records.push({
          topic: options.latestTopic,
          key: id,
          value: event.deleted ? null : latestFromEvent(event),
          headers: event.deleted
            ? withTombstoneFence(injectContext(delivery.context), event.version, event.timestamp)
            : traceHeaders(delivery)
        })
        owners.push(index)
      }
      const unread = applied.size === touched.size ? [] : [...touched.keys()].filter((id) => !applied.has(id))
      if (unread.length > 0) {
        const rows = (await postgres.readRows(unread, 'memory.latest: read back')) as unknown as StoredRow[]
        for (const row of rows) {
          const index = touched.get(row.id)
          if (index === undefined) continue
          const delivery = batch[index]!.delivery
          records.push({
            topic: options.latestTopic,
            key: row.id,
            value: row.deleted_at === null ? latestValue(row) : null,
            headers:
              row.deleted_at === null
                ? traceHeaders(delivery)
                : withTombstoneFence(injectContext(delivery.context), Number(row.version), row.event_ts)
          })
          owners.push(index)
        }
      }
      producer ??= createProducer({ clientId: `sfm-${topology}-materialize`, ...options })
      try {
        await producer.send(records)
      } catch (error) {
        if (!(error instanceof RecordsTooLargeError)) throw error
        // The other records are written; the events whose record Kafka cannot take go to the DLQ with the reason
        // (their row is written: the DLQ keeps the event for a replay once the topic's limit allows it).
        const failures = [...(result.failures ?? [])]
        const failed = new Set(failures.map((f) => f.index))
        for (const rejected of error.rejected) {
          const index = owners[rejected.index]!
          if (failed.has(index)) continue
          failed.add(index)
          failures.push({ index, error: rejected.error })
        }
        return { failures }
      }
      return result.failures && result.failures.length > 0 ? { failures: result.failures } : {}
    },
    async close() {
      const current = store ?? (await storing?.catch(() => undefined))
      store = undefined
      storing = undefined
      await Promise.allSettled([current?.postgres.close(), producer?.close()])
      producer = undefined
      await current?.pool.end().catch(() => {})
      await current?.shared?.release()
    }
  }
}

/**
 * A dry run's report: the PostgreSQL outcomes (rolled back), and the records the write would have produced — one
 * `memory.latest` record per memory with an outcome, one `memory.audit` record per event with an outcome.
 */
function dryRunReport(
  batch: readonly Envelope<MemoryEvent>[],
  result: Awaited<ReturnType<MemoriesSink['write']>>,
  options: Pick<MaterializeOptions, 'latestTopic' | 'auditTopic'>
): WriteResult {
  const ids = new Set<string>()
  let audit = 0
  batch.forEach((envelope, index) => {
    if (result.outcomes[index] === undefined) return
    ids.add(envelope.value.id)
    audit++
  })
  return {
    ...(result.failures && result.failures.length > 0 ? { failures: result.failures } : {}),
    dryRun: { ...result.dryRun, [options.latestTopic]: ids.size, [options.auditTopic]: audit }
  }
}

/** The trace context of the event's message as record headers; none when it carries none (most records). */
function traceHeaders(delivery: Delivery): Map<string, Buffer> | undefined {
  const headers = injectContext(delivery.context)
  return headers.size > 0 ? headers : undefined
}

/**
 * An event id as PostgreSQL prints a uuid (lower case, hyphenated), once lower-cased. Other spellings it accepts
 * (braces, no hyphens) are read back instead, so the record says what `event_id::text` says.
 */
const CANONICAL_UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/

/**
 * The state an applied upsert left in the table, as JSON text with the same fields as `latestValue` (the payload is
 * the JSON text the sink wrote: equal as JSON to what `payload::text` gives, though jsonb orders keys and spaces
 * them its own way).
 */
function latestFromEvent(event: PreparedEvent): string | Buffer {
  const head = JSON.stringify({
    id: event.id,
    namespace: event.namespace,
    type: event.type,
    importance: event.importance,
    version: event.version,
    event_id: event.eventId.toLowerCase(),
    timestamp: event.timestamp
  })
  const payload = event.payload
  if (typeof payload === 'string' || payload === null) return `${head.slice(0, -1)},"payload":${payload ?? 'null'}}`
  // The payload's bytes as the event carried them: copied, not encoded again.
  const start = `${head.slice(0, -1)},"payload":`
  const value = Buffer.allocUnsafe(Buffer.byteLength(start) + payload.length + 1)
  const at = value.write(start)
  payload.copy(value, at)
  value[at + payload.length] = CLOSE_BRACE
  return value
}

const CLOSE_BRACE = 0x7d

/** The latest state of a memory as JSON text; the payload is spliced in as stored (no parse/serialise round). */
function latestValue(row: StoredRow): string {
  const head = JSON.stringify({
    id: row.id,
    namespace: row.namespace,
    type: row.type,
    importance: row.importance,
    version: Number(row.version),
    event_id: row.event_id,
    timestamp: row.event_ts
  })
  return `${head.slice(0, -1)},"payload":${row.payload ?? 'null'}}`
}
