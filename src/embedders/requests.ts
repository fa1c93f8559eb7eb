import { type CreateProducerOptions, createProducer, type SfmProducer } from '../kafka/producer.ts'
import type { EmbeddingRequest, EmbeddingRequestPublisher } from './messages.ts'

export interface KafkaEmbeddingRequestsOptions extends CreateProducerOptions {
  /** The `embedding.requests` topic (with its prefix). */
  topic: string
}

/**
 * Remote mode of the vector branch: embedding requests go to Kafka, keyed by memory id (one memory's requests stay
 * in order on one partition), acks=all before the branch acks its events.
 */
export function kafkaEmbeddingRequests(options: KafkaEmbeddingRequestsOptions): EmbeddingRequestPublisher {
  let producer: SfmProducer | undefined
  return {
    async publish(requests: readonly EmbeddingRequest[]) {
      producer ??= createProducer({ clientId: 'sfm-embedding-requests', ...options })
      await producer.send(requests.map((r) => ({ topic: options.topic, key: r.id, value: JSON.stringify(r) })))
    },
    async close() {
      await producer?.close()
      producer = undefined
    }
  }
}
