/**
 * The memory domain of somafractal-streams (`import { … } from 'somafractal-streams/memory'`): memory events, the
 * memories table and its companions (memory.latest, memory.audit), the vector index and the embedders. Built on the
 * framework API of `somafractal-streams` (src/index.ts).
 */

export {
  type EmbedRequestsSinkOptions,
  embedRequestsSink
} from '../embedders/embed-sink.ts'
export * from '../embedders/index.ts'
export * from '../embedders/messages.ts'
export { type KafkaEmbeddingRequestsOptions, kafkaEmbeddingRequests } from '../embedders/requests.ts'
// The generic PostgreSQL sink the memories table configures (memoriesLayout), and the retention of its tables.
export { postgresSink, purgeProcessed, purgeTombstones } from '../sinks/postgres/index.ts'
export * from '../sinks/vector/index.ts'
export * from './audit-format.ts'
export * from './event.ts'
export * from './fold.ts'
export * from './latest.ts'
export * from './legacy/events.ts'
export * from './legacy/memory-id.ts'
export * from './legacy/mirror.ts'
export { kvStoreDescription, type MaterializeOptions, materializeMemories, type StoredRow } from './materialize.ts'
export * from './memories.ts'
export * from './outbox.ts'
export * from './prepare.ts'
export * from './vectors/prepare.ts'
export { type ReindexSink, type ReindexSinkOptions, reindexSink } from './vectors/reindex.ts'
export * from './vectors/sink.ts'
export * from './vectors/text.ts'
