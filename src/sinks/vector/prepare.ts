import { embeddingText, excerpt } from '../../embedders/text.ts'
import { ErrorCodes, PoisonError } from '../../errors.ts'
import type { MemoryEvent } from '../../memory/event.ts'
import { type PreparedEvent, prepareEvent } from '../../memory/prepare.ts'
import type { VectorRecord } from './types.ts'

/** A memory event checked for the vector index: the fence fields, plus what to embed or the vector it carries. */
export interface VectorCandidate {
  readonly event: PreparedEvent
  /** Text to embed: set for upserts without `embedding`. */
  readonly text: string | undefined
  /** The event's own `embedding`, checked: set for upserts that carry one. */
  readonly vector: Float32Array | undefined
  readonly excerpt: string
  /** `model_revision` of an event that carries its embedding. */
  readonly modelRevision: string | undefined
}

function reject(index: number, reason: string): PoisonError {
  return new PoisonError(`memory event cannot be indexed: ${reason}`, {
    code: ErrorCodes.VALIDATION,
    details: { index }
  })
}

/**
 * Checks one event for the vector branch. Deletes need only the fence fields. An upsert that carries `embedding`
 * is indexed with it (its length must be the index's `dimensions`); otherwise it needs text (see embeddingText).
 * Failures are poison for this item alone.
 */
export function prepareVectorEvent(
  value: MemoryEvent,
  index: number,
  dimensions: number
): VectorCandidate | PoisonError {
  const event = prepareEvent(value, index)
  if (event instanceof PoisonError) return event
  if (event.deleted) return { event, text: undefined, vector: undefined, excerpt: '', modelRevision: undefined }
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
    return { event, text: undefined, vector, excerpt: text === undefined ? '' : excerpt(text), modelRevision: revision }
  }
  if (text === undefined) {
    return reject(index, 'nothing to embed: payload.text is absent or blank and the payload is empty')
  }
  return { event, text, vector: undefined, excerpt: excerpt(text), modelRevision: undefined }
}

/**
 * The point of a memory: the event's fields with the fence pair it is written at — the event's own (the vector
 * branch) or the pair memory.latest's record carries (the reindex) — its vector and the revision that made it.
 */
export function vectorRecord(
  event: PreparedEvent,
  pair: Pick<VectorRecord, 'version' | 'micros' | 'timestamp'>,
  vector: Float32Array,
  modelRevision: string,
  excerpt: string
): VectorRecord {
  return {
    id: event.id,
    namespace: event.namespace,
    type: event.type,
    importance: event.importance,
    version: pair.version,
    micros: pair.micros,
    timestamp: pair.timestamp,
    modelRevision,
    vector,
    excerpt
  }
}
