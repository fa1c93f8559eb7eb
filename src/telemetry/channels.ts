import { channel } from 'node:diagnostics_channel'

/**
 * Diagnostics channels through which sinks and producers report to whoever listens (the runner feeds them into
 * Prometheus), without each sink having to be handed a metrics object. Same approach as @platformatic/kafka's own
 * tracing channels. Publishing costs nothing when nobody subscribes.
 */
export interface ProducerSentMessage {
  topic: string
  count: number
  seconds: number
}

export interface PostgresBatchMessage {
  table: string
  applied: number
  fenced: number
  duplicate: number
  seconds: number
}

export const producerSentChannel = channel('sfm:producer:sent')
export const postgresBatchChannel = channel('sfm:postgres:batch')

/** One call of an embedder: how many texts and how long it took. */
export interface EmbedMessage {
  embedder: string
  texts: number
  seconds: number
}

/** One vector sink batch written to a vector store. */
export interface VectorWriteMessage {
  store: string
  upserts: number
  deletes: number
  seconds: number
}

/** One write request (Qdrant) or statement (pgvector) to a vector store, with its number of points. */
export interface VectorRequestMessage {
  store: string
  points: number
}

export const embedChannel = channel('sfm:embed')
export const vectorWriteChannel = channel('sfm:vector:write')
export const vectorRequestChannel = channel('sfm:vector:request')

/**
 * Tells `onSent` and the producer-sent channel (sfm_producer_* metrics) about a send acknowledged now that started
 * at `started` (performance.now()): one call per topic, with its message count. Nothing is computed when nobody
 * listens. Shared by the Kafka producer and the embedded log's.
 */
export function reportSent(
  messages: readonly { readonly topic: string }[],
  started: number,
  onSent: ((topic: string, count: number, seconds: number) => void) | undefined
): void {
  if (!onSent && !producerSentChannel.hasSubscribers) return
  const seconds = (performance.now() - started) / 1000
  const perTopic = new Map<string, number>()
  for (const m of messages) perTopic.set(m.topic, (perTopic.get(m.topic) ?? 0) + 1)
  for (const [topic, count] of perTopic) {
    onSent?.(topic, count, seconds)
    producerSentChannel.publish({ topic, count, seconds } satisfies ProducerSentMessage)
  }
}
