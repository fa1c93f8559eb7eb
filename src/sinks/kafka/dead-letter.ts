import { ErrorCodes, FatalError } from '../../errors.ts'
import { type CreateProducerOptions, createProducer, producerTarget, type SfmProducer } from '../../kafka/producer.ts'
import { RECORD_BATCH_OVERHEAD, RecordsTooLargeError, recordBytesBound } from '../../kafka/record-limit.ts'
import { type DeadLetter, DeadLetterHeaders, type DeadLetterTarget } from '../../streams/dead-letter.ts'

export interface KafkaDeadLetterOptions extends CreateProducerOptions {
  topic: string
}

/** Room kept free under the topic's limit when cutting a letter down (the size estimate is an upper bound). */
const TRUNCATION_MARGIN = 512
/** Each retry of a cut letter the broker still refuses halves its room; after this many, the DLQ is unusable. */
const TRUNCATION_ATTEMPTS = 4

const headerBytes = (headers: ReadonlyMap<string, Buffer>) => {
  const pairs: [Buffer, Buffer][] = []
  for (const [k, v] of headers) pairs.push([Buffer.from(k), v])
  return pairs
}

/**
 * A letter cut down to fit `budget` bytes as a record: the value truncated to what room is left; when the original
 * headers alone leave none, they are dropped too (the `sfm.dlq.*` context is kept), then the key. The
 * `sfm.dlq.truncated` header says what was cut.
 */
export function truncateLetter(letter: DeadLetter, budget: number): DeadLetter {
  const notes: string[] = []
  let headers = new Map(letter.headers)
  let key = letter.key
  // The note's own bytes: its name and, at most, this many characters.
  const noteRoom = 10 + DeadLetterHeaders.TRUNCATED.length + 120
  const room = () => budget - noteRoom - recordBytesBound(key?.length ?? 0, 0, headerBytes(headers))
  if (room() < 0) {
    const kept = new Map<string, Buffer>()
    for (const [k, v] of headers) if (k.startsWith('sfm.dlq.')) kept.set(k, v)
    notes.push(`${headers.size - kept.size} original headers dropped`)
    headers = kept
  }
  if (room() < 0 && key !== undefined) {
    notes.push(`key of ${key.length} bytes dropped`)
    key = undefined
  }
  const valueRoom = Math.max(0, room())
  if (letter.value.length > valueRoom) notes.unshift(`value ${letter.value.length} bytes cut to ${valueRoom}`)
  headers.set(DeadLetterHeaders.TRUNCATED, Buffer.from(notes.join(', ') || 'nothing cut'))
  return { key, value: letter.value.subarray(0, valueRoom), headers }
}

/**
 * Dead letters to a Kafka topic (e.g. `memory.dlq`), with an idempotent acks=all producer — or to that topic of the
 * embedded log when no brokers are configured (see `createProducer`). A letter too large for the topic is stored
 * cut down to its limit with the `sfm.dlq.truncated` header (a dead letter is never dropped, nor retried forever).
 */
export function kafkaDeadLetter(options: KafkaDeadLetterOptions): DeadLetterTarget {
  let producer: SfmProducer | undefined
  const send = (p: SfmProducer, letters: readonly DeadLetter[]) =>
    p.send(letters.map((l) => ({ topic: options.topic, key: l.key, value: l.value, headers: l.headers })))
  return {
    description:
      producerTarget(options) === 'kafka'
        ? `kafka topic ${options.topic}`
        : `topic ${options.topic} of the ${producerTarget(options)}`,
    async open() {
      producer ??= createProducer({ clientId: 'sfm-streams-dlq', ...options })
    },
    async write(letters: readonly DeadLetter[]) {
      producer ??= createProducer({ clientId: 'sfm-streams-dlq', ...options })
      let pending = letters
      // The letter each pending one stands for: each cut starts from the whole letter.
      let whole = letters
      for (let attempt = 0; ; attempt++) {
        try {
          await send(producer, pending)
          return
        } catch (error) {
          if (!(error instanceof RecordsTooLargeError)) throw error
          if (attempt === TRUNCATION_ATTEMPTS) {
            throw new FatalError(
              `${options.topic} refuses dead letters even cut down to a fraction of its limit: check its ` +
                `max.message.bytes (${error.message})`,
              { code: ErrorCodes.CONFIG, cause: error }
            )
          }
          // The rest are stored; cut the refused ones to the limit (smaller on each refusal) and send them again.
          const rejected = error.rejected
          pending = rejected.map((r) =>
            truncateLetter(whole[r.index]!, (r.limit - RECORD_BATCH_OVERHEAD - TRUNCATION_MARGIN) >> attempt)
          )
          whole = rejected.map((r) => whole[r.index]!)
        }
      }
    },
    async close() {
      await producer?.close()
      producer = undefined
    }
  }
}
