export { type IndexResponsesSinkOptions, indexResponsesSink } from './index-responses.ts'
export { vectorRecord } from './record.ts'
export {
  emptyReindexCounts,
  type ReindexCounts,
  ReindexProgress,
  type ReindexProgressOptions
} from './reindex-progress.ts'
export { DEFAULT_DATA_DIR, type VectorStoreFromEnvOptions, VectorStoreKinds, vectorStoreFromEnv } from './select.ts'
export {
  type VectorSink,
  type VectorSinkCounts,
  type VectorSinkOptions,
  vectorSink
} from './sink.ts'
export * from './types.ts'
