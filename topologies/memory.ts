/**
 * The memory topology: keeps PostgreSQL equal to what `memory.events` says, however often events are redelivered,
 * duplicated, reordered or interrupted.
 *
 *   memory.events ─▶ decodeJson ─▶ validate(memory.event v1) ─▶ dedupe(event_id)
 *        │                                                            │
 *        │                                            kv: PostgreSQL `memories` (fence rule, one tx per batch)
 *        │                                                ├─▶ memory.latest  (state of each touched memory)
 *        │                                                └─▶ memory.audit   (one record per event + outcome)
 *        └── poison (undecodable, invalid, rejected by PostgreSQL) ─▶ memory.dlq
 *
 * Run: `npm start -- topologies/memory.ts` with KAFKA_BROKERS and DATABASE_URL set.
 */
import { pipe } from 'rxjs'
import { envInt, requireEnv, topicName } from '../src/config.ts'
import type { MemoryEvent } from '../src/memory/event.ts'
import { materializeMemories } from '../src/memory/materialize.ts'
import { loadSchema } from '../src/schemas.ts'
import { kafkaDeadLetter } from '../src/sinks/kafka/index.ts'
import { kafkaSource } from '../src/sources/kafka/index.ts'
import { decodeJson } from '../src/streams/operators/decode-json.ts'
import { dedupe } from '../src/streams/operators/dedupe.ts'
import { validate } from '../src/streams/operators/validate.ts'
import { branch, defineTopology } from '../src/streams/topology.ts'

/** Builds the topology from the environment (the runner calls the default export). */
export async function memoryTopology() {
  const memoryEvent = await loadSchema('memory.event', 1)
  return defineTopology<MemoryEvent>({
    name: 'memory',
    source: kafkaSource({
      topics: [topicName('memory.events')],
      groupId: process.env.SFM_MEMORY_GROUP ?? 'sfm-memory'
    }),
    pipeline: pipe(
      decodeJson({ maxBytes: envInt('SFM_MAX_EVENT_BYTES', 1024 * 1024), maxDepth: 64 }),
      validate<MemoryEvent>(memoryEvent.schema),
      dedupe({ key: (e) => e.value.event_id, windowSize: 100_000 })
    ),
    branches: {
      kv: branch(
        materializeMemories({
          connectionString: requireEnv('DATABASE_URL', 'the PostgreSQL that holds the memories table'),
          table: process.env.SFM_MEMORY_TABLE ?? 'memories',
          latestTopic: topicName('memory.latest'),
          auditTopic: topicName('memory.audit')
        }),
        { batch: { maxCount: envInt('SFM_KV_BATCH', 2000), maxBytes: 8 * 1024 * 1024, maxWaitMs: 50 } }
      )
    },
    deadLetter: kafkaDeadLetter({ topic: topicName('memory.dlq') }),
    settings: { maxInFlight: 20_000, maxInFlightBytes: 64 * 1024 * 1024 }
  })
}

export default memoryTopology
