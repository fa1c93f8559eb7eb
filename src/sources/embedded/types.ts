export interface EmbeddedLogSourceOptions {
  /** Topics to consume. The framework's topics (src/kafka/topics.ts) are created on first use; others must exist. */
  topics: string[]
  /** Consumer group id: committed offsets are kept per group, and a group has one member per log file. */
  groupId: string
  /** The data folder (default `SFM_DATA_DIR` or `./.sfm-data`); the log is `<dataDir>/log.sqlite`. */
  dataDir?: string
  /** The log file itself, overriding `dataDir`. */
  path?: string
  /**
   * Where a group with no committed offsets starts: the earliest stored offset (true) or the end (false). Default:
   * `DRAIN_OLD_EVENTS`, else true — as the Kafka source.
   */
  drainOldEvents?: boolean
  /** Records buffered ahead of the topology; the runtime caps it at its in-flight window. */
  highWaterMark?: number
  /** Bytes (keys + values) read per fetch. */
  maxBytes?: number
  /** How often an idle source looks for records appended by other processes, ms. */
  pollIntervalMs?: number
  /** How long a member may miss heartbeats before another process may take its group over, ms. */
  sessionTimeout?: number
  /** How often lag is reported, ms (0: never). */
  lagIntervalMs?: number
  /** How often retention runs on every topic of the log, ms (0: never). Also runs once at open. */
  retentionIntervalMs?: number
}
