import { createHash } from 'node:crypto'

/**
 * Namespace of the UUIDv5 point ids: `uuidv5(memory id, MEMORY_POINT_NAMESPACE)` is the Qdrant point id of a
 * memory. Qdrant ids must be unsigned integers or UUIDs, while memory ids are any 1..256 characters; a name-based
 * UUID maps each memory id to one point id, the same in every process and every run. Fixed forever: changing it
 * orphans every point of existing collections.
 */
export const MEMORY_POINT_NAMESPACE = '08ae043f-8032-4312-b786-33bb0226102f'

const NAMESPACE_BYTES = Buffer.from(MEMORY_POINT_NAMESPACE.replaceAll('-', ''), 'hex')

/** RFC 9562 UUID version 5 (SHA-1, name-based). */
export function uuidv5(name: string, namespace: Buffer = NAMESPACE_BYTES): string {
  const hash = createHash('sha1').update(namespace).update(name, 'utf8').digest()
  hash[6] = (hash[6]! & 0x0f) | 0x50
  hash[8] = (hash[8]! & 0x3f) | 0x80
  const hex = hash.subarray(0, 16).toString('hex')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** The point id of a memory. */
export function pointId(memoryId: string): string {
  return uuidv5(memoryId)
}
