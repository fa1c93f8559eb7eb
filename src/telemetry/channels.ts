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
