import type { VectorRecord } from './types.ts'

/**
 * A point of the index: the fields of what it stores (id, namespace, type, importance), the fence pair it is
 * written at — the item's own (the vector sink) or another (the reindex writes at the pair memory.latest carries) —
 * its vector and the revision that made it.
 */
export function vectorRecord(
  fields: Pick<VectorRecord, 'id' | 'namespace' | 'type' | 'importance'>,
  pair: Pick<VectorRecord, 'version' | 'micros' | 'timestamp'>,
  vector: Float32Array,
  modelRevision: string,
  excerpt: string
): VectorRecord {
  return {
    id: fields.id,
    namespace: fields.namespace,
    type: fields.type,
    importance: fields.importance,
    version: pair.version,
    micros: pair.micros,
    timestamp: pair.timestamp,
    modelRevision,
    vector,
    excerpt
  }
}
