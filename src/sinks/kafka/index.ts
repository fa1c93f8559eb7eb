import type { Envelope } from '../../streams/envelope.ts'
import { injectContext } from '../../telemetry/propagation.ts'
import type { Sink } from '../types.ts'
import { type CreateProducerOptions, createProducer, type OutgoingMessage, type SfmProducer } from './producer.ts'

export { kafkaDeadLetter } from './dead-letter.ts'
export { type CreateProducerOptions, createProducer, type OutgoingMessage, type SfmProducer } from './producer.ts'

/** What to produce for one envelope: a record, several, or none (nothing to write for it). */
export type KafkaRecordMapper<T> = (
  envelope: Envelope<T>
) => Omit<OutgoingMessage, 'topic'> | readonly Omit<OutgoingMessage, 'topic'>[] | undefined

export interface KafkaSinkOptions<T> extends CreateProducerOptions {
  topic: string
  /** Default: the source key and the value as JSON (Buffers pass through). */
  record?: KafkaRecordMapper<T>
}

const defaultRecord = <T>(envelope: Envelope<T>): Omit<OutgoingMessage, 'topic'> => {
  const v = envelope.value as unknown
  const value = Buffer.isBuffer(v) ? v : v === null ? null : JSON.stringify(v)
  return { key: envelope.key, value }
}

/** The record's headers plus the W3C trace context of the message it came from, so traces continue downstream. */
function withTraceContext<T>(headers: OutgoingMessage['headers'], envelope: Envelope<T>): Map<string, Buffer | string> {
  const out = new Map<string, Buffer | string>()
  if (headers) for (const [k, v] of headers instanceof Map ? headers.entries() : Object.entries(headers)) out.set(k, v)
  if (out.has('traceparent')) return out
  for (const [k, v] of injectContext(envelope.delivery.context)) out.set(k, v)
  return out
}

/**
 * Produces each batch to a topic in one request (idempotent, acks=all); the batch is durable when the request is
 * acknowledged. A batch holds one source partition, and a partition's batches are written in order, so records of
 * one key keep their order — which a compacted topic like `memory.latest` relies on.
 */
export function kafkaSink<T>(options: KafkaSinkOptions<T>): Sink<T> {
  let producer: SfmProducer | undefined
  const record = options.record ?? defaultRecord
  return {
    kind: 'kafka',
    async open() {
      producer ??= createProducer({ clientId: `sfm-streams-sink-${options.topic}`, ...options })
    },
    async write(batch) {
      producer ??= createProducer({ clientId: `sfm-streams-sink-${options.topic}`, ...options })
      const messages: OutgoingMessage[] = []
      for (const envelope of batch) {
        const out = record(envelope)
        if (out === undefined) continue
        for (const m of Array.isArray(out) ? out : [out]) {
          messages.push({ ...m, topic: options.topic, headers: withTraceContext(m.headers, envelope) })
        }
      }
      await producer.send(messages)
      return undefined
    },
    async close() {
      await producer?.close()
      producer = undefined
    }
  }
}
