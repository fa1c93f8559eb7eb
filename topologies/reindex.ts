/**
 * The reindex topology: re-embeds the memories of the vector index whose vectors another embedder revision made
 * (a new model, another SFM_LEXICAL_NGRAM…), from the latest state of every memory, then exits (--until-idle).
 *
 *   memory.latest (compacted; group sfm-reindex rewound to the start on every run) ─▶ decodeLatest
 *        └─▶ reembed: per memory, the index's stored state decides
 *              live, same version, made by another revision (or SFM_REINDEX_ALL=true) ─▶ embed ─▶ vector store
 *              already current · absent or deleted · newer in the index · tombstone ─▶ skipped, counted
 *            (written under the fence: replaces a point only if it exists, is live and is not newer)
 *            with SFM_REINDEX_FILL=true also: absent ─▶ embed ─▶ fenced upsert · older ─▶ replaced ·
 *              tombstone of a live point ─▶ removed
 *   poison (undecodable, malformed, refused by the embedder) ─▶ memory.dlq
 *
 * Why memory.latest rather than PostgreSQL `memories`: it is the framework's published "latest state" view, read
 * the same way on Kafka and on the embedded log, so the reindex needs no access to the memory topology's database
 * (a reindex can run where the embedding server is, with the broker and the vector store) and gets the runtime's
 * batching, backpressure, retries and DLQ for free. Its records carry the fence pair, so each can be matched to the
 * vector the index holds.
 *
 * Why the group is rewound every run instead of resuming: the question a run answers is "is every vector of the
 * current revision?", and that needs a look at every memory. Resuming would skip memories read by an earlier run
 * whose vectors the memory topology rewrote since with an older embedder. A full pass costs a read of the compacted
 * topic (about one record per memory) and one stored-state lookup per batch; memories already at the revision are
 * not embedded again, so an interrupted run started again redoes little work. The group is its own (never the
 * memory topology's), and a run refuses to start while another holds it.
 *
 * Fill (SFM_REINDEX_FILL=true): builds an index from memory.latest — a new table or collection after a change of
 * dimensions (SFM_VECTOR_TABLE / SFM_QDRANT_COLLECTION; the store creates it), or an empty store — and brings an
 * incomplete one up to date. Each id's last record decides: a live state is inserted (fenced upsert) or replaces an
 * older one, a tombstone removes the memory. Explicit rather than "when the index is empty": an interrupted fill
 * leaves a non-empty index, and its next run must still insert; and a mistyped table name should not silently
 * start a new index. Nothing else writing the new store makes every decision exact: fill while the memory
 * topology still writes the old one, stop it, fill again (only what changed since is embedded), start it on the new
 * store. With the memory topology writing the same store meanwhile, pgvector's tombstones keep a delete it writes;
 * Qdrant keeps none, so a memory it deletes between the fill's read and its insert can come back
 * (src/sinks/vector/README.md).
 *
 * Concurrency with the live memory topology: allowed where the store is shared (Qdrant, or pgvector at
 * VECTOR_DATABASE_URL; the embedded PGlite store is one process's). Stop or reconfigure the memory topology to the
 * new embedder first: vectors it writes meanwhile with the old one are left for the next run.
 *
 * Run: `npm start -- topologies/reindex.ts --until-idle` with the same store and embedder configuration as the
 * memory topology (QDRANT_URL / VECTOR_DATABASE_URL / PGlite under SFM_DATA_DIR; SFM_EMBEDDER…). SFM_REINDEX_ALL=true
 * re-embeds every memory whatever its revision; SFM_REINDEX_FILL=true fills (above); SFM_REINDEX_GROUP
 * (sfm-reindex), SFM_REINDEX_BATCH (512).
 * Progress (offsets done / total, records/s, what became of them) is logged every 5 s, and a summary at the end.
 */
import {
  branch,
  defineTopology,
  envInt,
  kafkaDeadLetter,
  logSource,
  parseBoolean,
  rewindGroup,
  topicName
} from 'somafractal-streams'
import {
  decodeLatest,
  embedderFromEnv,
  type LatestRecord,
  ReindexProgress,
  reindexSink,
  vectorStoreFromEnv
} from 'somafractal-streams/memory'

export async function reindexTopology() {
  const latest = topicName('memory.latest')
  const groupId = process.env.SFM_REINDEX_GROUP || 'sfm-reindex'
  const all = parseBoolean(process.env.SFM_REINDEX_ALL, 'SFM_REINDEX_ALL', false)
  const fill = parseBoolean(process.env.SFM_REINDEX_FILL, 'SFM_REINDEX_FILL', false)
  const spans = await rewindGroup({ groupId, topics: [latest] })
  const embedder = embedderFromEnv(process.env, { thread: true })
  return defineTopology<LatestRecord>({
    name: 'reindex',
    source: logSource({ topics: [latest], groupId, drainOldEvents: true }),
    // memory.latest values are memory states: the topic's 2 MiB record limit bounds them.
    pipeline: decodeLatest({ maxBytes: 2 * 1024 * 1024, maxDepth: 64 }),
    branches: {
      reembed: branch(
        reindexSink({
          embedder,
          store: await vectorStoreFromEnv(),
          all,
          fill,
          progress: new ReindexProgress(spans, { fill })
        }),
        { batch: { maxCount: envInt('SFM_REINDEX_BATCH', 512), maxBytes: 8 * 1024 * 1024, maxWaitMs: 50 } }
      )
    },
    deadLetter: kafkaDeadLetter({ topic: topicName('memory.dlq') }),
    settings: { maxInFlight: 5_000 }
  })
}

export default reindexTopology
