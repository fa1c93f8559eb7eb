/**
 * The embedder topology (remote embedding mode): embeds what the memory topology's vector branch asks for, so
 * embedding scales on its own machines (e.g. next to a GPU embedding server).
 *
 *   embedding.requests ─▶ decodeJson ─▶ validate(embedding.request v1) ─▶ dedupe(request_id)
 *        └─▶ embed in batches ─▶ embedding.responses (keyed by memory id)
 *   poison (undecodable, invalid, refused by the embedding server) ─▶ memory.dlq
 *
 * Run: `npm start -- topologies/embedder.ts` with KAFKA_BROKERS set; the embedder is chosen by SFM_EMBEDDER /
 * SFM_EMBEDDING_URL (src/embedders/index.ts), and must be the one the vector indexer expects (same dimensions).
 */
import {
  branch,
  decodeJson,
  dedupe,
  defineTopology,
  envInt,
  kafkaDeadLetter,
  kafkaSource,
  loadSchema,
  pipeline,
  topicName,
  validate
} from 'somafractal-streams'
import { type EmbeddingRequest, embedderFromEnv, embedRequestsSink } from 'somafractal-streams/memory'

export async function embedderTopology() {
  const request = await loadSchema('embedding.request', 1)
  return defineTopology<EmbeddingRequest>({
    name: 'embedder',
    source: kafkaSource({
      topics: [topicName('embedding.requests')],
      groupId: process.env.SFM_EMBEDDER_GROUP ?? 'sfm-embedder'
    }),
    pipeline: pipeline(
      decodeJson({ maxBytes: envInt('SFM_MAX_EVENT_BYTES', 1024 * 1024), maxDepth: 16 }),
      validate<EmbeddingRequest>(request.schema),
      dedupe({ key: (e) => e.value.request_id, windowSize: 100_000 })
    ),
    branches: {
      embed: branch(
        embedRequestsSink({
          embedder: embedderFromEnv(process.env, { thread: true }),
          topic: topicName('embedding.responses')
        }),
        {
          batch: { maxCount: envInt('SFM_EMBED_BATCH', 256), maxBytes: 4 * 1024 * 1024, maxWaitMs: 20 }
        }
      )
    },
    deadLetter: kafkaDeadLetter({ topic: topicName('memory.dlq') }),
    settings: { maxInFlight: 5_000 }
  })
}

export default embedderTopology
