import { embeddingText, excerpt } from '../../embedders/text.ts'
import type { Embedder } from '../../embedders/types.ts'
import { ErrorCodes, ErrorKinds, errorMessage, kindOf, PoisonError, RetriableError } from '../../errors.ts'
import { createLogger, type Logger } from '../../logger.ts'
import type { MemoryEvent } from '../../memory/event.ts'
import type { LatestRecord } from '../../memory/latest.ts'
import type { Envelope } from '../../streams/envelope.ts'
import { type VectorWriteMessage, vectorWriteChannel } from '../../telemetry/channels.ts'
import { fromMicros } from '../postgres/event-time.ts'
import { compareFence, type FencePair } from '../postgres/fence.ts'
import { prepareEvent } from '../postgres/prepare.ts'
import type { PreparedEvent } from '../postgres/types.ts'
import type { ItemFailure, Sink, SinkContext, WriteResult } from '../types.ts'
import { embedIsolating } from './embed-isolating.ts'
import { emptyReindexCounts, type ReindexCounts, ReindexProgress } from './reindex-progress.ts'
import type { StoredPoint, VectorRecord, VectorStore } from './types.ts'

export interface ReindexSinkOptions {
  embedder: Embedder
  store: VectorStore
  /** Re-embed every memory the index holds, whatever revision made its vector. Default false. */
  all?: boolean
  /** Where the pass is counted and reported; by default one without spans (counts only). */
  progress?: ReindexProgress
  /** Closes the embedder and the store on close. Default true. */
  owns?: boolean
  logger?: Logger
}

export interface ReindexSink extends Sink<LatestRecord> {
  readonly kind: 'reindex'
  readonly progress: ReindexProgress
  readonly counts: Readonly<ReindexCounts>
  open(context?: SinkContext): Promise<void>
  write(batch: readonly Envelope<LatestRecord>[], context: SinkContext): Promise<WriteResult>
  close(): Promise<void>
}

/** A memory state to re-embed: its text, and the fence pair to write under. */
interface Candidate {
  readonly event: PreparedEvent
  readonly text: string
  /** The record's timestamp has milliseconds only (see MILLISECOND_TIMESTAMP). */
  readonly millisecondsOnly: boolean
  readonly pair: FencePair & { readonly timestamp: string }
}

// memory.latest records written before the timestamps carried microseconds (toISOString: exactly 3 decimals).
const MILLISECOND_TIMESTAMP = /\.\d{3}Z$/

/**
 * The reindex topology's sink: brings the vectors of a memory.latest pass to the embedder's current revision.
 *
 * Per batch: the last record of each memory id wins (the topic's order is the `memories` table's order, so a later
 * record is never an older state); tombstones are counted and left alone. The index's stored state of those ids
 * is read; a memory is re-embedded when the index holds it live at the same version (or, if the vector branch is
 * behind, an older one) and its vector was made by another revision — or by any, with `all`. Memories the index
 * does not hold, or holds deleted, or holds at a newer version, are skipped: a reindex never adds, removes or
 * downgrades a memory. The write (`VectorStore.reembed`) checks the same fence again in the store, so a newer
 * version the live memory topology writes meanwhile is never overwritten, and a delete meanwhile is never undone.
 *
 * Errors as in the vector sink: a malformed record or a text the embedder refuses is dead-lettered alone; an
 * unavailable embedder or store is retriable (the runtime holds the batch and retries).
 */
