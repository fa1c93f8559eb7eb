import { topicName } from '../config.ts'
import { type EmbeddedLog, openEmbeddedLog } from '../log/embedded-log.ts'
import { embeddedLogPath, LogTargets, logTarget } from '../log/options.ts'
import { partitionForKey } from '../log/partitioner.ts'
import type { StoredRow } from '../memory/materialize.ts'
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

export interface TopicRecord {
  readonly partition: number
  readonly offset: bigint
  readonly key: Buffer | undefined
  readonly value: Buffer | null
  readonly headers: ReadonlyMap<string, Buffer>
}

/** Reads the topics the console shows (the DLQ, memory.audit). */
export interface TopicReader {
  /** Per partition: first stored offset and end offset. */
  partitions(topic: string): Array<{ partition: number; start: bigint; end: bigint }>
  read(topic: string, partition: number, from: bigint, max: number): TopicRecord[]
  /** The partition a key is produced to (the default partitioner). */
  partitionOf(topic: string, key: Buffer): number | undefined
  close(): void
}

/** The embedded log's reader: the same SQLite file the runner writes, read in the same process. */
export function embeddedTopicReader(dataDir?: string): TopicReader {
  let log: EmbeddedLog | undefined
  const open = () => {
    log ??= openEmbeddedLog({ path: embeddedLogPath({ dataDir }) })
    return log
  }
  return {
    partitions(topic) {
      const l = open()
      return l
        .partitions(topic)
        .map((p) => ({ partition: p.partition, start: l.startOffset(topic, p.partition), end: p.end }))
    },
    read(topic, partition, from, max) {
      return open().read(topic, partition, from, max, 16 * 1024 * 1024)
    },
    partitionOf(topic, key) {
      const count = open().partitions(topic).length
      return count === 0 ? undefined : partitionForKey(key, count)
    },
    close() {
      log?.close()
      log = undefined
    }
  }
}

/** The reader for the runner's log, or undefined on Kafka (the console shows the live graph and charts only). */
export function topicReaderFromEnv(env: NodeJS.ProcessEnv = process.env): TopicReader | undefined {
  if (logTarget({}, env) === LogTargets.KAFKA) return undefined
  return embeddedTopicReader(env.SFM_DATA_DIR || undefined)
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
  /** Letters stored in the topic. */
  readonly total: number
  /** Counts by stage, then error class (over every stored letter). */
  readonly byStage: Record<string, Record<string, number>>
  /** The newest letters matching the filter, newest first. */
  readonly letters: DeadLetterSummary[]
  /** Letters matching the filter. */
  readonly matching: number
}

const header = (headers: ReadonlyMap<string, Buffer>, name: string) => headers.get(name)?.toString('utf8') ?? ''

