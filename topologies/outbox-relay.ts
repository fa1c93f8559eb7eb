/**
 * The transactional outbox relay: publishes the rows an app wrote to its outbox table (in the transaction of its own
 * write, sfm_events.outbox.insert) to `memory.events`, keyed by the memory id, in the order of the rows per id.
 *
 *   sfm_outbox (SFM_OUTBOX_URL) ─▶ decodeJson ─▶ validate(memory.event v1) ─▶ key = id ─▶ memory.events
 *        └── poison (not JSON, not a valid event, key ≠ id) ─▶ memory.dlq (header sfm.outbox.id: the row)
 *
 * A row is deleted only after Kafka acknowledged its event (the runtime's commit): kill -9 the relay at any moment
 * and every row is published at least once. Run:
 * `SFM_OUTBOX_URL=postgres://… npm start -- topologies/outbox-relay.ts`; `SFM_OUTBOX_TABLE` (default `sfm_outbox`,
 * may be `schema.table`), `SFM_OUTBOX_CHANNEL` (default `sfm_outbox`) and Kafka's variables as every topology.
 */
import {
  branch,
  createLogger,
  decodeJson,
  defineTopology,
  envInt,
  kafkaDeadLetter,
  kafkaSink,
  loadSchema,
  outboxSource,
  pipeline,
  topicName,
  validate
} from 'somafractal-streams'
import { keyIsMemoryId, type MemoryEvent } from 'somafractal-streams/memory'

export async function outboxRelayTopology(env: NodeJS.ProcessEnv = process.env) {
  const memoryEvent = await loadSchema('memory.event', 1)
  const source = outboxSource({
    ...(env.SFM_OUTBOX_TABLE ? { table: env.SFM_OUTBOX_TABLE } : {}),
    ...(env.SFM_OUTBOX_CHANNEL ? { channel: env.SFM_OUTBOX_CHANNEL } : {}),
    pollIntervalMs: envInt('SFM_OUTBOX_POLL_MS', 1000, env)
  })
  createLogger('outbox-relay').info(`publishing to ${topicName('memory.events', env)}`)
  return defineTopology<MemoryEvent>({
    name: 'outbox-relay',
    source,
    pipeline: pipeline(
      decodeJson({ maxBytes: envInt('SFM_MAX_EVENT_BYTES', 1024 * 1024, env), maxDepth: 64 }),
      validate<MemoryEvent>(memoryEvent.schema),
      keyIsMemoryId()
    ),
    branches: {
      // when-idle: a lone write goes out at once (the commit → Kafka latency), a backlog in big batches.
      kafka: branch(kafkaSink({ topic: topicName('memory.events', env) }), {
        batch: { maxCount: 2000, maxBytes: 8 * 1024 * 1024, maxWaitMs: 20, flush: 'when-idle', lingerMs: 1 }
      })
    },
    deadLetter: kafkaDeadLetter({ topic: topicName('memory.dlq', env) }),
    // Rows are deleted when their offsets are committed: often, so the table stays short.
    settings: { maxInFlight: 20_000, maxInFlightBytes: 64 * 1024 * 1024, commitIntervalMs: 100 }
  })
}

export default outboxRelayTopology
