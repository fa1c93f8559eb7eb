import { embedIsolating } from '../../embedders/embed-isolating.ts'
import { excerpt } from '../../embedders/text.ts'
import type { Embedder } from '../../embedders/types.ts'
import { ErrorCodes, ErrorKinds, errorMessage, kindOf, PoisonError, RetriableError } from '../../errors.ts'
import { fromMicros } from '../../event-time.ts'
import { createLogger, type Logger } from '../../logger.ts'
import type { ItemFailure, Sink, SinkContext, WriteResult } from '../../sinks/types.ts'
import { vectorRecord } from '../../sinks/vector/record.ts'
import { emptyReindexCounts, type ReindexCounts, ReindexProgress } from '../../sinks/vector/reindex-progress.ts'
import type {
  StoredPoint,
  VectorDelete,
  VectorEvict,
  VectorRecord,
  VectorStore,
  VectorWriteReport
} from '../../sinks/vector/types.ts'
import type { Envelope } from '../../streams/envelope.ts'
import { compareFence, type FencePair } from '../../streams/fence.ts'
import { type VectorWriteMessage, vectorWriteChannel } from '../../telemetry/channels.ts'
import type { MemoryEvent } from '../event.ts'
import type { LatestRecord } from '../latest.ts'
import { type PreparedEvent, prepareEvent } from '../prepare.ts'
import { embeddingText } from './text.ts'

export interface ReindexSinkOptions {
  embedder: Embedder
  store: VectorStore
  /** Re-embed every memory the index holds, whatever revision made its vector. Default false. */
  all?: boolean
  /**
   * Fill: also insert the memories the index lacks (or holds at an older version) and remove those whose last
   * record is a tombstone — builds a new, empty index (other dimensions: a new table or collection) from
   * memory.latest, and brings an incomplete one up to date. Default false: only memories the index holds.
   */
  fill?: boolean
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

/**
 * What a candidate's write does: `reembed` the stored version, `update` an older stored version (both through
 * `VectorStore.reembed`: only a live point is replaced, so a delete meanwhile stays), `insert` (fill: through the
 * fenced `VectorStore.write`, as the vector branch writes), or `reinstate` what this pass evicted (fill).
 */
type Action = 'reembed' | 'update' | 'insert' | 'reinstate'

/** A memory state to embed: its text, the fence pair to write under, and what the write does. */
interface Candidate {
  readonly event: PreparedEvent
  readonly text: string
  /** The record's timestamp has milliseconds only (see MILLISECOND_TIMESTAMP). */
  readonly millisecondsOnly: boolean
  readonly pair: FencePair & { readonly timestamp: string }
  readonly action: Action
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
 * With `fill`, each id's last record decides what the index holds, not only which vectors are re-embedded:
 * - a live state the index lacks (or holds as a tombstone older than the state) is inserted with the store's
 *   normal fenced upsert (`VectorStore.write`), so a newer version or delete the live topology writes meanwhile
 *   wins where the store can tell (pgvector keeps tombstones; Qdrant does not — see the README);
 * - a live state older in the index replaces it (`VectorStore.reembed`: live points only);
 * - a tombstone deletes the point the index holds live, if it still holds that exact pair (`VectorStore.evict`;
 *   pgvector keeps a tombstone at that pair, so the memory's older states, still in the uncompacted head of the
 *   topic before its tombstone, are fenced out on the next run instead of being inserted and deleted again). A
 *   state of the memory earlier in the same batch is a lower bound of the delete too: a fenced delete at its pair
 *   leaves (or raises) that tombstone, for the same reason, even when there was nothing live to delete.
 * Records are handled as they come, batch by batch: an older state of a memory read before its tombstone or newer
 * state (another batch) is written, then deleted or replaced when that record comes — right at the end of the pass,
 * not in between. A memory deleted and created again ([old state, tombstone, new state]) may lose the new state
 * an earlier run wrote to its tombstone's eviction, and gets it back when the pass reaches it (`reinstate`): the
 * pass remembers the pairs it evicted (one entry per tombstone acted on).
 *
 * Errors as in the vector sink: a malformed record or a text the embedder refuses is dead-lettered alone; an
 * unavailable embedder or store is retriable (the runtime holds the batch and retries).
 */
export function reindexSink(options: ReindexSinkOptions): ReindexSink {
  const { embedder, store } = options
  const all = options.all ?? false
  const fill = options.fill ?? false
  const log = options.logger ?? createLogger('reindex')
  const progress = options.progress ?? new ReindexProgress([], { intervalMs: 0, logger: log, fill })
  const totals = emptyReindexCounts()
  // Fill: the pair each id was evicted at in this pass (see `reinstate`).
  const evicted = new Map<string, FencePair>()
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
        fill
          ? `filling ${store.description} from memory.latest with ${embedder.revision}: missing memories inserted, older ones updated, deleted ones removed, ${all ? 'every other one re-embedded' : `vectors of other revisions re-embedded`}`
          : `re-embedding ${all ? 'every memory of the index' : `memories not embedded by ${embedder.revision}`} into ${store.description}`
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
      // Fill: the last live state of each id in the batch (a tombstone after it fences at its pair, below).
      const lastState = new Map<string, number>()
      batch.forEach((envelope, index) => {
        if (last.has(envelope.value.id)) counts.superseded++
        last.set(envelope.value.id, index)
        if (fill && envelope.value.state !== null) lastState.set(envelope.value.id, index)
      })
      const candidates: Candidate[] = []
      // Fill: ids whose last record in the batch is a tombstone, removed from the index if it holds them live.
      const tombstones: string[] = []
      for (const index of last.values()) {
        const { id, state } = batch[index]!.value
        if (state === null) {
          if (fill) tombstones.push(id)
          else counts.tombstones++
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
            candidates.push({ event, text, millisecondsOnly, pair: event, action: 'reembed' })
          }
        }
      }
      const stored =
        candidates.length + tombstones.length > 0
          ? await store.points([...candidates.map((c) => c.event.id), ...tombstones], signal)
          : undefined

