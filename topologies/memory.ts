/**
 * The memory topology: keeps PostgreSQL equal to what `memory.events` says, however often events are redelivered,
 * duplicated, reordered or interrupted.
 *
 *   memory.events ─▶ decodeJson ─▶ validate(memory.event v1) ─▶ dedupe(event_id)
 *        │                                                            │
 *        │                                            kv: PostgreSQL `memories` (fence rule, one tx per batch)
 *        │                                                │   ├─▶ memory.latest  (state of each touched memory)
 *        │                                                │   └─▶ memory.audit   (one record per event + outcome)
 *        │                                            vectors: embed + vector index (fence rule, deletes remove)
 *        │                                                    (remote mode: ─▶ embedding.requests instead)
 *        └── poison (undecodable, invalid, nothing to embed, rejected by a sink) ─▶ memory.dlq
 *
 * Run: `npm start -- topologies/memory.ts`. Without KAFKA_BROKERS the source and the topics are the embedded log,
 * without DATABASE_URL the memories table is in the embedded PGlite under SFM_DATA_DIR. The vector store is Qdrant when
 * QDRANT_URL is set, pgvector at VECTOR_DATABASE_URL when that is set, else pgvector in PGlite under SFM_DATA_DIR
 * (see src/sinks/vector/select.ts); the embedder is chosen by SFM_EMBEDDER (src/embedders/index.ts).
 * SFM_EMBEDDING_MODE=remote publishes embedding requests for topologies/embedder.ts and
 * topologies/vector-indexer.ts; SFM_VECTORS=off leaves the vector branch out. SFM_AUDIT_FORMAT=connect writes
 * memory.audit as Kafka Connect JsonConverter envelopes for the JDBC sink of deploy/connect/ (default `json`: the
 * plain memory.audit v1 record; see src/memory/audit-format.ts). SFM_LEGACY_EVENTS=upcast applies events in the legacy
 * SomaFractalMemory shape under their memory id; `reject` (default) dead-letters them (src/memory/legacy/events.ts).
 */
import {
  type BatchFlushMode,
  BatchFlushModes,
  type BatchOptions,
  type Branch,
  branch,
  createLogger,
  decodeJson,
  dedupe,
  defineTopology,
  ErrorCodes,
  ErrorKinds,
  envInt,
  FatalError,
  kafkaDeadLetter,
  loadSchema,
  logSource,
  pipeline,
  SfmError,
  topicName,
  validate
} from 'somafractal-streams'
import {
  auditFormatFromEnv,
  describeAuditFormat,
  embedderFromEnv,
  kafkaEmbeddingRequests,
  kvStoreDescription,
  legacyEventModeFromEnv,
  legacyEvents,
  type MemoryEvent,
  materializeMemories,
  memoryVectorSink,
  vectorStoreFromEnv
} from 'somafractal-streams/memory'

/** The vector branch, unless SFM_VECTORS=off: inline embedding, or embedding requests in remote mode. */
export async function vectorsBranch(env: NodeJS.ProcessEnv = process.env): Promise<Branch<MemoryEvent> | undefined> {
  const enabled = env.SFM_VECTORS ?? 'on'
  if (enabled === 'off') return undefined
  if (enabled !== 'on') throw new FatalError(`SFM_VECTORS must be "on" or "off", got ${JSON.stringify(enabled)}`)
  const mode = env.SFM_EMBEDDING_MODE ?? 'inline'
  if (mode !== 'inline' && mode !== 'remote') {
    throw new FatalError(`SFM_EMBEDDING_MODE must be "inline" or "remote", got ${JSON.stringify(mode)}`)
  }
  // The embedded store's folder lock first, before anything else is opened: a recall started meanwhile then meets
  // this runner as the folder's owner (and refuses) instead of holding the folder when the runner gets there.
  const store = await vectorStoreFromEnv(env, undefined, { lock: 'owner' }).catch((error: unknown) => {
    // The embedded store's folder cannot be had (not creatable, owned by another process): name the ways out.
    if (env.QDRANT_URL || env.VECTOR_DATABASE_URL || !(error instanceof SfmError) || error.kind !== ErrorKinds.FATAL) {
      throw error
    }
    throw new FatalError(
      `${error.message} (or: QDRANT_URL / VECTOR_DATABASE_URL for a vector server, SFM_VECTORS=off for no vectors, ` +
        'SFM_DATA_DIR for another data folder)',
      { code: error.code, cause: error }
    )
  })
  let embedder: ReturnType<typeof embedderFromEnv>
  try {
    embedder = embedderFromEnv(env, { thread: true })
  } catch (error) {
    await store.close()
    throw error
  }
  const sink = memoryVectorSink({
    embedder,
    store,
    ...(mode === 'remote' ? { requests: kafkaEmbeddingRequests({ topic: topicName('embedding.requests', env) }) } : {})
  })
  // 2,000 (SFM_VECTOR_BATCH) as the KV branch: per batch the branch pays a fence read, an embedding call and one
  // statement or request round, so larger batches cost less CPU per event. 8 batches in flight: each of those rounds
  // waits for the runner's thread to take its answer, which a PGlite KV statement can hold for tens of ms, so fewer
  // leave the branch waiting rather than working (docs/BENCHMARKS.md, `embedded`). A quiet partition still flushes
  // after maxWaitMs.
  return branch(sink, {
    batch: { maxCount: envInt('SFM_VECTOR_BATCH', 2000, env), maxBytes: 8 * 1024 * 1024, maxWaitMs: 50 },
    maxInFlightBatches: 8
  })
}

