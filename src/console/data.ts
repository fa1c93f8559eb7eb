import { topicName } from '../config.ts'
import { FatalError } from '../errors.ts'
import { LogTargets, logTarget } from '../log/options.ts'
import { partitionForKey } from '../log/partitioner.ts'
import type { StoredRow } from '../memory/materialize.ts'
import { type LogAccess, type LogRecord, openLogAccess, type PartitionOffsets, type ScanRange } from '../ops/log.ts'
import type { VectorStore } from '../sinks/vector/types.ts'
import { DeadLetterHeaders } from '../streams/dead-letter.ts'
import type { Topology } from '../streams/topology.ts'

/** A problem with what the page asked for: answered with this status and message, nothing changes. */
export class RequestError extends Error {
  readonly status: number
  constructor(status: number, message: string) {
    super(message)
    this.name = 'RequestError'
    this.status = status
  }
}

/** A record the console reads (the ops module's record: partition, offset, key, value, headers). */
export type TopicRecord = LogRecord

/**
 * Reads the topics the console shows (the DLQ, memory.audit), on Kafka or on the embedded log alike. Every read is
 * bounded by the offset ranges asked for: the console never loads a whole topic.
 */
export interface TopicReader {
  /** `Kafka at host:port` or `embedded log <file>`. */
  readonly description: string
  /** Per partition: first stored offset and end offset (a 404 when the topic does not exist). */
  partitions(topic: string): Promise<PartitionOffsets[]>
  /** Every record of the ranges, in offset order within a partition. */
  scan(topic: string, ranges: readonly ScanRange[], onRecord: (record: TopicRecord) => void): Promise<void>
  /** The partition a key is produced to (the default partitioner); undefined when the topic does not exist. */
  partitionOf(topic: string, key: Buffer): Promise<number | undefined>
  close(): Promise<void>
}

/**
 * The reader on a `LogAccess` of src/ops/log.ts, the same reads `npm run dlq -- inspect` makes: on Kafka a consumer
 * with manual offsets per scan (a throwaway group that commits nothing), on the embedded log the SQLite file the
 * runner writes. A topic that does not exist is a 404 with the ops module's message (what to do).
 */
export function logTopicReader(access: LogAccess): TopicReader {
  const known = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work()
    } catch (error) {
      if (error instanceof FatalError) throw new RequestError(404, error.message)
      throw error
    }
  }
  return {
    description: access.description,
    partitions: (topic) => known(() => access.partitions(topic)),
    scan: (topic, ranges, onRecord) => known(() => access.scan(topic, ranges, onRecord)),
    async partitionOf(topic, key) {
      if (!(await access.topicExists(topic))) return undefined
      const count = (await access.partitions(topic)).length
      return count === 0 ? undefined : partitionForKey(key, count)
    },
    close: () => access.close()
  }
}

/** The embedded log's reader: the same SQLite file the runner writes, read in the same process. */
export function embeddedTopicReader(dataDir?: string, env: NodeJS.ProcessEnv = process.env): TopicReader {
  return logTopicReader(openLogAccess({ target: LogTargets.EMBEDDED, ...(dataDir ? { dataDir } : {}), env }))
}

/**
 * The reader for the runner's log: Kafka when `KAFKA_BROKERS` is set (with a shorter stall limit than the CLI's, so
 * a page does not wait 30 s), else the embedded log under `SFM_DATA_DIR`.
 */
export function topicReaderFromEnv(env: NodeJS.ProcessEnv = process.env): TopicReader {
  return logTopicReader(
    openLogAccess({
      env,
      stallTimeoutMs: 10_000,
      ...(logTarget({}, env) === LogTargets.EMBEDDED && env.SFM_DATA_DIR ? { dataDir: env.SFM_DATA_DIR } : {})
    })
  )
}

/** The part of a partition a bounded read covers: the newest `window` offsets at most. */
export function newestWindow(p: PartitionOffsets, window: number): ScanRange {
  const from = p.end - BigInt(window) > p.start ? p.end - BigInt(window) : p.start
  return { partition: p.partition, from, to: p.end }
}

// --- dead letters ----------------------------------------------------------------------------------------------

export interface DeadLetterFilter {
  stage?: string
  class?: string
  /** The error code (`sfm.dlq.error.code`, e.g. SFM_VALIDATION): what `npm run dlq -- redrive` selects by. */
  code?: string
}

const FILTER_KEYS = ['stage', 'class', 'code'] as const

