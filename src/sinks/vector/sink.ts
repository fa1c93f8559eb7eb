import { embedIsolating } from '../../embedders/embed-isolating.ts'
import type { EmbeddingRequest, EmbeddingRequestPublisher } from '../../embedders/messages.ts'
import type { Embedder } from '../../embedders/types.ts'
import { ErrorCodes, ErrorKinds, errorMessage, kindOf, PoisonError, RetriableError } from '../../errors.ts'
import { createLogger, type Logger } from '../../logger.ts'
import type { Envelope } from '../../streams/envelope.ts'
import { compareFence, reduceBatch } from '../../streams/fence.ts'
import { type VectorWriteMessage, vectorWriteChannel } from '../../telemetry/channels.ts'
import type { ItemFailure, Sink, SinkContext, WriteResult } from '../types.ts'
import { vectorRecord } from './record.ts'
import type { VectorDelete, VectorItem, VectorLayout, VectorRecord, VectorStore } from './types.ts'

export interface VectorSinkOptions<T> {
  /** How a value becomes a point or a delete (the memories: `memoryVectorLayout`, src/memory/vectors/prepare.ts). */
  layout: VectorLayout<T>
  /** Embeds inline; in remote mode only its `dimensions` and `revision` are used. */
  embedder: Embedder
  store: VectorStore
  /** Set for remote mode. */
  requests?: EmbeddingRequestPublisher
  /** Read the stored fence pairs first and skip events that cannot win (saves embedding on replays). Default true. */
  skipStale?: boolean
  /** Closes the embedder and the store on close. Default true. */
  owns?: boolean
  logger?: Logger
}

export interface VectorSinkCounts {
  embedded: number
  upserts: number
  deletes: number
  /** Events that lost the fence (in the batch or to the store) and were not written. */
  skipped: number
  requested: number
  failed: number
}

export interface VectorSink<T> extends Sink<T> {
  readonly kind: 'vector'
  readonly store: VectorStore
  readonly embedder: Embedder
  readonly counts: Readonly<VectorSinkCounts>
  open(context?: SinkContext): Promise<void>
  write(batch: readonly Envelope<T>[], context?: SinkContext): Promise<WriteResult>
  close(): Promise<void>
}

/**
 * A vector sink: keeps a vector index equal to the latest state of every key. The layout says how a value becomes
 * a point (the memory topology's vector branch uses the memories' layout, `memoryVectorSink` in src/memory/vectors/).
 *
 * Per batch: each value is checked by the layout (fence fields; text or a carried vector), the batch is reduced to
 * one item per id with the fence rule (reduceBatch, as the PostgreSQL sink), items that cannot beat the stored pair
 * are skipped before any embedding, the rest are embedded in one call and written to the store under the fence.
 * Deletes remove the point from the index. In remote mode upserts to embed become `embedding.requests` instead,
 * and `topologies/vector-indexer.ts` writes the embedded responses.
 *
 * Errors: an item the embedder or the store refuses (PoisonError) is isolated by bisection and dead-lettered
 * alone; an unavailable embedder or store (RetriableError) fails the batch, which the runtime holds and retries.
 */
