/**
 * What a producer sends and the producer port: one interface for Kafka (src/kafka/producer.ts) and the embedded
 * log (src/log/producer.ts), so either can stand behind the sinks, the DLQ and the CLIs.
 */

export type HeaderValue = Buffer | string

/** One record to produce. A `null` value is a tombstone (deletes the key from a compacted topic). */
export interface OutgoingMessage {
  readonly topic: string
  readonly key?: Buffer | string
  readonly value: Buffer | string | null
  readonly headers?: ReadonlyMap<string, HeaderValue> | Readonly<Record<string, HeaderValue>>
  readonly partition?: number
}

export interface SfmProducer {
  /**
   * Sends and resolves once all replicas in sync have the records (acks=all, idempotent: no duplicates on retry).
   * Records too large for their topic are not retried: the others are sent, then RecordsTooLargeError (poison)
   * lists them by index.
   */
  send(messages: readonly OutgoingMessage[]): Promise<void>
  /** The largest record batch the topic takes, in bytes (`max.message.bytes`); unset when there is no such limit. */
  recordLimit?(topic: string): Promise<number>
  close(): Promise<void>
}
