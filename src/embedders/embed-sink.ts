import {
  type CreateProducerOptions,
  createProducer,
  type OutgoingMessage,
  type SfmProducer
} from '../kafka/producer.ts'
import type { ItemFailure, Sink, SinkContext, WriteResult } from '../sinks/types.ts'
import type { Envelope } from '../streams/envelope.ts'
import { injectContext } from '../telemetry/propagation.ts'
import { embedIsolating } from './embed-isolating.ts'
import type { EmbeddingRequest, EmbeddingResponse } from './messages.ts'
import type { Embedder } from './types.ts'

export interface EmbedRequestsSinkOptions extends CreateProducerOptions {
  embedder: Embedder
  /** The `embedding.responses` topic (with its prefix). */
  topic: string
}

/**
 * The embedder topology's sink: embeds a batch of requests in one embedder call and publishes one response per
 * request (keyed by memory id, acks=all) before acking. A text the embedder refuses is found by bisection and
 * dead-lettered alone; an unavailable embedder fails the batch (held and retried).
 */
export function embedRequestsSink(options: EmbedRequestsSinkOptions): Sink<EmbeddingRequest> {
  const { embedder } = options
  let producer: SfmProducer | undefined
  return {
    kind: 'embedder',
    async open() {
      producer ??= createProducer({ clientId: 'sfm-embedder', ...options })
    },
    async write(batch: readonly Envelope<EmbeddingRequest>[], context: SinkContext): Promise<WriteResult> {
      // A text the embedder refuses is isolated by bisection and dead-lettered alone (embed-isolating.ts).
      const { vectors, refused } = await embedIsolating(
        embedder,
        batch.map((_e, i) => i),
        (i) => batch[i]!.value.text,
        context.signal
      )
      const failures: ItemFailure[] = refused.map(({ item, error }) => ({ index: item, error }))
      const records: OutgoingMessage[] = []
      for (const [index, vector] of vectors) {
        const request = batch[index]!.value
        const response: EmbeddingResponse = {
          request_id: request.request_id,
          id: request.id,
          namespace: request.namespace,
          vector: Array.from(vector),
          dimensions: vector.length,
          model_revision: embedder.revision,
          type: request.type ?? null,
          version: request.version,
          timestamp: request.timestamp,
          importance: request.importance ?? null,
          ...(request.excerpt === undefined ? {} : { excerpt: request.excerpt })
        }
        records.push({
          topic: options.topic,
          key: request.id,
          value: JSON.stringify(response),
          headers: injectContext(batch[index]!.delivery.context)
        })
      }
      producer ??= createProducer({ clientId: 'sfm-embedder', ...options })
      if (records.length > 0) await producer.send(records)
      failures.sort((a, b) => a.index - b.index)
      return failures.length > 0 ? { failures } : {}
    },
    async close() {
      await producer?.close()
      producer = undefined
      await embedder.close?.()
    }
  }
}
