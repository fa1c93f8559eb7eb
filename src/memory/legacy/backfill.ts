/**
 * Backfill: the memory rows of the legacy `kv_store` as `memory.event` v1 upserts on `memory.events`.
 *
 * Reads the table in key order, one page at a time (keyset pagination on the primary key: `key > last ORDER BY key
 * LIMIT n`, constant memory whatever the table's size), and produces each memory as an upsert of its id (the key
 * without `:data`) at version 0, so it never overwrites a newer event of the live producers. Its `event_id` is a
 * hash of key and value: a second run produces the same events, which the memory topology recognises as
 * duplicates (nothing changes). Rows that are not memories are skipped and counted by kind. The last key whose page
 * every broker acknowledged is handed to `checkpoint`, so a killed run resumes after it.
 *
 * Repair: the ids a parity report names, re-emitted at the current clock's version (microseconds since the epoch),
 * as upserts of the legacy value or, for ids gone from the legacy store, deletes.
 */
import { createHash } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import type pg from 'pg'
import { ErrorCodes, FatalError } from '../../errors.ts'
import type { OutgoingMessage, SfmProducer } from '../../kafka/producer.ts'
import { memoryIdOfLegacyKey } from './memory-id.ts'
import { PARITY_CLASSES, type ParityReport } from './parity-report.ts'
import { LEGACY_TABLE, type LegacyRowKind, LegacyRowKinds, legacyRowKind, namespaceOfMemoryId } from './store.ts'

/** Counts of what a run read, produced and skipped. */
export interface BackfillCounts {
  /** Rows of `kv_store` read (all kinds; with a namespace, those under it). */
  read: number
  /** Memory events produced and acknowledged (or, in a dry run, that would be). */
  produced: number
  /** Rows that are not memories, by kind. */
  skipped: Record<Exclude<LegacyRowKind, 'memory'>, number>
  /** Memory rows that cannot become an event (reason → count); see `invalidSamples`. */
  invalid: Record<string, number>
}

export interface BackfillProgress extends BackfillCounts {
  /** Rows in the table (or namespace) when the run started: the denominator of the progress bar. */
  readonly total: number
  readonly seconds: number
  /** The last key acknowledged. */
  readonly lastKey: string | undefined
}

export interface BackfillSummary extends BackfillProgress {
  readonly rate: number
  readonly dryRun: boolean
  /** Up to 10 keys of invalid memory rows, with the reason. */
  readonly invalidSamples: readonly { key: string; reason: string }[]
  readonly resumedAfter: string | undefined
}

export interface BackfillOptions {
  legacy: pg.Client
  /** Not used in a dry run. */
  producer?: SfmProducer
  topic: string
  namespace?: string
  dryRun?: boolean
  /** Resume after this key (from the checkpoint of an earlier run). */
  after?: string
  /** Called with the last key of each fully acknowledged page, in key order. */
  checkpoint?: (lastKey: string, counts: BackfillCounts) => Promise<void>
  onProgress?: (progress: BackfillProgress) => void
  /** Rows per page. Default 10,000. */
  pageSize?: number
  /** Send requests awaiting acknowledgement at once. Default 8. */
  maxInFlight?: number
  /** Larger events are not produced (the memory topology would dead-letter them); counted as invalid. 1 MiB. */
  maxEventBytes?: number
  /** The clock, ms since the epoch. */
  now?: () => number
}

const SEND_BYTES = 1024 * 1024
const SEND_COUNT = 2_000
const MAX_ID_LENGTH = 256

/** A uuid (RFC 9562 version 8, name-based) from the SHA-256 of the given parts. */
export function hashedEventId(...parts: readonly string[]): string {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(part).update('\0')
  const b = hash.digest()
  b[6] = (b[6]! & 0x0f) | 0x80
  b[8] = (b[8]! & 0x3f) | 0x80
  const h = b.toString('hex', 0, 16)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
}

interface Row {
  key: string
  value: string | null
  value_type: string | null
  memory_type: string | null
  importance: string | null
}

/** Only memory rows bring their value; the others only their key, to be counted. */
const SELECT_COLUMNS = `key,
  CASE WHEN right(key, 5) = ':data' THEN value::text END AS value,
  CASE WHEN right(key, 5) = ':data' THEN jsonb_typeof(value) END AS value_type,
  CASE WHEN right(key, 5) = ':data' AND jsonb_typeof(value) = 'object' THEN value->>'memory_type' END AS memory_type,
  CASE WHEN right(key, 5) = ':data' AND jsonb_typeof(value) = 'object' AND jsonb_typeof(value->'importance') = 'number'
       THEN value->>'importance' END AS importance`

