import type { KafkaConnectionOptions } from '../../kafka/connection.ts'
import type { WireRegistry, WireRegistryOptions } from '../../schemas/wire/registry.ts'

export interface KafkaSourceOptions {
  /** Topics to consume. */
  topics: string[]
  /** Consumer group id. Offsets are committed for this group, only by the runtime. */
  groupId: string
  /** Bootstrap brokers, `host:port`. Default: `KAFKA_BROKERS` (comma-separated). */
  brokers?: string[]
  /** TLS and SASL settings. Default: from `KAFKA_SASL_*` / `KAFKA_TLS*` (src/kafka/connection.ts). */
  connection?: KafkaConnectionOptions
  clientId?: string
  /**
   * Where a group with no committed offsets starts: the earliest offset (true) or the latest (false). Default:
   * `DRAIN_OLD_EVENTS`, else true — a new materializing group must not silently skip the log.
   */
  drainOldEvents?: boolean
  /** Messages the consumer stream buffers ahead of the topology; the runtime caps it at its in-flight window. */
  highWaterMark?: number
  /** Largest fetch response, bytes. The @platformatic/kafka default (50 MB) is too much for a bounded runtime. */
  maxBytes?: number
  /**
   * Largest share of one partition in a fetch response, bytes (Kafka's `max.partition.fetch.bytes`). Default 1 MiB,
   * Kafka's: @platformatic/kafka defaults it to `maxBytes`, and then a backlog arrives one partition at a time (a
   * 16 MiB fetch of a single partition), the in-flight window fills with that partition, and a branch writes its
   * batches one after another (a partition's batches are written in order) instead of several partitions at once.
   * The broker still returns at least one record batch per partition, however large.
   */
  maxBytesPerPartition?: number
  /** How long a fetch waits for data on an idle topic, ms. */
  maxWaitTime?: number
  /** Group session timeout, ms: how soon a killed member's partitions move to the others. */
  sessionTimeout?: number
  heartbeatInterval?: number
  rebalanceTimeout?: number
  /**
   * After the brokers are lost (the consumer's own retries of a fetch spent), the first wait before reconnecting,
   * ms; it doubles per failed attempt up to `reconnectBackoffMaxMs`, with jitter. Like Kafka's
   * `reconnect.backoff.ms` / `reconnect.backoff.max.ms`: the source retries for as long as the outage lasts.
   */
  reconnectBackoffMs?: number
  reconnectBackoffMaxMs?: number
  /**
   * While reconnecting, how long the brokers must keep answering that a subscribed topic does not exist before the
   * source stops with a fatal error (the topic was deleted), ms.
   */
  topicGoneMs?: number
  /** How often consumer lag is measured, ms (0: never). */
  lagIntervalMs?: number
  /**
   * The values are in the Confluent wire format (magic byte 0 + 4-byte schema id + JSON) and are validated against
   * the schema the id names, fetched from this Confluent-compatible registry (`SCHEMA_REGISTRY_URL`) and cached.
   * Unset: plain JSON. Start the pipeline with `source.decoder()`, which picks the matching decoder; an unframed
   * value, an unknown id or a value the schema rejects is dead-lettered with the reason.
   */
  registry?: WireRegistryOptions | WireRegistry
}
