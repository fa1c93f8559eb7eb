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
import { pipe } from 'rxjs'
import { envInt, topicName } from '../src/config.ts'
import { embedderFromEnv } from '../src/embedders/index.ts'
import type { EmbeddingResponse } from '../src/embedders/messages.ts'
import { loadSchema } from '../src/schemas.ts'
import { kafkaDeadLetter } from '../src/sinks/kafka/index.ts'
import { indexResponsesSink, vectorStoreFromEnv } from '../src/sinks/vector/index.ts'
import { kafkaSource } from '../src/sources/kafka/index.ts'
import { decodeJson } from '../src/streams/operators/decode-json.ts'
import { validate } from '../src/streams/operators/validate.ts'
import { branch, defineTopology } from '../src/streams/topology.ts'

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
    pipeline: pipe(
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