/** Scans the DLQ topic (at most `scanLimit` newest letters per partition) and lists what matches `filter`. */
export function listDeadLetters(
  reader: TopicReader,
  topic: string,
  filter: DeadLetterFilter,
  limit = 200,
  scanLimit = 50_000
): DeadLetterList {
  const byStage: Record<string, Record<string, number>> = {}
  const matched: DeadLetterSummary[] = []
  let total = 0
  for (const { partition, start, end } of reader.partitions(topic)) {
    total += Number(end - start)
    let from = end - BigInt(scanLimit) > start ? end - BigInt(scanLimit) : start
    while (from < end) {
      const chunk = reader.read(topic, partition, from, 5_000)
      if (chunk.length === 0) break
      for (const r of chunk) {
        const stage = header(r.headers, DeadLetterHeaders.STAGE) || '(none)'
        const errorClass = header(r.headers, DeadLetterHeaders.ERROR_CLASS) || '(none)'
        const classes = byStage[stage] ?? {}
        byStage[stage] = classes
        classes[errorClass] = (classes[errorClass] ?? 0) + 1
        if (filter.stage !== undefined && filter.stage !== stage) continue
        if (filter.class !== undefined && filter.class !== errorClass) continue
        const errorCode = header(r.headers, DeadLetterHeaders.ERROR_CODE) || '(none)'
        if (filter.code !== undefined && filter.code !== errorCode) continue
        matched.push({
          partition,
          offset: String(r.offset),
          stage,
          errorClass,
          errorCode,
          message: header(r.headers, DeadLetterHeaders.ERROR_MESSAGE).slice(0, 300),
          failedAt: header(r.headers, DeadLetterHeaders.FAILED_AT),
          source: `${header(r.headers, DeadLetterHeaders.SOURCE_TOPIC)}:${header(r.headers, DeadLetterHeaders.SOURCE_PARTITION)}@${header(r.headers, DeadLetterHeaders.SOURCE_OFFSET)}`
        })
      }
      from = chunk[chunk.length - 1]!.offset + 1n
    }
  }
  matched.sort((a, b) => (a.failedAt < b.failedAt ? 1 : a.failedAt > b.failedAt ? -1 : 0))
  return { topic, total, byStage, letters: matched.slice(0, limit), matching: matched.length }
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
export function readDeadLetter(
  reader: TopicReader,
  topic: string,
  partition: number,
  offset: bigint
): DeadLetterDetail {
  const known = reader.partitions(topic).find((p) => p.partition === partition)
  if (!known) throw new RequestError(404, `${topic} has no partition ${partition}`)
  if (offset < known.start || offset >= known.end) {
    const holds = known.end > known.start ? `it holds offsets ${known.start}..${known.end - 1n}` : 'it is empty'
    throw new RequestError(404, `${topic}[${partition}] has no letter at offset ${offset} (${holds})`)
  }
  const [record] = reader.read(topic, partition, offset, 1)
  if (!record || record.offset !== offset) throw new RequestError(404, `no letter at ${topic}[${partition}]@${offset}`)
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
  /** Why a part could not be shown (e.g. no vector branch, audit on Kafka). */
  readonly notes: string[]
}

/** Where the console finds a memory: the KV sink, the vector store, the audit topic. */
export interface MemorySources {
  readMemory?(id: string): Promise<StoredRow | undefined>
  vectors?: Pick<VectorStore, 'points'>
  reader?: TopicReader
  auditTopic: string
}

/** The memory sources of a topology: its sinks that can read a memory back (duck-typed), the audit topic. */
export function memorySourcesOf(topology: Topology<unknown>, reader: TopicReader | undefined): MemorySources {
  const sources: MemorySources = { auditTopic: topicName('memory.audit'), ...(reader ? { reader } : {}) }
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
export async function lookupMemory(sources: MemorySources, id: string, auditScanLimit = 200_000): Promise<MemoryView> {
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
  if (sources.reader) {
    audit = readAudit(sources.reader, sources.auditTopic, id, auditScanLimit)
  } else notes.push(`${sources.auditTopic} is read on the embedded log only; on Kafka read it with a consumer`)
  if (row === null && (audit === null || audit.length === 0) && (vector === null || vector.present === false)) {
    throw new RequestError(404, `no memory with id "${id}": no row, no vector and no audit record`)
  }
  return { id, row, vector, audit, notes }
}

function readAudit(reader: TopicReader, topic: string, id: string, scanLimit: number): AuditEntry[] {
  const key = Buffer.from(id, 'utf8')
  const partition = reader.partitionOf(topic, key)
  if (partition === undefined) return []
  const bounds = reader.partitions(topic).find((p) => p.partition === partition)
  if (!bounds) return []
  const out: AuditEntry[] = []
  let from = bounds.end - BigInt(scanLimit) > bounds.start ? bounds.end - BigInt(scanLimit) : bounds.start
  while (from < bounds.end) {
    const chunk = reader.read(topic, partition, from, 5_000)
    if (chunk.length === 0) break
    for (const r of chunk) {
      if (!r.key?.equals(key) || r.value === null) continue
      let parsed: unknown
      try {
        parsed = JSON.parse(r.value.toString('utf8'))
      } catch {
        continue
      }
      // The Kafka Connect envelope (SFM_AUDIT_FORMAT=connect) carries the record in `payload`.
      const envelope = parsed as { schema?: unknown; payload?: unknown }
      const record = (envelope.schema !== undefined && envelope.payload ? envelope.payload : parsed) as Record<
        string,
        unknown
      >
      if (record.id !== id) continue
      out.push({
        offset: String(r.offset),
        event_id: String(record.event_id),
        op: String(record.op),
        version: Number(record.version),
        timestamp: String(record.timestamp),
        outcome: String(record.outcome),
        processed_at: String(record.processed_at)
      })
    }
    from = chunk[chunk.length - 1]!.offset + 1n
  }
  return out
}
