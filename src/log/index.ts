export {
  type AppendedRecord,
  type AppendRecord,
  decodeHeaders,
  EmbeddedLog,
  type EmbeddedLogOptions,
  encodeHeaders,
  openEmbeddedLog,
  type PartitionState,
  type StoredRecord
} from './embedded-log.ts'
export { commitOffsets, committedOffsets, type GroupMember, joinGroup, leaveGroup, liveMember } from './groups.ts'
export {
  DEFAULT_DATA_DIR,
  dataDir,
  embeddedLogPath,
  LOG_FILE,
  type LogTarget,
  LogTargets,
  logTarget,
  type SyncMode,
  SyncModes
} from './options.ts'
export { partitionForKey } from './partitioner.ts'
export { createEmbeddedProducer, type EmbeddedProducer, type EmbeddedProducerOptions } from './producer.ts'
export { type RetentionOptions, type RetentionResult, retain } from './retention.ts'
export { APPLICATION_ID, SCHEMA_VERSION } from './schema.ts'
export { type EmbeddedTopicConfig, embeddedTopicConfig, knownTopicConfig } from './topics.ts'