export function reindexSink(options: ReindexSinkOptions): ReindexSink {
  const { embedder, store } = options
  const all = options.all ?? false
  const log = options.logger ?? createLogger('reindex')
  const progress = options.progress ?? new ReindexProgress([], { intervalMs: 0, logger: log })
  const totals = emptyReindexCounts()
  let opening: Promise<void> | undefined
  let closed = false

  const open = (): Promise<void> => {
    if (closed) return Promise.reject(new RetriableError('reindex sink is closed', { code: ErrorCodes.SHUTDOWN }))
    opening ??= store.open(embedder.dimensions).catch((error: unknown) => {
      opening = undefined
      throw error
    })
    return opening
  }

  return {
    kind: 'reindex',
    progress,
    get counts() {
      return { ...totals }
    },
    async open() {
      log.info(
        `re-embedding ${all ? 'every memory of the index' : `memories not embedded by ${embedder.revision}`} into ${store.description}`
      )
      progress.start()
      try {
        await open()
      } catch (error) {
        // Down at start: `write` opens it again, held and retried by the runtime (as in the vector sink).
        if (kindOf(error) !== ErrorKinds.RETRIABLE) throw error
        log.warn(`vector store not available yet (${store.description}): ${errorMessage(error)}`)
      }
    },
    async write(batch: readonly Envelope<LatestRecord>[], context: SinkContext): Promise<WriteResult> {
      await open()
      const started = performance.now()
      const signal = context?.signal
      const counts = emptyReindexCounts()
      counts.read = batch.length
      const failures: ItemFailure[] = []

      const last = new Map<string, number>()
      batch.forEach((envelope, index) => {
        if (last.has(envelope.value.id)) counts.superseded++
        last.set(envelope.value.id, index)
      })
      const candidates: Candidate[] = []
      for (const index of last.values()) {
        const { id, state } = batch[index]!.value
        if (state === null) {
          counts.tombstones++
          continue
        }
        const event = prepareEvent({ ...state, op: 'upsert' } as MemoryEvent, index)
        if (event instanceof PoisonError) failures.push({ index, error: event })
        else if (event.id !== id) failures.push({ index, error: malformed(index, `id ${event.id} under key ${id}`) })
        else {
          const text = embeddingText(state)
          if (text === undefined) counts.empty++
          else {
            const millisecondsOnly = MILLISECOND_TIMESTAMP.test(state.timestamp)
            candidates.push({ event, text, millisecondsOnly, pair: event })
          }
        }
      }
      const stored =
        candidates.length > 0
          ? await store.points(
              candidates.map((c) => c.event.id),
              signal
            )
          : undefined

      const toEmbed: Candidate[] = []
      for (const c of candidates) {
        const point = stored?.get(c.event.id)
        if (point === undefined || point.deleted) {
          counts.absent++
          continue
        }
        const pair = sameState(c, point)
        const order = pair === undefined ? compareFence(point, c.event) : 0
        if (order > 0) counts.newer++
        else if (order === 0 && point.modelRevision === embedder.revision && !all) counts.current++
        else toEmbed.push(pair === undefined ? c : { ...c, pair })
      }

      const { vectors, refused } = await embedIsolating(embedder, toEmbed, (c) => c.text, signal)
      for (const { item, error } of refused) failures.push({ index: item.event.index, error })
      const records: VectorRecord[] = []
      for (const [c, vector] of vectors) records.push(record(c, vector, embedder.revision))
      const report = await store.reembed(records, signal)
      counts.reembedded = report.upserts
      // Sent but not replaced: the store's fence found a newer version or a delete written meanwhile.
      counts.newer += records.length - report.upserts
      counts.failed = failures.length
      vectorWriteChannel.publish({
        store: store.kind,
        upserts: report.upserts,
        deletes: 0,
        seconds: (performance.now() - started) / 1000
      } satisfies VectorWriteMessage)
      progress.record(
        batch.map((e) => e.origin),
        counts
      )
      for (const [name, n] of Object.entries(counts) as [keyof ReindexCounts, number][]) totals[name] += n
      failures.sort((a, b) => a.index - b.index)
      return failures.length > 0 ? { failures } : {}
    },
    async close() {
      if (closed) return
      closed = true
      progress.stop()
      await opening?.catch(() => {})
      if (options.owns ?? true) await Promise.allSettled([store.close(), embedder.close?.()])
    }
  }
}

/**
 * The fence pair to re-embed under when the record is the state the index holds, else undefined. Equal pairs; or,
 * for a record written when memory.latest carried milliseconds only, the same version within the same millisecond
 * — then the index's exact pair, so the store's fence sees the same version and lets the re-embedding in.
 */
function sameState(c: Candidate, point: StoredPoint): (FencePair & { timestamp: string }) | undefined {
  if (compareFence(point, c.event) === 0) return c.pair
  if (!c.millisecondsOnly || point.version !== c.event.version) return undefined
  if (floorDiv(point.micros, 1000n) !== floorDiv(c.event.micros, 1000n)) return undefined
  const time = fromMicros(point.micros)
  return typeof time === 'string' ? undefined : { version: point.version, micros: point.micros, timestamp: time.text }
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b
  return a % b < 0n ? q - 1n : q
}

function record(c: Candidate, vector: Float32Array, modelRevision: string): VectorRecord {
  const e = c.event
  return {
    id: e.id,
    namespace: e.namespace,
    type: e.type,
    importance: e.importance,
    version: c.pair.version,
    micros: c.pair.micros,
    timestamp: c.pair.timestamp,
    modelRevision,
    vector,
    excerpt: excerpt(c.text)
  }
}

function malformed(index: number, reason: string): PoisonError {
  return new PoisonError(`memory.latest record cannot be reindexed: ${reason}`, {
    code: ErrorCodes.VALIDATION,
    details: { index }
  })
}
