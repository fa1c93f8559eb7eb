import { errorMessage, kindOf, SfmError } from '../errors.ts'
import type { Delivery } from './envelope.ts'

/**
 * Headers a dead letter carries next to the original key, value and headers (which are kept byte for byte).
 * Named after Kafka Connect's `__connect.errors.*` context headers so the same tooling reads both.
 */
export const DeadLetterHeaders = {
  ERROR_CLASS: 'sfm.dlq.error.class',
  ERROR_CODE: 'sfm.dlq.error.code',
  ERROR_KIND: 'sfm.dlq.error.kind',
  ERROR_MESSAGE: 'sfm.dlq.error.message',
  STAGE: 'sfm.dlq.stage',
  SOURCE_TOPIC: 'sfm.dlq.source.topic',
  SOURCE_PARTITION: 'sfm.dlq.source.partition',
  SOURCE_OFFSET: 'sfm.dlq.source.offset',
  TOPOLOGY: 'sfm.dlq.topology',
  FAILED_AT: 'sfm.dlq.failed_at',
  ATTEMPTS: 'sfm.dlq.attempts',
  /**
   * Set when the letter was too large for the DLQ topic and was stored cut down: says what was cut (e.g. `value
   * 3145728 bytes cut to 2096128`, `2 original headers dropped`). Its absence means the letter is whole.
   */
  TRUNCATED: 'sfm.dlq.truncated'
} as const

/** Error messages can be long (ajv lists) — keep the header bounded. */
const MAX_MESSAGE_CHARS = 1000

export interface DeadLetter {
  readonly key: Buffer | undefined
  readonly value: Buffer
  readonly headers: Map<string, Buffer>
}

export function errorClassOf(error: unknown): string {
  if (error instanceof Error) return error.name || error.constructor.name
  return typeof error
}

/** Builds the dead letter of a delivery: original bytes, original headers, plus the `sfm.dlq.*` context. */
export function buildDeadLetter(delivery: Delivery, error: unknown, stage: string, topology: string): DeadLetter {
  const headers = new Map<string, Buffer>()
  for (const [k, v] of delivery.headers) if (!k.startsWith('sfm.dlq.')) headers.set(k, v)
  const set = (name: string, value: string) => headers.set(name, Buffer.from(value))
  const message = errorMessage(error)
  set(DeadLetterHeaders.ERROR_CLASS, errorClassOf(error))
  set(DeadLetterHeaders.ERROR_CODE, error instanceof SfmError ? error.code : 'UNKNOWN')
  set(DeadLetterHeaders.ERROR_KIND, kindOf(error))
  set(
    DeadLetterHeaders.ERROR_MESSAGE,
    message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message
  )
  set(DeadLetterHeaders.STAGE, stage)
  set(DeadLetterHeaders.SOURCE_TOPIC, delivery.origin.topic)
  set(DeadLetterHeaders.SOURCE_PARTITION, String(delivery.origin.partition))
  set(DeadLetterHeaders.SOURCE_OFFSET, String(delivery.origin.offset))
  set(DeadLetterHeaders.TOPOLOGY, topology)
  set(DeadLetterHeaders.FAILED_AT, new Date().toISOString())
  set(DeadLetterHeaders.ATTEMPTS, String(delivery.attempts))
  return { key: delivery.key, value: delivery.raw, headers }
}

/**
 * Where dead letters go. `write` resolves once the letter is durable; it may throw retriable errors (the runtime
 * retries with backoff, holding the partition: a dead letter is never dropped).
 */
export interface DeadLetterTarget {
  readonly description: string
  open?(): Promise<void>
  write(letters: readonly DeadLetter[]): Promise<void>
  close?(): Promise<void>
}