function emptyCounts(): BackfillCounts {
  return { read: 0, produced: 0, skipped: { meta: 0, wal: 0, version: 0, uuid5: 0, other: 0 }, invalid: {} }
}

/** Where `namespace` filters: keys under `{namespace}:` (memory ids are then checked for their exact namespace). */
function namespaceFilter(namespace: string | undefined, parameter: number): string {
  return namespace === undefined ? 'true' : `starts_with(key, $${parameter}::text || ':')`
}

/** The event of one memory row, or the reason there is none. */
export function memoryEventText(
  row: Pick<Row, 'key' | 'value' | 'value_type' | 'memory_type' | 'importance'>,
  fields: { timestamp: string; version: number; eventId?: string },
  maxEventBytes = 1024 * 1024
): { id: string; text: string } | { id?: string; reason: string } {
  const id = memoryIdOfLegacyKey(row.key)
  if (id === undefined) return { reason: 'not a memory key' }
  if (id.length > MAX_ID_LENGTH) return { id, reason: `id longer than ${MAX_ID_LENGTH} characters` }
  const namespace = namespaceOfMemoryId(id)
  if (namespace === undefined) return { id, reason: 'key is not {namespace}:(coordinate):data' }
  if (row.value_type !== 'object' || row.value === null) return { id, reason: 'value is not a JSON object' }
  const type = row.memory_type
  if (type === null || type === '' || type.length > MAX_ID_LENGTH) return { id, reason: 'no memory_type' }
  const eventId = fields.eventId ?? hashedEventId(row.key, row.value)
  const importance = row.importance === null ? '' : `,"importance":${row.importance}`
  const text = `{"event_id":"${eventId}","id":${JSON.stringify(id)},"namespace":${JSON.stringify(namespace)},"op":"upsert","type":${JSON.stringify(type)},"timestamp":"${fields.timestamp}","version":${fields.version}${importance},"payload":${row.value}}`
  // Characters, not bytes: a cheap bound first, the exact size only near the limit.
  if (text.length * 3 > maxEventBytes && Buffer.byteLength(text) > maxEventBytes) {
    return { id, reason: `event larger than ${maxEventBytes} bytes` }
  }
  return { id, text }
}

/**
 * Sends pages with a bounded number of send requests in flight; `done` runs for each page, in page order, once
 * every one of its records is acknowledged (the checkpoint never passes a record the brokers do not have).
 */
class OrderedSender {
  readonly #producer: SfmProducer
  readonly #maxInFlight: number
  readonly #pages: { pending: number; done: () => Promise<void> }[] = []
  readonly #active = new Set<Promise<void>>()
  #failure: { error: unknown } | undefined

  constructor(producer: SfmProducer, maxInFlight: number) {
    this.#producer = producer
    this.#maxInFlight = maxInFlight
  }