/** `stage:validate class:PoisonError code:SFM_VALIDATION` (any of them); anything else is a RequestError saying why. */
export function parseDeadLetterFilter(text: string | null | undefined): DeadLetterFilter {
  const filter: DeadLetterFilter = {}
  const trimmed = (text ?? '').trim()
  if (trimmed === '') return filter
  if (trimmed.length > 500) throw new RequestError(400, 'filter too long (at most 500 characters)')
  for (const term of trimmed.split(/\s+/)) {
    const match = /^([a-z]+):([A-Za-z0-9._-]+)$/.exec(term)
    if (!match) {
      throw new RequestError(
        400,
        `malformed filter term "${term}": write key:value terms, e.g. "stage:validate class:PoisonError"`
      )
    }
    const key = match[1] as (typeof FILTER_KEYS)[number]
    if (!FILTER_KEYS.includes(key)) {
      throw new RequestError(
        400,
        `unknown filter key "${match[1]}": use ${FILTER_KEYS.map((k) => `${k}:`).join(' or ')}`
      )
    }
    if (filter[key] !== undefined) throw new RequestError(400, `filter key "${key}" given twice`)
    filter[key] = match[2]!
  }
  return filter
}

export interface DeadLetterSummary {
  readonly partition: number
  readonly offset: string
  readonly stage: string
  readonly errorClass: string
  readonly errorCode: string
  readonly message: string
  readonly failedAt: string
  readonly source: string
}

export interface DeadLetterList {
  readonly topic: string
  /** Letters stored in the topic (from its offsets: end − start per partition). */
  readonly total: number
  /** Counts by stage, then error class (over the letters read: the window). */
  readonly byStage: Record<string, Record<string, number>>
  /** The newest letters matching the filter, newest first. */
  readonly letters: DeadLetterSummary[]
  /** Letters of the window matching the filter. */
  readonly matching: number
  /** What was read: the newest `perPartition` letters of each partition; `cut` when older ones were left out. */
  readonly window: { readonly read: number; readonly perPartition: number; readonly cut: boolean }
}

const header = (headers: ReadonlyMap<string, Buffer>, name: string) => headers.get(name)?.toString('utf8') ?? ''

const newestFirst = (a: DeadLetterSummary, b: DeadLetterSummary) =>
  a.failedAt < b.failedAt ? 1 : a.failedAt > b.failedAt ? -1 : 0

/**
 * Lists the DLQ topic's letters matching `filter`, newest first: reads the newest `window` letters of each
 * partition (one bounded scan), keeps at most `limit` of them. The total comes from the offsets, not from reading.
 */
export async function listDeadLetters(
  reader: TopicReader,
  topic: string,
  filter: DeadLetterFilter,
  limit = 200,
  window = 20_000
): Promise<DeadLetterList> {
  const byStage: Record<string, Record<string, number>> = {}
  let matched: DeadLetterSummary[] = []
  let matching = 0
  let read = 0
  const partitions = await reader.partitions(topic)
  const total = partitions.reduce((sum, p) => sum + Number(p.end - p.start), 0)
  const ranges = partitions.map((p) => newestWindow(p, window))
  const cut = ranges.some((r, i) => r.from > partitions[i]!.start)
  await reader.scan(topic, ranges, (r) => {
    read++
    const stage = header(r.headers, DeadLetterHeaders.STAGE) || '(none)'
    const errorClass = header(r.headers, DeadLetterHeaders.ERROR_CLASS) || '(none)'
    const classes = byStage[stage] ?? {}
    byStage[stage] = classes
    classes[errorClass] = (classes[errorClass] ?? 0) + 1
    if (filter.stage !== undefined && filter.stage !== stage) return
    if (filter.class !== undefined && filter.class !== errorClass) return
    const errorCode = header(r.headers, DeadLetterHeaders.ERROR_CODE) || '(none)'
    if (filter.code !== undefined && filter.code !== errorCode) return
    matching++
    matched.push({
      partition: r.partition,
      offset: String(r.offset),
      stage,
      errorClass,
      errorCode,
      message: header(r.headers, DeadLetterHeaders.ERROR_MESSAGE).slice(0, 300),
      failedAt: header(r.headers, DeadLetterHeaders.FAILED_AT),
      source: `${header(r.headers, DeadLetterHeaders.SOURCE_TOPIC)}:${header(r.headers, DeadLetterHeaders.SOURCE_PARTITION)}@${header(r.headers, DeadLetterHeaders.SOURCE_OFFSET)}`
    })
    // Bounded: keep the newest `limit` (sorted now and then, not per letter).
    if (matched.length >= 4 * limit) matched = matched.sort(newestFirst).slice(0, limit)
  })
  matched.sort(newestFirst)
  return {
    topic,
    total,
    byStage,
    letters: matched.slice(0, limit),
    matching,
    window: { read, perPartition: window, cut }
  }
}