/**
 * The KV branch's batching: SFM_KV_BATCH events (2,000) or 8 MiB, and group commit (SFM_KV_BATCH_FLUSH=when-idle,
 * the default): a partition's batch goes out as soon as the writer could start it and the batch is
 * SFM_KV_BATCH_LINGER_MS old (5); while the partition's previous write or all the writer's slots are busy it fills,
 * for at most SFM_KV_BATCH_WAIT_MS (50). `limits` flushes on count, bytes or the wait only (the timer alone).
 */
export function kvBatchOptions(env: NodeJS.ProcessEnv = process.env): BatchOptions {
  const flush = env.SFM_KV_BATCH_FLUSH || BatchFlushModes.WHEN_IDLE
  const modes: readonly string[] = Object.values(BatchFlushModes)
  if (!modes.includes(flush)) {
    throw new FatalError(`SFM_KV_BATCH_FLUSH must be ${modes.join(' or ')}, got ${JSON.stringify(flush)}`, {
      code: ErrorCodes.CONFIG
    })
  }
  // The default wait is not short because a timer alone (limits) fires whether or not a write is in flight, and
  // with short waits the per-batch cost (one statement + one produce) outruns a loaded machine (docs/BENCHMARKS.md,
  // memory-kv).
  // when-idle flushes early only into a free writer.
  const maxWaitMs = envInt('SFM_KV_BATCH_WAIT_MS', 50, env)
  // A short linger: fewer, fuller writes for a little latency (docs/BENCHMARKS.md, memory-kv, group commit).
  const lingerMs = envInt('SFM_KV_BATCH_LINGER_MS', Math.min(5, maxWaitMs), env)
  if (lingerMs > maxWaitMs) {
    throw new FatalError(`SFM_KV_BATCH_LINGER_MS (${lingerMs}) must not exceed SFM_KV_BATCH_WAIT_MS (${maxWaitMs})`, {
      code: ErrorCodes.CONFIG
    })
  }
  return {
    maxCount: envInt('SFM_KV_BATCH', 2000, env),
    maxBytes: 8 * 1024 * 1024,
    maxWaitMs,
    flush: flush as BatchFlushMode,
    lingerMs
  }
}

/** Builds the topology from the environment (the runner calls the default export). */
export async function memoryTopology() {
  // First: it takes the embedded vector folder's lock (see vectorsBranch).
  const vectors = await vectorsBranch()
  const memoryEvent = await loadSchema('memory.event', 1)
  const log = createLogger('memory')
  log.info(`KV: ${kvStoreDescription({ connectionString: process.env.DATABASE_URL })}`)
  const auditFormat = auditFormatFromEnv()
  log.info(`audit: ${describeAuditFormat(auditFormat)}`)
  const legacyMode = legacyEventModeFromEnv()
  log.info(`legacy events: ${legacyMode} (SFM_LEGACY_EVENTS)`)
  return defineTopology<MemoryEvent>({
    name: 'memory',
    source: logSource({
      topics: [topicName('memory.events')],
      groupId: process.env.SFM_MEMORY_GROUP ?? 'sfm-memory'
    }),
    pipeline: pipeline(
      // The payload's JSON text is stored as received (jsonb, memory.latest): no serialising it again.
      decodeJson({ maxBytes: envInt('SFM_MAX_EVENT_BYTES', 1024 * 1024), maxDepth: 64, rawMember: 'payload' }),
      legacyEvents({ mode: legacyMode }),
      validate<MemoryEvent>(memoryEvent.schema),
      dedupe({ key: (e) => e.value.event_id, windowSize: 100_000 })
    ),
    branches: {
      kv: branch(
        materializeMemories({
          connectionString: process.env.DATABASE_URL || undefined,
          table: process.env.SFM_MEMORY_TABLE ?? 'memories',
          latestTopic: topicName('memory.latest'),
          auditTopic: topicName('memory.audit'),
          auditFormat
        }),
        { batch: kvBatchOptions() }
      ),
      ...(vectors ? { vectors } : {})
    },
    deadLetter: kafkaDeadLetter({ topic: topicName('memory.dlq') }),
    settings: { maxInFlight: 20_000, maxInFlightBytes: 64 * 1024 * 1024 }
  })
}

export default memoryTopology
