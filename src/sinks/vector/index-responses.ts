import type { EmbeddingResponse } from '../../embedders/messages.ts'
import { ErrorCodes, PoisonError, RetriableError } from '../../errors.ts'
import { parseEventTime } from '../../event-time.ts'
import type { Envelope } from '../../streams/envelope.ts'
import { compareFence } from '../../streams/fence.ts'
import { type VectorWriteMessage, vectorWriteChannel } from '../../telemetry/channels.ts'
import type { ItemFailure, Sink, SinkContext, WriteResult } from '../types.ts'
import type { VectorRecord, VectorStore } from './types.ts'

export interface IndexResponsesSinkOptions {
  store: VectorStore
  /** Vector length of the index (the embedder configuration shared with the memory topology). */
  dimensions: number
}

function reject(index: number, reason: string): PoisonError {
  return new PoisonError(`embedding response cannot be indexed: ${reason}`, {
    code: ErrorCodes.VALIDATION,
    details: { index }
  })
}

/**
 * The vector indexer's sink: writes embedding responses to the vector store under the fence, one point per memory
 * id per batch (the newest `(version, timestamp)` wins in the batch, the store's fence decides against what it
 * holds). A response of the wrong length is poison; an unavailable store is retriable.
 */
export function indexResponsesSink(options: IndexResponsesSinkOptions): Sink<EmbeddingResponse> {
  const { store, dimensions } = options
  let opened: Promise<void> | undefined
  const open = (): Promise<void> => {
    opened ??= store.open(dimensions).catch((error: unknown) => {
      opened = undefined
      throw error
    })
    return opened
  }
  return {
    kind: 'vector-indexer',
    async open() {
      await open().catch(() => {
        // Down at start: `write` opens it again, held and retried by the runtime (see vectorSink.open).
      })
    },
    async write(batch: readonly Envelope<EmbeddingResponse>[], context: SinkContext): Promise<WriteResult> {
      await open()
      if (context.signal.aborted)
        throw new RetriableError('vector indexer: shutting down', { code: ErrorCodes.SHUTDOWN })
      const started = performance.now()
      const failures: ItemFailure[] = []
      const winners = new Map<string, VectorRecord>()
      batch.forEach((envelope, index) => {
        const r = envelope.value
        if (r.vector.length !== dimensions || r.dimensions !== dimensions) {
          failures.push({
            index,
            error: reject(index, `vector has ${r.vector.length} dimensions, the index has ${dimensions}`)
          })
          return
        }
        const time = parseEventTime(r.timestamp)
        if (typeof time === 'string') {
          failures.push({ index, error: reject(index, time) })
          return
        }
        const record: VectorRecord = {
          id: r.id,
          namespace: r.namespace,
          type: r.type ?? null,
          importance: r.importance ?? null,
          version: r.version,
          micros: time.micros,
          timestamp: time.text,
          modelRevision: r.model_revision,
          vector: Float32Array.from(r.vector),
          excerpt: r.excerpt ?? ''
        }
        const current = winners.get(r.id)
        if (current === undefined || compareFence(record, current) > 0) winners.set(r.id, record)
      })
      const report = await store.write([...winners.values()], [], context.signal)
      vectorWriteChannel.publish({
        store: store.kind,
        upserts: report.upserts,
        deletes: 0,
        seconds: (performance.now() - started) / 1000
      } satisfies VectorWriteMessage)
      return failures.length > 0 ? { failures } : {}
    },
    async close() {
      await store.close()
    }
  }
}
