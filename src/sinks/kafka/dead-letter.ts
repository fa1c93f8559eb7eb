import type { DeadLetter, DeadLetterTarget } from '../../streams/dead-letter.ts'
import { type CreateProducerOptions, createProducer, producerTarget, type SfmProducer } from './producer.ts'

export interface KafkaDeadLetterOptions extends CreateProducerOptions {
  topic: string
}

/**
 * Dead letters to a Kafka topic (e.g. `memory.dlq`), with an idempotent acks=all producer — or to that topic of the
 * embedded log when no brokers are configured (see `createProducer`).
 */
export function kafkaDeadLetter(options: KafkaDeadLetterOptions): DeadLetterTarget {
  let producer: SfmProducer | undefined
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
      await producer.send(
        letters.map((l) => ({ topic: options.topic, key: l.key, value: l.value, headers: l.headers }))
      )
    },
    async close() {
      await producer?.close()
      producer = undefined
    }
  }
}