      const evictions: VectorEvict[] = []
      const fences: VectorDelete[] = []
      for (const id of tombstones) {
        const point = stored?.get(id)
        if (point !== undefined && !point.deleted) evictions.push({ id, version: point.version, micros: point.micros })
        else counts.tombstones++
        // The batch held a state before the tombstone: the delete is newer than that state, so a tombstone at its
        // pair is a true lower bound. pgvector keeps it (or raises the one `evict` leaves at an older pair), and the
        // next run meets that state — in the topic's uncompacted head, perhaps in another batch than its tombstone —
        // fenced out, rather than inserting it and deleting it again. Qdrant: a fenced delete, of nothing by then.
        const before = lastState.get(id)
        if (before === undefined) continue
        const event = prepareEvent({ ...batch[before]!.value.state, op: 'upsert' } as MemoryEvent, before)
        if (event instanceof PoisonError || event.id !== id) continue
        const { namespace, version, micros, timestamp } = event
        fences.push({ id, namespace, version, micros, timestamp })
      }
      const toEmbed: Candidate[] = []
      for (const c of candidates) {
        const point = stored?.get(c.event.id)
        if (point === undefined || point.deleted) {
          if (!fill) counts.absent++
          else if (point === undefined) toEmbed.push({ ...c, action: 'insert' })
          else {
            const order = compareFence(point, c.event)
            const own = evicted.get(c.event.id)
            // The tombstone this pass left at this very state: the state follows the tombstone in the topic.
            if (order === 0 && own !== undefined && compareFence(own, point) === 0) {
              toEmbed.push({ ...c, action: 'reinstate' })
            }
            // A tombstone at this state's pair or later: the memory was deleted after it.
            else if (order >= 0) counts.newer++
            else toEmbed.push({ ...c, action: 'insert' })
          }
          continue
        }
        const pair = sameState(c, point)
        const order = pair === undefined ? compareFence(point, c.event) : 0
        if (order > 0) counts.newer++
        else if (order < 0) toEmbed.push({ ...c, action: fill ? 'update' : 'reembed' })
        else if (point.modelRevision === embedder.revision && !all) counts.current++
        else toEmbed.push(pair === undefined ? c : { ...c, pair })
      }

      const { vectors, refused } = await embedIsolating(embedder, toEmbed, (c) => c.text, signal)
      for (const { item, error } of refused) failures.push({ index: item.event.index, error })
      const byAction: Record<Action, VectorRecord[]> = { reembed: [], update: [], insert: [], reinstate: [] }
      for (const [c, vector] of vectors) byAction[c.action].push(record(c, vector, embedder.revision))
      // Sent but not written: the store's fence found a newer version or a delete written meanwhile.
      const written = async (sent: VectorRecord[], write: (records: VectorRecord[]) => Promise<VectorWriteReport>) => {
        if (sent.length === 0) return 0
        const report = await write(sent)
        counts.newer += sent.length - report.upserts
        return report.upserts
      }
      counts.reembedded = await written(byAction.reembed, (records) => store.reembed(records, signal))
      counts.updated = await written(byAction.update, (records) => store.reembed(records, signal))
      counts.inserted = await written(byAction.insert, (records) => store.write(records, [], signal))
      counts.inserted += await written(byAction.reinstate, (records) => store.reinstate(records, signal))
      if (evictions.length > 0) {
        for (const e of evictions) evicted.set(e.id, e)
        counts.deleted = (await store.evict(evictions, signal)).deletes
        // Not removed: the point changed between the lookup and the delete (written or deleted meanwhile).
        counts.newer += evictions.length - counts.deleted
      }
      // After the evictions: a fence above the pair `evict` left raises that tombstone.
      if (fences.length > 0) await store.write([], fences, signal)
      counts.failed = failures.length
      vectorWriteChannel.publish({
        store: store.kind,
        upserts: counts.reembedded + counts.updated + counts.inserted,
        deletes: counts.deleted,
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
      // The usual mistake after a change of dimensions: a new, empty table or collection, and no fill.
      if (!fill && totals.absent > 0 && totals.reembedded + totals.current + totals.newer === 0) {
        log.warn(
          `none of the ${totals.absent} memories read is in ${store.description}: SFM_REINDEX_FILL=true builds the index from memory.latest`
        )
      }
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
  return vectorRecord(c.event, c.pair, vector, modelRevision, excerpt(c.text))
}

function malformed(index: number, reason: string): PoisonError {
  return new PoisonError(`memory.latest record cannot be reindexed: ${reason}`, {
    code: ErrorCodes.VALIDATION,
    details: { index }
  })
}