export function vectorSink<T>(options: VectorSinkOptions<T>): VectorSink<T> {
  const { embedder, store, layout } = options
  const skipStale = options.skipStale ?? true
  const log = options.logger ?? createLogger('vectors')
  const counts: VectorSinkCounts = { embedded: 0, upserts: 0, deletes: 0, skipped: 0, requested: 0, failed: 0 }
  let opening: Promise<void> | undefined
  let opened = false
  let closed = false

  async function open(): Promise<void> {
    if (closed) throw new RetriableError('vector sink is closed', { code: ErrorCodes.SHUTDOWN })
    if (opened) return
    // A failed open (store down at start) is forgotten, so the runtime's retry opens again.
    opening ??= store.open(embedder.dimensions).then(
      () => {
        opened = true
      },
      (error: unknown) => {
        opening = undefined
        throw error
      }
    )
    await opening
  }

  /** Embeds texts; a text the embedder refuses is isolated by bisection and reported alone. */
  async function embedAll(
    items: readonly VectorItem[],
    signal: AbortSignal | undefined,
    failures: ItemFailure[]
  ): Promise<Map<VectorItem, Float32Array>> {
    const { vectors, refused } = await embedIsolating(embedder, items, (c) => c.text!, signal)
    for (const { item, error } of refused) failures.push({ index: item.index, error })
    counts.embedded += vectors.size
    return vectors
  }

  /** Writes to the store; a refused item is isolated by bisection (each half is its own fenced statement). */
  async function writeAll(
    upserts: readonly { index: number; record: VectorRecord }[],
    deletes: readonly { index: number; record: VectorDelete }[],
    signal: AbortSignal | undefined,
    failures: ItemFailure[]
  ): Promise<void> {
    const run = async (
      u: readonly { index: number; record: VectorRecord }[],
      d: readonly { index: number; record: VectorDelete }[]
    ): Promise<void> => {
      if (u.length + d.length === 0) return
      try {
        const report = await store.write(
          u.map((x) => x.record),
          d.map((x) => x.record),
          signal
        )
        counts.upserts += report.upserts
        counts.deletes += report.deletes
      } catch (error) {
        if (kindOf(error) !== ErrorKinds.POISON) throw error
        if (u.length + d.length === 1) {
          failures.push({ index: (u[0] ?? d[0])!.index, error })
          return
        }
        if (u.length > 1 || d.length === 0) {
          const middle = u.length >>> 1
          await run(u.slice(0, middle), [])
          await run(u.slice(middle), d)
        } else {
          const middle = d.length >>> 1
          await run(u, d.slice(0, middle))
          await run([], d.slice(middle))
        }
      }
    }
    await run(upserts, deletes)
  }

  return {
    kind: 'vector',
    dryRun: true,
    store,
    embedder,
    get counts() {
      return { ...counts }
    },
    async open(context) {
      // A dry run opens no store (opening creates its table or collection): it only counts.
      if (context?.dryRun) return
      try {
        await open()
      } catch (error) {
        // The runtime opens every sink before consuming and stops if one throws. A store that is down at start is
        // an outage, not a configuration error: start anyway, and let `write` open it, held and retried by the
        // runtime's backoff like any retriable write. Configuration errors (fatal) still stop the start.
        if (kindOf(error) !== ErrorKinds.RETRIABLE) throw error
        log.warn(
          `vector store not available yet (${store.description}), writes will wait for it: ${errorMessage(error)}`
        )
      }
    },
    async write(batch, context) {
      if (context?.dryRun) {
        // Counts only: what would be embedded and upserted, and deleted (the layout's checks still apply: what it
        // refuses goes to the DLQ as in a real run); nothing is embedded, the store's fence is not consulted.
        let upserts = 0
        let deletes = 0
        const refused: ItemFailure[] = []
        batch.forEach((envelope, index) => {
          const item = layout.prepare(envelope.value, index, embedder.dimensions)
          if (item instanceof PoisonError) refused.push({ index, error: item })
          else if (item.deleted) deletes++
          else upserts++
        })
        return { ...(refused.length > 0 ? { failures: refused } : {}), dryRun: { upserts, deletes } }
      }
      await open()
      const started = performance.now()
      const signal = context?.signal
      const failures: ItemFailure[] = []
      const candidates: VectorItem[] = []
      batch.forEach((envelope, index) => {
        const candidate = layout.prepare(envelope.value, index, embedder.dimensions)
        if (candidate instanceof PoisonError) failures.push({ index, error: candidate })
        else candidates.push(candidate)
      })
      const { items } = reduceBatch(candidates)
      let winners = items.filter((item) => item.winner).map((item) => item.event)
      const skippedInBatch = candidates.length - winners.length
      if (skipStale && winners.length > 0) {
        const stored = await store.fences(
          winners.map((w) => w.id),
          signal
        )
        winners = winners.filter((w) => {
          const pair = stored.get(w.id)
          return pair === undefined || compareFence(w, pair) > 0
        })
      }
      counts.skipped += skippedInBatch + (candidates.length - skippedInBatch - winners.length)

      const deletes: { index: number; record: VectorDelete }[] = []
      const ready: VectorItem[] = []
      const toEmbed: VectorItem[] = []
      for (const w of winners) {
        if (w.deleted) deletes.push({ index: w.index, record: deleteRecord(w) })
        else if (w.vector !== undefined) ready.push(w)
        else toEmbed.push(w)
      }

      const upserts: { index: number; record: VectorRecord }[] = ready.map((c) => ({
        index: c.index,
        record: upsertRecord(c, c.vector!, c.modelRevision ?? 'external')
      }))
      if (options.requests !== undefined) {
        if (toEmbed.length > 0) {
          await options.requests.publish(
            toEmbed.map((c) => embeddingRequest(c, embedder.revision)),
            signal
          )
          counts.requested += toEmbed.length
        }
      } else {
        const vectors = await embedAll(toEmbed, signal, failures)
        for (const [c, vector] of vectors) {
          upserts.push({ index: c.index, record: upsertRecord(c, vector, embedder.revision) })
        }
      }
      await writeAll(upserts, deletes, signal, failures)
      vectorWriteChannel.publish({
        store: store.kind,
        upserts: upserts.length,
        deletes: deletes.length,
        seconds: (performance.now() - started) / 1000
      } satisfies VectorWriteMessage)
      counts.failed += failures.length
      failures.sort((a, b) => a.index - b.index)
      return failures.length > 0 ? { failures } : {}
    },
    async close() {
      if (closed) return
      closed = true
      await opening?.catch(() => {})
      if (options.owns ?? true) {
        await Promise.allSettled([store.close(), embedder.close?.(), options.requests?.close?.()])
      }
    }
  }
}

function upsertRecord(c: VectorItem, vector: Float32Array, modelRevision: string): VectorRecord {
  return vectorRecord(c, c, vector, modelRevision, c.excerpt)
}

function deleteRecord(e: VectorItem): VectorDelete {
  return { id: e.id, namespace: e.namespace, version: e.version, micros: e.micros, timestamp: e.timestamp }
}

function embeddingRequest(e: VectorItem, model: string): EmbeddingRequest {
  return {
    request_id: e.eventId,
    id: e.id,
    namespace: e.namespace,
    text: e.text!,
    model,
    type: e.type,
    version: e.version,
    timestamp: e.timestamp,
    importance: e.importance,
    excerpt: e.excerpt
  }
}
