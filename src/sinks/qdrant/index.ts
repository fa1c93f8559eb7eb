export { toQdrantError } from './errors.ts'
export { MEMORY_POINT_NAMESPACE, pointId, uuidv5 } from './point-id.ts'
export {
  defaultQdrantStoreOptions,
  exactFilter,
  fenceFilter,
  INDEXED_PAYLOAD_FIELDS,
  type MemoryPointPayload,
  QdrantStore,
  type QdrantStoreInput,
  type QdrantStoreOptions,
  reembedFilter
} from './store.ts'
