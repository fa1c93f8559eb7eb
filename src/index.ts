/**
 * The public API of somafractal-streams: what a topology author imports (`import { … } from 'somafractal-streams'`).
 * The framework only: errors, the ports (Envelope, Source, Sink), topologies and the runtime, the operators, the
 * generic sources and sinks, and the configuration helpers a topology file reads its environment with. The memory
 * domain (memory events, the memories table, vectors, embedders) is `somafractal-streams/memory` (src/memory/index.ts).
 */

// Configuration and logging
export { envInt, requireEnv, topicName } from './config.ts'
// Errors: retriable (hold and retry), poison (one message to the DLQ), fatal (stop)
export * from './errors.ts'
export { createLogger, type Logger, type LogLevel, LogLevels } from './logger.ts'
export {
  Compatibilities,
  type Compatibility,
  type JsonSchema,
  type LoadedSchema,
  type LoadSchemaOptions,
  loadSchema,
  loadSubject
} from './schemas.ts'
export type { KafkaDeadLetterOptions } from './sinks/kafka/dead-letter.ts'
// Sinks
export {
  type CreateProducerOptions,
  createProducer,
  type KafkaRecordMapper,
  type KafkaSinkOptions,
  type KafkaSinkRegistry,
  kafkaDeadLetter,
  kafkaSink,
  type OutgoingMessage,
  type SfmProducer
} from './sinks/kafka/index.ts'
// The generic PostgreSQL sink: upsert by key into a table the layout describes (fence, tombstones, ledger optional)
export {
  type ColumnType,
  type ColumnValue,
  createPool,
  defaultPostgresSinkOptions,
  type OutcomeCounts,
  type PostgresColumn,
  type PostgresConnectionInput,
  type PostgresSink,
  type PostgresSinkInput,
  type PostgresTableLayout,
  type PostgresTableNames,
  type PostgresWriteResult,
  type PreparedRow,
  parseEventTime,
  pglitePool,
  postgresSink,
  purgeProcessed,
  purgeTombstones
} from './sinks/postgres/index.ts'
// Ports: what a source yields and what a sink implements
export * from './sinks/types.ts'
// The generic vector sink: one point per key in a vector store (pgvector, Qdrant), fenced by version; the layout says
// how an item becomes a point (its text to embed or its vector) or a delete
export {
  type SearchHit,
  type SearchOptions,
  type VectorItem,
  type VectorLayout,
  type VectorSink,
  type VectorSinkCounts,
  type VectorSinkOptions,
  type VectorStore,
  type VectorStoreFromEnvOptions,
  VectorStoreKinds,
  vectorSink,
  vectorStoreFromEnv
} from './sinks/vector/index.ts'
// Sources
export {
  defaultEmbeddedLogSourceOptions,
  EmbeddedLogSource,
  type EmbeddedLogSourceOptions,
  embeddedLogSource
} from './sources/embedded/index.ts'
export {
  defaultKafkaSourceOptions,
  KafkaSource,
  type KafkaSourceOptions,
  kafkaSource,
  parseBrokers
} from './sources/kafka/index.ts'
export { parseBoolean } from './sources/kafka/options.ts'
export { type LogSourceOptions, logSource } from './sources/log.ts'
export { OUTBOX_ID_HEADER, OutboxSource, type OutboxSourceOptions, outboxSource } from './sources/outbox/index.ts'
export { type PartitionSpan, type RewindOptions, rewindGroup } from './sources/rewind.ts'
export * from './sources/types.ts'
export { type BackoffOptions, defaultBackoff } from './streams/backoff.ts'
export { type DeadLetter, DeadLetterHeaders, type DeadLetterTarget } from './streams/dead-letter.ts'
export { describeOperator, type OperatorInfo, operatorInfos, pipeline } from './streams/describe.ts'
export * from './streams/envelope.ts'
export {
  type GraphEdge,
  type GraphNode,
  type GraphNodeKind,
  GraphNodeKinds,
  type TopologyGraph,
  toMermaid,
  topologyGraph
} from './streams/graph.ts'
// Operators
export {
  type BatchFlushMode,
  BatchFlushModes,
  type BatchOptions,
  batch,
  defaultBatchOptions
} from './streams/operators/batch.ts'
export { type DecodeJsonOptions, decodeJson, defaultDecodeJsonOptions } from './streams/operators/decode-json.ts'
export { type DedupeOptions, type DedupeStore, dedupe } from './streams/operators/dedupe.ts'
export { filterMap } from './streams/operators/filter-map.ts'
export { keep } from './streams/operators/keep.ts'
export { type RetryStepOptions, retryStep } from './streams/operators/retry-step.ts'
export { compileSchema, type ValidateOptions, validate } from './streams/operators/validate.ts'
// Running a topology in-process (the CLI `npm start -- <topology>` does this for you)
export {
  type RunSummary,
  Runtime,
  type RuntimeObserver,
  type RuntimeOptions,
  type RuntimeStats,
  type StopReason,
  StopReasons
} from './streams/runtime.ts'
// Topologies
export {
  type Branch,
  type BranchInfo,
  type BranchOptions,
  branch,
  defaultRuntimeSettings,
  defineTopology,
  isTopology,
  type RuntimeSettings,
  type Topology,
  type TopologyDefinition
} from './streams/topology.ts'
export type { BatchReport } from './streams/write-batches.ts'