/** Bytes shown as text when they are UTF-8, else as base64, cut at `max` characters. */
function shown(
  bytes: Buffer | null | undefined,
  max = 64 * 1024
): { text: string; encoding: 'utf8' | 'base64' } | null {
  if (bytes === null || bytes === undefined) return null
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes)
  const utf8 = Buffer.from(text, 'utf8').equals(bytes)
  const out = utf8 ? text : bytes.toString('base64')
  return { text: out.length > max ? `${out.slice(0, max)}…` : out, encoding: utf8 ? 'utf8' : 'base64' }
}

export interface DeadLetterDetail {
  readonly partition: number
  readonly offset: string
  readonly key: ReturnType<typeof shown>
  readonly value: ReturnType<typeof shown>
  readonly headers: Record<string, string>
}

/** One dead letter: its key, value and every header (the `sfm.dlq.*` context first). */
export async function readDeadLetter(
  reader: TopicReader,
  topic: string,
  partition: number,
  offset: bigint
): Promise<DeadLetterDetail> {
  const known = (await reader.partitions(topic)).find((p) => p.partition === partition)
  if (!known) throw new RequestError(404, `${topic} has no partition ${partition}`)
  if (offset < known.start || offset >= known.end) {
    const holds = known.end > known.start ? `it holds offsets ${known.start}..${known.end - 1n}` : 'it is empty'
    throw new RequestError(404, `${topic}[${partition}] has no letter at offset ${offset} (${holds})`)
  }
  let record: TopicRecord | undefined
  await reader.scan(topic, [{ partition, from: offset, to: offset + 1n }], (r) => {
    if (r.offset === offset) record = r
  })
  if (!record) throw new RequestError(404, `no letter at ${topic}[${partition}]@${offset}`)
  const entries = [...record.headers].sort(
    ([a], [b]) => Number(!a.startsWith('sfm.dlq.')) - Number(!b.startsWith('sfm.dlq.'))
  )
  return {
    partition,
    offset: String(offset),
    key: shown(record.key),
    value: shown(record.value),
    headers: Object.fromEntries(entries.map(([k, v]) => [k, v.toString('utf8')]))
  }
}

// --- a memory --------------------------------------------------------------------------------------------------

export interface AuditEntry {
  readonly offset: string
  readonly event_id: string
  readonly op: string
  readonly version: number
  readonly timestamp: string
  readonly outcome: string
  readonly processed_at: string
}

export interface MemoryView {
  readonly id: string
  readonly row: (Omit<StoredRow, 'payload' | 'deleted_at'> & { payload: unknown; deleted_at: string | null }) | null
  readonly vector: { present: boolean; deleted?: boolean; version?: string; modelRevision?: string | null } | null
  readonly audit: AuditEntry[] | null
  /**
   * The part of the audit topic read: the partition the id's key hashes to, from `from` to `to` (exclusive), and
   * whether older records were left out (`cut`: history older than `from` is not shown).
   */
  readonly auditWindow: AuditWindow | null
  /** Why a part could not be shown, or was shown in part (no vector branch, an audit window cut). */
  readonly notes: string[]
}

export interface AuditWindow {
  readonly topic: string
  readonly partition: number
  readonly from: string
  readonly to: string
  /** Records stored in the partition (end − start). */
  readonly stored: string
  readonly cut: boolean
}

/** Where the console finds a memory: the KV sink, the vector store, the audit topic. */
export interface MemorySources {
  readMemory?(id: string): Promise<StoredRow | undefined>
  vectors?: Pick<VectorStore, 'points'>
  reader?: TopicReader
  auditTopic: string
  /** How many of the newest records of the id's audit partition a lookup reads (default 200,000). */
  auditWindow?: number
}

/** The memory sources of a topology: its sinks that can read a memory back (duck-typed), the audit topic. */
export function memorySourcesOf(
  topology: Topology<unknown>,
  reader: TopicReader | undefined,
  auditWindow?: number
): MemorySources {
  const sources: MemorySources = {
    auditTopic: topicName('memory.audit'),
    ...(reader ? { reader } : {}),
    ...(auditWindow === undefined ? {} : { auditWindow })
  }
  for (const branch of Object.values(topology.branches)) {
    const sink = branch.sink as { readMemory?: unknown; store?: unknown }
    if (typeof sink.readMemory === 'function') {
      sources.readMemory = (sink.readMemory as MemorySources['readMemory'])!.bind(sink)
    }
    const store = sink.store as { points?: unknown } | undefined
    if (store && typeof store.points === 'function') sources.vectors = store as Pick<VectorStore, 'points'>
  }
  return sources
}

