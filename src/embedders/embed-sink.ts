import { ErrorKinds, kindOf } from '../errors.ts'
import {
  type CreateProducerOptions,
  createProducer,
  type OutgoingMessage,
  type SfmProducer
} from '../sinks/kafka/producer.ts'
import type { ItemFailure, Sink, SinkContext, WriteResult } from '../sinks/types.ts'
import type { Envelope } from '../streams/envelope.ts'
import { type EmbedMessage, embedChannel } from '../telemetry/channels.ts'
import { injectContext } from '../telemetry/propagation.ts'
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
      const failures: ItemFailure[] = []
      const vectors = new Map<number, Float32Array>()
      const run = async (indexes: readonly number[]): Promise<void> => {
        const started = performance.now()
        let out: Float32Array[]
        try {
          out = await embedder.embed(
            indexes.map((i) => batch[i]!.value.text),
            context.signal
          )
        } catch (error) {
          if (kindOf(error) !== ErrorKinds.POISON) throw error
          if (indexes.length === 1) {
            failures.push({ index: indexes[0]!, error })
            return
          }
          const middle = indexes.length >>> 1
          await run(indexes.slice(0, middle))
          await run(indexes.slice(middle))
          return
        }
        embedChannel.publish({
          embedder: embedder.name,
          texts: indexes.length,
          seconds: (performance.now() - started) / 1000
        } satisfies EmbedMessage)
        indexes.forEach((i, k) => {
          vectors.set(i, out[k]!)
        })
      }
      await run(batch.map((_e, i) => i))
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
