import { ErrorCodes, PoisonError } from '../../errors.ts'
import {
  type CreateProducerOptions,
  createProducer,
  type OutgoingMessage,
  type SfmProducer
} from '../../kafka/producer.ts'
import { RecordsTooLargeError } from '../../kafka/record-limit.ts'
import { frame } from '../../schemas/wire/framing.ts'
import { type WireRegistry, type WireRegistryOptions, wireRegistry } from '../../schemas/wire/registry.ts'
import type { Envelope } from '../../streams/envelope.ts'
import { describeSchemaErrors } from '../../streams/operators/validate.ts'
import { injectContext } from '../../telemetry/propagation.ts'
import type { ItemFailure, Sink } from '../types.ts'

export {
  type CreateProducerOptions,
  createProducer,
  type OutgoingMessage,
  type SfmProducer
} from '../../kafka/producer.ts'
export { RecordsTooLargeError, type RejectedRecord } from '../../kafka/record-limit.ts'
export { kafkaDeadLetter } from './dead-letter.ts'

/** What to produce for one envelope: a record, several, or none (nothing to write for it). */
export type KafkaRecordMapper<T> = (
  envelope: Envelope<T>
) => Omit<OutgoingMessage, 'topic'> | readonly Omit<OutgoingMessage, 'topic'>[] | undefined

/** Confluent framing for a sink's values: magic byte 0 + the 4-byte schema id of `subject` + the JSON text. */
export interface KafkaSinkRegistry {
  /** The Confluent-compatible registry (`SCHEMA_REGISTRY_URL`). */
  registry: WireRegistryOptions | WireRegistry
  subject: string
  /**
   * The local schema the values follow (e.g. `(await loadSchema('memory.event')).schema`): the id it is registered
   * under is used, and a schema not registered stops the sink at open. Default: the subject's latest version.
   */
  schema?: object
  /** Validate each value against the schema before producing it (default true); an invalid one fails alone, as poison. */
  validate?: boolean
}

export interface KafkaSinkOptions<T> extends CreateProducerOptions {
  topic: string
  /** Default: the source key and the value as JSON (Buffers pass through). */
  record?: KafkaRecordMapper<T>
  /** Frame values the Confluent way with a registered schema id. Unset: plain JSON. Tombstones stay null. */
  registry?: KafkaSinkRegistry
}

interface Framing {
  id: number
  validate: ((value: unknown) => boolean) & { errors?: Parameters<typeof describeSchemaErrors>[0] }
  check: boolean
}

async function resolveFraming(settings: KafkaSinkRegistry): Promise<Framing> {
  const registry = wireRegistry(settings.registry)
  const id = await registry.schemaIdFor(settings.subject, settings.schema)
  return { id, validate: await registry.load(id), check: settings.validate ?? true }
}

/** The framed value, or the reason it cannot be produced. */
function framed(value: Buffer | string, framing: Framing): Buffer | PoisonError {
  const payload = Buffer.isBuffer(value) ? value : Buffer.from(value)
  if (framing.check) {
    let parsed: unknown
    try {
      parsed = JSON.parse(payload.toString('utf8'))
    } catch {
      return new PoisonError('value to produce is not JSON', { code: ErrorCodes.VALIDATION })
    }
    if (!framing.validate(parsed)) {
      return new PoisonError(
        `value does not match schema id ${framing.id}: ${describeSchemaErrors(framing.validate.errors)}`,
        { code: ErrorCodes.VALIDATION }
      )
    }
  }
  return frame(framing.id, payload)
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
 * Produces each batch to a topic (idempotent, acks=all) in one request, or in several under the topic's record-size
 * limit, sent in order; the batch is durable when they are acknowledged. An envelope whose record is too large for
 * the topic on its own fails alone, as poison (to the DLQ). A batch holds one source partition, and a partition's batches are written in order, so records of
 * one key keep their order — which a compacted topic like `memory.latest` relies on.
 */
export function kafkaSink<T>(options: KafkaSinkOptions<T>): Sink<T> {
  let producer: SfmProducer | undefined
  let framing: Framing | undefined
  const record = options.record ?? defaultRecord
  return {
    kind: 'kafka',
    dryRun: true,
    async open(context) {
      // A dry run produces nothing: no producer, no registry lookup.
      if (context?.dryRun) return
      producer ??= createProducer({ clientId: `sfm-streams-sink-${options.topic}`, ...options })
      if (options.registry) framing ??= await resolveFraming(options.registry)
    },
    async write(batch, context) {
      if (context?.dryRun) {
        let records = 0
        for (const envelope of batch) {
          const out = record(envelope)
          if (out !== undefined) records += Array.isArray(out) ? out.length : 1
        }
        return { dryRun: { [options.topic]: records } }
      }
      producer ??= createProducer({ clientId: `sfm-streams-sink-${options.topic}`, ...options })
      if (options.registry) framing ??= await resolveFraming(options.registry)
      const messages: OutgoingMessage[] = []
      // Per message, the batch index of the envelope it came from.
      const owners: number[] = []
      const failures: ItemFailure[] = []
      batch.forEach((envelope, index) => {
        const out = record(envelope)
        if (out === undefined) return
        const records: OutgoingMessage[] = []
        for (const m of Array.isArray(out) ? out : [out]) {
          let value = m.value
          if (framing && value !== null) {
            const result = framed(value, framing)
            if (result instanceof PoisonError) {
              failures.push({ index, error: result })
              return
            }
            value = result
          }
          records.push({ ...m, value, topic: options.topic, headers: withTraceContext(m.headers, envelope) })
        }
        for (const r of records) {
          messages.push(r)
          owners.push(index)
        }
      })
      if (messages.length > 0) {
        try {
          await producer.send(messages)
        } catch (error) {
          if (!(error instanceof RecordsTooLargeError)) throw error
          // Too large for the topic however often it is sent: that envelope is poison, the others are written.
          const failed = new Set<number>()
          for (const rejected of error.rejected) {
            const index = owners[rejected.index]!
            if (failed.has(index)) continue
            failed.add(index)
            failures.push({ index, error: rejected.error })
          }
        }
      }
      return failures.length > 0 ? { failures } : undefined
    },
    async close() {
      await producer?.close()
      producer = undefined
    }
  }
}