const ID_PATTERN = /^[\x21-\x7e\u00a0-\uffff][\x20-\x7e\u00a0-\uffff]{0,255}$/

/** The memory `id`: its row, its vector's presence, its audit history (oldest first). 404 when none has it. */
export async function lookupMemory(sources: MemorySources, id: string): Promise<MemoryView> {
  if (!ID_PATTERN.test(id)) {
    throw new RequestError(400, 'a memory id is 1 to 256 printable characters (no control characters)')
  }
  const notes: string[] = []
  let row: MemoryView['row'] = null
  if (sources.readMemory) {
    const stored = await sources.readMemory(id)
    if (stored) {
      let payload: unknown = stored.payload
      try {
        payload = stored.payload === null ? null : JSON.parse(stored.payload)
      } catch {
        // Shown as stored.
      }
      row = { ...stored, payload, deleted_at: stored.deleted_at ? new Date(stored.deleted_at).toISOString() : null }
    }
  } else notes.push('no branch of this topology keeps memories (no row to show)')
  let vector: MemoryView['vector'] = null
  if (sources.vectors) {
    const point = (await sources.vectors.points([id])).get(id)
    vector = point
      ? {
          present: !point.deleted,
          deleted: point.deleted,
          version: String(point.version),
          modelRevision: point.modelRevision
        }
      : { present: false }
  } else notes.push('no vector branch (SFM_VECTORS=off or not this topology)')
  let audit: AuditEntry[] | null = null
  let auditWindow: AuditWindow | null = null
  if (sources.reader) {
    const history = await readAudit(sources.reader, sources.auditTopic, id, sources.auditWindow ?? 200_000)
    if (history) {
      audit = history.entries
      auditWindow = history.window
      const w = history.window
      if (w.cut) {
        notes.push(
          `history cut: read the newest ${BigInt(w.to) - BigInt(w.from)} of ${w.stored} records of ` +
            `${w.topic}[${w.partition}] (offsets ${w.from}..${BigInt(w.to) - 1n}); older events of this memory are not shown`
        )
      }
    } else notes.push(`${sources.auditTopic} does not exist on ${sources.reader.description} (no history to show)`)
  } else notes.push(`no reader for ${sources.auditTopic} (no history to show)`)
  if (row === null && (audit === null || audit.length === 0) && (vector === null || vector.present === false)) {
    throw new RequestError(404, `no memory with id "${id}": no row, no vector and no audit record`)
  }
  return { id, row, vector, audit, auditWindow, notes }
}

/**
 * The audit records of `id`: on Kafka and on the embedded log alike there is no index by id, so this reads the
 * partition the id's key hashes to (the audit topic is keyed by id), its newest `window` records at most.
 */
async function readAudit(
  reader: TopicReader,
  topic: string,
  id: string,
  window: number
): Promise<{ entries: AuditEntry[]; window: AuditWindow } | undefined> {
  const key = Buffer.from(id, 'utf8')
  const partition = await reader.partitionOf(topic, key)
  if (partition === undefined) return undefined
  const bounds = (await reader.partitions(topic)).find((p) => p.partition === partition)
  if (!bounds) return undefined
  const range = newestWindow(bounds, window)
  const entries: AuditEntry[] = []
  await reader.scan(topic, [range], (r) => {
    if (!r.key?.equals(key) || r.value === null) return
    let parsed: unknown
    try {
      parsed = JSON.parse(r.value.toString('utf8'))
    } catch {
      return
    }
    // The Kafka Connect envelope (SFM_AUDIT_FORMAT=connect) carries the record in `payload`.
    const envelope = parsed as { schema?: unknown; payload?: unknown }
    const record = (envelope.schema !== undefined && envelope.payload ? envelope.payload : parsed) as Record<
      string,
      unknown
    >
    if (record === null || typeof record !== 'object' || record.id !== id) return
    entries.push({
      offset: String(r.offset),
      event_id: String(record.event_id),
      op: String(record.op),
      version: Number(record.version),
      timestamp: String(record.timestamp),
      outcome: String(record.outcome),
      processed_at: String(record.processed_at)
    })
  })
  return {
    entries,
    window: {
      topic,
      partition,
      from: String(range.from),
      to: String(range.to),
      stored: String(bounds.end - bounds.start),
      cut: range.from > bounds.start
    }
  }
}
