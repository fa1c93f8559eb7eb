/**
 * The legacy mirror (the cutover's rollback path): keeps the legacy SomaFractalMemory `kv_store` equal to this
 * stack's state, so that from step 4 of the runbook on (the legacy store read-only for the app) rolling back is
 * "point the app back" with nothing lost.
 *
 *   memory.latest (compacted; group sfm-legacy-mirror, from the earliest offset on its first run) ─▶ decodeLatest
 *        └─▶ mirror: side table kv_store_mirror_versions (fence (version, event_ts), tombstones)
 *              a row the fence lets through ─▶ trigger ─▶ kv_store: upsert {id}:data = payload, or delete it
 *   poison (undecodable, a tombstone without its fence headers, a row PostgreSQL refuses) ─▶ memory.dlq
 *
 * What it writes: the key `{id}:data` (the legacy memory id plus `:data`) and, as value, the memory's payload as
 * stored — the layout the legacy app writes and `npm run backfill` reads, so `npm run parity` against the mirrored
 * store gives 0. A deleted memory's row is removed. Only keys ending in `:data` are written: the table's other rows
 * (`:meta`, `:wal:`, `:version:`, uuid5 keys) are never touched. An older record never overwrites a newer one: the
 * fence pair is kept in the side table next to `kv_store` (`kv_store` keeps the app's shape), written by the generic
 * PostgreSQL sink, and its trigger changes `kv_store` in the same statement (src/memory/legacy/mirror.ts).
 *
 * Run: `SFM_LEGACY_URL=postgres://…/sfm npm start -- topologies/legacy-mirror.ts`.
 *   SFM_LEGACY_URL      the legacy PostgreSQL (the --legacy-url of npm run backfill and parity); required
 *   SFM_MIRROR_TABLE    the side table, `name` or `schema.name` (default kv_store_mirror_versions, in kv_store's
 *                       schema); created on start with its trigger
 *   SFM_MIRROR_GROUP    the consumer group (default sfm-legacy-mirror); a new group reads memory.latest from the
 *                       start whatever DRAIN_OLD_EVENTS says (the mirror needs every memory)
 *   SFM_MIRROR_BATCH    records per statement (default 1000)
 *   SFM_TOPIC_PREFIX, KAFKA_BROKERS (else the embedded log under SFM_DATA_DIR) as for every topology.
 * docs/CUTOVER.md, "Legacy mirror", has the procedure and the checks.
 */
import {
  branch,
  createLogger,
  defineTopology,
  envInt,
  FatalError,
  kafkaDeadLetter,
  logSource,
  type Sink,
  topicName
} from 'somafractal-streams'
import { decodeLatest, type LatestRecord, legacyMirrorSink } from 'somafractal-streams/memory'

export async function legacyMirrorTopology(env: NodeJS.ProcessEnv = process.env) {
  const legacyUrl = env.SFM_LEGACY_URL
  if (!legacyUrl) {
    throw new FatalError(
      'SFM_LEGACY_URL is not set: the legacy PostgreSQL connection string (the --legacy-url of npm run backfill / parity)'
    )
  }
  const sink = legacyMirrorSink({ legacyUrl, ...(env.SFM_MIRROR_TABLE ? { table: env.SFM_MIRROR_TABLE } : {}) })
  // Set up now (side table, trigger): a legacy database that does not answer or has no kv_store stops the start
  // with one line (exit 2) before anything is consumed.
  await sink.open()
  const log = createLogger('legacy-mirror')
  log.info(`mirroring into ${sink.tables?.kv} (fence in ${sink.tables?.versions})`)
  const reporting: Sink<LatestRecord> = {
    kind: sink.kind,
    dryRun: true,
    open: (context) => sink.open(context),
    write: (batch, context) => sink.write(batch, context),
    async close() {
      const c = sink.counts
      log.info(
        `mirrored: applied ${c.applied} (deleted ${c.deleted}), fenced ${c.fenced}, duplicate ${c.duplicate}, failed ${c.failed}` +
          (sink.tables ? ` — ${sink.tables.kv} via ${sink.tables.versions}` : '')
      )
      await sink.close()
    }
  }
  return defineTopology<LatestRecord>({
    name: 'legacy-mirror',
    source: logSource({
      topics: [topicName('memory.latest', env)],
      groupId: env.SFM_MIRROR_GROUP || 'sfm-legacy-mirror',
      drainOldEvents: true
    }),
    // memory.latest values are memory states: the topic's 2 MiB record limit bounds them.
    pipeline: decodeLatest({ maxBytes: 2 * 1024 * 1024, maxDepth: 64 }),
    branches: {
      mirror: branch(reporting, {
        batch: { maxCount: envInt('SFM_MIRROR_BATCH', 1000, env), maxBytes: 8 * 1024 * 1024, maxWaitMs: 50 }
      })
    },
    deadLetter: kafkaDeadLetter({ topic: topicName('memory.dlq', env) }),
    settings: { maxInFlight: 5_000 }
  })
}

export default legacyMirrorTopology