  async page(messages: readonly OutgoingMessage[], done: () => Promise<void>): Promise<void> {
    const page = { pending: 0, done }
    this.#pages.push(page)
    let from = 0
    let bytes = 0
    for (let i = 0; i <= messages.length; i++) {
      const m = messages[i]
      const size = m === undefined ? 0 : (m.value as Buffer).length + (m.key as Buffer).length
      if (i === messages.length || (i > from && (bytes + size > SEND_BYTES || i - from >= SEND_COUNT))) {
        if (i > from) {
          while (this.#active.size >= this.#maxInFlight) await Promise.race(this.#active)
          this.#check()
          this.#send(page, messages.slice(from, i))
        }
        from = i
        bytes = 0
      }
      bytes += size
    }
    await this.#settleReady()
  }

  #send(page: { pending: number }, batch: readonly OutgoingMessage[]): void {
    page.pending++
    const request: Promise<void> = this.#producer.send(batch).then(
      () => {
        page.pending--
        this.#active.delete(request)
      },
      (error: unknown) => {
        this.#failure ??= { error }
        this.#active.delete(request)
      }
    )
    this.#active.add(request)
  }

  #check(): void {
    if (this.#failure) throw this.#failure.error
  }

  /** Runs `done` of the leading pages that are fully acknowledged, in order. */
  async #settleReady(): Promise<void> {
    this.#check()
    while (this.#pages.length > 0 && this.#pages[0]!.pending === 0) await this.#pages.shift()!.done()
  }

  async flush(): Promise<void> {
    while (this.#active.size > 0) await Promise.race(this.#active)
    await this.#settleReady()
  }

  async abandon(): Promise<void> {
    await Promise.allSettled([...this.#active])
  }
}

/** Rows of the table, or of one namespace: the progress bar's denominator. */
async function countRows(legacy: pg.Client, namespace: string | undefined): Promise<number> {
  const { rows } = await legacy.query<{ n: string }>(
    `SELECT count(*) AS n FROM ${LEGACY_TABLE} WHERE ${namespaceFilter(namespace, 1)}`,
    namespace === undefined ? [] : [namespace]
  )
  return Number(rows[0]?.n ?? 0)
}

/** Streams the memory rows of `kv_store` into `topic`. */
export async function backfill(options: BackfillOptions): Promise<BackfillSummary> {
  const { legacy, namespace } = options
  const dryRun = options.dryRun ?? false
  if (!dryRun && options.producer === undefined) throw new Error('backfill: a producer is needed unless dryRun')
  const pageSize = options.pageSize ?? 10_000
  const maxEventBytes = options.maxEventBytes ?? 1024 * 1024
  const now = options.now ?? Date.now
  const started = performance.now()
  const total = await countRows(legacy, namespace)
  const counts = emptyCounts()
  const samples: { key: string; reason: string }[] = []
  let lastAcked = options.after
  const progress = (): BackfillProgress => ({
    ...counts,
    skipped: { ...counts.skipped },
    invalid: { ...counts.invalid },
    total,
    seconds: (performance.now() - started) / 1000,
    lastKey: lastAcked
  })
  const sender = dryRun ? undefined : new OrderedSender(options.producer!, options.maxInFlight ?? 8)
  const filter = namespaceFilter(namespace, 3)
  // Two statements: `key > $1` alone lets the planner use the primary key for the range on every page.
  const firstSql = `SELECT ${SELECT_COLUMNS} FROM ${LEGACY_TABLE} WHERE $1::text IS NULL AND ${filter} ORDER BY key LIMIT $2`
  const nextSql = `SELECT ${SELECT_COLUMNS} FROM ${LEGACY_TABLE} WHERE key > $1 AND ${filter} ORDER BY key LIMIT $2`
  const fetchPage = (from: string | null) => {
    const values: unknown[] = [from, pageSize]
    if (namespace !== undefined) values.push(namespace)
    const page = legacy.query<Row>({ text: from === null ? firstSql : nextSql, values })
    page.catch(() => {}) // awaited below; this only keeps an abandoned prefetch from being an unhandled rejection
    return page
  }
  // The next page is asked for before this one is processed, so the database works while this process does.
  let pending: Promise<pg.QueryResult<Row>> | undefined = fetchPage(options.after ?? null)
  try {
    while (pending !== undefined) {
      const { rows }: pg.QueryResult<Row> = await pending
      pending = rows.length === pageSize ? fetchPage(rows[rows.length - 1]!.key) : undefined
      if (rows.length === 0) break
      const timestamp = new Date(now()).toISOString()
      const messages: OutgoingMessage[] = []
      let produced = 0
      for (const row of rows) {
        counts.read++
        const kind = legacyRowKind(row.key)
        if (kind !== LegacyRowKinds.MEMORY) {
          counts.skipped[kind]++
          continue
        }
        const event = memoryEventText(row, { timestamp, version: 0 }, maxEventBytes)
        if ('reason' in event || (namespace !== undefined && namespaceOfMemoryId(event.id) !== namespace)) {
          if ('reason' in event) {
            counts.invalid[event.reason] = (counts.invalid[event.reason] ?? 0) + 1
            if (samples.length < 10) samples.push({ key: row.key, reason: event.reason })
          } else counts.skipped.other++
          continue
        }
        produced++
        if (sender) messages.push({ topic: options.topic, key: Buffer.from(event.id), value: Buffer.from(event.text) })
      }
      const lastKey = rows[rows.length - 1]!.key
      const pageDone = async () => {
        counts.produced += produced
        lastAcked = lastKey
        await options.checkpoint?.(lastKey, counts)
        options.onProgress?.(progress())
      }
      if (sender) await sender.page(messages, pageDone)
      else await pageDone()
    }
    await sender?.flush()
  } catch (error) {
    await sender?.abandon()
    throw error
  }
  const final = progress()
  return {
    ...final,
    rate: final.seconds > 0 ? Math.round(final.read / final.seconds) : 0,
    dryRun,
    invalidSamples: samples,
    resumedAfter: options.after
  }
}

export interface RepairOptions {
  legacy: pg.Client
  producer?: SfmProducer
  topic: string
  report: ParityReport
  dryRun?: boolean
  now?: () => number
  maxEventBytes?: number
}

export interface RepairSummary {
  readonly ids: number
  readonly upserts: number
  readonly deletes: number
  readonly invalid: Record<string, number>
  readonly version: number
  readonly dryRun: boolean
  readonly seconds: number
}

/**
 * Re-emits the ids a parity report names (the vector check's too) from the legacy store, at version = the clock in microseconds (newer than
 * every backfill event and every earlier repair): an upsert of the legacy value, or a delete when the legacy store
 * no longer has the memory.
 */
export async function repair(options: RepairOptions): Promise<RepairSummary> {
  const started = performance.now()
  const now = options.now ?? Date.now
  const dryRun = options.dryRun ?? false
  if (!dryRun && options.producer === undefined) throw new Error('repair: a producer is needed unless dryRun')
  const { report } = options
  const vectorIds = report.vectors === undefined ? [] : [...report.vectors.ids.missing, ...report.vectors.ids.orphaned]
  const ids = [...new Set([...PARITY_CLASSES.flatMap((name) => report.ids[name]), ...vectorIds])].sort()
  const clock = now()
  const version = clock * 1000
  const timestamp = new Date(clock).toISOString()
  const invalid: Record<string, number> = {}
  let upserts = 0
  let deletes = 0
  const sender = dryRun ? undefined : new OrderedSender(options.producer!, 8)
  try {
    for (let from = 0; from < ids.length; from += 5_000) {
      const chunk = ids.slice(from, from + 5_000)
      const { rows } = await options.legacy.query<Row>(
        `SELECT ${SELECT_COLUMNS} FROM ${LEGACY_TABLE} WHERE key = ANY($1::text[])`,
        [chunk.map((id) => `${id}:data`)]
      )
      const byId = new Map(rows.map((r) => [r.key.slice(0, -':data'.length), r]))
      const messages: OutgoingMessage[] = []
      for (const id of chunk) {
        const row = byId.get(id)
        let text: string
        if (row === undefined) {
          const namespace = namespaceOfMemoryId(id)
          if (namespace === undefined) {
            invalid['id is not {namespace}:(coordinate)'] = (invalid['id is not {namespace}:(coordinate)'] ?? 0) + 1
            continue
          }
          const eventId = hashedEventId(id, 'delete', String(version))
          text = `{"event_id":"${eventId}","id":${JSON.stringify(id)},"namespace":${JSON.stringify(namespace)},"op":"delete","timestamp":"${timestamp}","version":${version}}`
          deletes++
        } else {
          const eventId = hashedEventId(row.key, row.value ?? '', String(version))
          const event = memoryEventText(row, { timestamp, version, eventId }, options.maxEventBytes)
          if ('reason' in event) {
            invalid[event.reason] = (invalid[event.reason] ?? 0) + 1
            continue
          }
          text = event.text
          upserts++
        }
        messages.push({ topic: options.topic, key: Buffer.from(id), value: Buffer.from(text) })
      }
      if (sender) await sender.page(messages, async () => {})
    }
    await sender?.flush()
  } catch (error) {
    await sender?.abandon()
    throw error
  }
  return {
    ids: ids.length,
    upserts,
    deletes,
    invalid,
    version,
    dryRun,
    seconds: (performance.now() - started) / 1000
  }
}

/** A backfill's checkpoint file: which run it belongs to and the last acknowledged key. */
export interface BackfillState {
  readonly source: string
  readonly topic: string
  readonly namespace: string | null
  readonly lastKey: string
  readonly counts: BackfillCounts
  readonly updatedAt: string
}

/** Reads a checkpoint; undefined when there is none. A file that is not one is a configuration error. */
export async function readBackfillState(path: string): Promise<BackfillState | undefined> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new FatalError(`cannot read the backfill state ${path}: ${(error as Error).message}`, {
      code: ErrorCodes.CONFIG
    })
  }
  try {
    const state = JSON.parse(text) as BackfillState
    if (typeof state.lastKey !== 'string' || typeof state.source !== 'string') throw new Error('fields missing')
    return state
  } catch {
    throw new FatalError(`${path} is not a backfill state file: delete it to start over`, { code: ErrorCodes.CONFIG })
  }
}

/** Writes a checkpoint atomically (a temporary file renamed over the old one), so kill -9 leaves one or the other. */
export async function writeBackfillState(path: string, state: BackfillState): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  const temporary = `${path}.${process.pid}.tmp`
  await writeFile(temporary, JSON.stringify(state))
  await rename(temporary, path)
}
