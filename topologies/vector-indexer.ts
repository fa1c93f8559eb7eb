/**
 * The vector indexer topology (remote embedding mode): writes the vectors the embedder topology made into the
 * vector store, under the fence rule.
 *
 *   embedding.responses ─▶ decodeJson ─▶ validate(embedding.response v1) ─▶ vector store (newest version wins)
 *   poison (undecodable, invalid, wrong dimensions) ─▶ memory.dlq
 *
 * Run: `npm start -- topologies/vector-indexer.ts` with KAFKA_BROKERS set and the same vector store configuration
 * as the memory topology (QDRANT_URL or VECTOR_DATABASE_URL: the embedded PGlite store is one process's alone,
 * so remote mode across processes needs Qdrant or a server PostgreSQL with pgvector).
 */
import {
  branch,
  decodeJson,
  defineTopology,
  envInt,
  kafkaDeadLetter,
  kafkaSource,
  loadSchema,
  pipeline,
  topicName,
  validate
} from 'somafractal-streams'
import {
  type EmbeddingResponse,
  embedderFromEnv,
  indexResponsesSink,
  vectorStoreFromEnv
} from 'somafractal-streams/memory'

export async function vectorIndexerTopology() {
  const response = await loadSchema('embedding.response', 1)
  // The index's dimensions come from the embedder configuration that the memory topology and the embedder share.
  const dimensions = embedderFromEnv().dimensions
  return defineTopology<EmbeddingResponse>({
    name: 'vector-indexer',
    source: kafkaSource({
      topics: [topicName('embedding.responses')],
      groupId: process.env.SFM_INDEXER_GROUP ?? 'sfm-vector-indexer'
    }),
    pipeline: pipeline(
      decodeJson({ maxBytes: envInt('SFM_MAX_EVENT_BYTES', 1024 * 1024), maxDepth: 16 }),
      validate<EmbeddingResponse>(response.schema)
    ),
    branches: {
      index: branch(indexResponsesSink({ store: await vectorStoreFromEnv(), dimensions }), {
        batch: { maxCount: envInt('SFM_VECTOR_BATCH', 512), maxBytes: 16 * 1024 * 1024, maxWaitMs: 50 }
      })
    },
    deadLetter: kafkaDeadLetter({ topic: topicName('memory.dlq') }),
    settings: { maxInFlight: 5_000 }
  })
}

export default vectorIndexerTopology
