import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { RuntimeObserver } from '../streams/runtime.ts'
import {
  type EmbedMessage,
  embedChannel,
  type PostgresBatchMessage,
  type ProducerSentMessage,
  postgresBatchChannel,
  producerSentChannel,
  type VectorRequestMessage,
  type VectorWriteMessage,
  vectorRequestChannel,
  vectorWriteChannel
} from './channels.ts'
import { CommitOutcomes, type Metrics, RowOutcomes, VectorOps } from './metrics.ts'
import { endSpan, startConsumeSpan, traceCommit, traceSinkWrite } from './tracing.ts'

export interface TelemetryObserver extends RuntimeObserver {
  /** Stops listening to the diagnostics channels. */
  dispose(): void
}

/**
 * Connects a running topology to metrics and traces: one consume span per message (child of the trace context in
 * its headers, ended when the message is done), one span per sink write linked to its messages, one per commit.
 */
export function telemetryObserver(metrics: Metrics, options: { groupId?: string } = {}): TelemetryObserver {
  const onProduced = (message: unknown) => {
    const m = message as ProducerSentMessage
    metrics.produced(m.topic, m.seconds)
  }
  const onPostgres = (message: unknown) => {
    const m = message as PostgresBatchMessage
    if (m.applied) metrics.postgresRows(RowOutcomes.APPLIED, m.applied)
    if (m.fenced) metrics.postgresRows(RowOutcomes.FENCED, m.fenced)
    if (m.duplicate) metrics.postgresRows(RowOutcomes.DUPLICATE, m.duplicate)
    metrics.observePostgresBatch(m.seconds)
  }
  const onEmbed = (message: unknown) => {
    const m = message as EmbedMessage
    metrics.embedded(m.embedder, m.texts, m.seconds)
  }
  const onVectorWrite = (message: unknown) => {
    const m = message as VectorWriteMessage
    metrics.vectorWrites(m.store, VectorOps.UPSERT, m.upserts)
    metrics.vectorWrites(m.store, VectorOps.DELETE, m.deletes)
  }
  const onVectorRequest = (message: unknown) => {
    const m = message as VectorRequestMessage
    metrics.vectorRequest(m.store, m.points)
  }
  subscribe(producerSentChannel.name, onProduced)
  subscribe(postgresBatchChannel.name, onPostgres)
  subscribe(embedChannel.name, onEmbed)
  subscribe(vectorWriteChannel.name, onVectorWrite)
  subscribe(vectorRequestChannel.name, onVectorRequest)

  return {
    contextFor: (message) => startConsumeSpan(message.origin, message.headers, options.groupId),
    consumed: (message) => metrics.consumed(message.origin.topic),
    processed: (delivery, seconds) => {
      metrics.observeProcessing(seconds)
      endSpan(delivery.context, delivery.deadLettered ? new Error('dead-lettered') : undefined)
    },
    deadLettered: (stage, error) => metrics.dlq(stage, error),
    dropped: (reason) => metrics.dropped(reason),
    batchWritten: (branch, count, bytes, seconds) => metrics.sinkWrite(branch, { messages: count, bytes, seconds }),
    sinkRetry: (branch) => metrics.sinkRetry(branch),
    committed: (requests, seconds) => {
      metrics.commit(CommitOutcomes.OK, seconds)
      for (const r of requests) metrics.committedOffset(r.topic, r.partition, r.offset)
    },
    commitFailed: () => metrics.commit(CommitOutcomes.ERROR, 0),
    lag: (lag) => metrics.setLag(lag),
    aroundWrite: (branch, batch, write) =>
      traceSinkWrite(
        branch,
        batch.map((e) => e.delivery.context),
        () => write()
      ),
    aroundCommit: (commit) => traceCommit(() => commit()),
    dispose() {
      unsubscribe(producerSentChannel.name, onProduced)
      unsubscribe(postgresBatchChannel.name, onPostgres)
      unsubscribe(embedChannel.name, onEmbed)
      unsubscribe(vectorWriteChannel.name, onVectorWrite)
      unsubscribe(vectorRequestChannel.name, onVectorRequest)
    }
  }
}
