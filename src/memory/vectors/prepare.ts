import { excerpt } from '../../embedders/text.ts'
import { ErrorCodes, PoisonError } from '../../errors.ts'
import type { VectorItem, VectorLayout } from '../../sinks/vector/types.ts'
import type { MemoryEvent } from '../event.ts'
import { prepareEvent } from '../prepare.ts'
import { embeddingText } from './text.ts'

function reject(index: number, reason: string): PoisonError {
  return new PoisonError(`memory event cannot be indexed: ${reason}`, {
    code: ErrorCodes.VALIDATION,
    details: { index }
  })
}

/**
 * Checks one memory event for the vector index: the memories' `prepareEvent` (fence fields, namespace, type,
 * importance), then what to embed. Deletes need only the fence fields. An upsert that carries `embedding` is indexed
 * with it (its length must be the index's `dimensions`); otherwise it needs text (see embeddingText). Failures are
 * poison for this item alone.
 */
export function prepareVectorEvent(value: MemoryEvent, index: number, dimensions: number): VectorItem | PoisonError {
  const event = prepareEvent(value, index)
  if (event instanceof PoisonError) return event
  const point = {
    index,
    id: event.id,
    eventId: event.eventId,
    namespace: event.namespace,
    type: event.type,
    importance: event.importance,
    version: event.version,
    micros: event.micros,
    timestamp: event.timestamp,
    deleted: event.deleted
  }
  if (event.deleted) return { ...point, text: undefined, vector: undefined, excerpt: '', modelRevision: undefined }
  const text = embeddingText(value)
  if (value.embedding !== undefined && value.embedding !== null) {
    const embedding = value.embedding as unknown
    if (!Array.isArray(embedding)) return reject(index, 'embedding must be an array of numbers')
    if (embedding.length !== dimensions) {
      return reject(index, `embedding has ${embedding.length} dimensions, the vector index has ${dimensions}`)
    }
    const vector = new Float32Array(dimensions)
    let norm = 0
    for (let i = 0; i < dimensions; i++) {
      const x = embedding[i]
      if (typeof x !== 'number' || !Number.isFinite(x)) return reject(index, 'embedding must hold finite numbers')
      vector[i] = x
      norm += x * x
    }
    // Cosine distance to a zero vector is undefined (NaN in pgvector, an error in Qdrant).
    if (norm === 0) return reject(index, 'embedding is a zero vector')
    const revision = typeof value.model_revision === 'string' ? value.model_revision : 'external'
    return {
      ...point,
      text: undefined,
      vector,
      excerpt: text === undefined ? '' : excerpt(text),
      modelRevision: revision
    }
  }
  if (text === undefined) {
    return reject(index, 'nothing to embed: payload.text is absent or blank and the payload is empty')
  }
  return { ...point, text, vector: undefined, excerpt: excerpt(text), modelRevision: undefined }
}

/** The memories' vector index: one configuration of the generic vector sink (src/sinks/vector). */
export const memoryVectorLayout: VectorLayout<MemoryEvent> = { prepare: prepareVectorEvent }
