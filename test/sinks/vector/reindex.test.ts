import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, type TestContext, test } from 'node:test'
import pg from 'pg'
import { LexicalEmbedder } from '../../../src/embedders/lexical.ts'
import type { Logger } from '../../../src/logger.ts'
import type { LatestMemory, LatestRecord } from '../../../src/memory/latest.ts'
import { reindexSink } from '../../../src/memory/vectors/reindex.ts'
import { memoryVectorSink } from '../../../src/memory/vectors/sink.ts'
import { PgvectorStore, pgDatabase, pgliteDatabase } from '../../../src/sinks/pgvector/index.ts'
import { QdrantStore } from '../../../src/sinks/qdrant/index.ts'
import type { SinkContext } from '../../../src/sinks/types.ts'
import {
  type ReindexCounts,
  ReindexProgress,
  type VectorRecord,
  type VectorStore
} from '../../../src/sinks/vector/index.ts'
import type { Envelope } from '../../../src/streams/envelope.ts'
import { envelopeOf, RecordingHost } from '../../helpers/envelopes.ts'
import { NO_QDRANT_SPEC, QdrantSpecServer, qdrantSpecAvailable } from '../../helpers/qdrant-spec-server.ts'
import { memoryEnvelopes, remove, textCorpus, upsert } from '../../helpers/vectors.ts'

const DIMENSIONS = 64
const TS = '2026-03-04T05:06:07.123456Z'
const context: SinkContext = { topology: 'reindex', branch: 'reembed', signal: new AbortController().signal }
// Revision A (character 3-grams) indexes; revision B (4-grams) reindexes: same dimensions, other vectors.
const embedderA = () => new LexicalEmbedder({ dimensions: DIMENSIONS })
const embedderB = () => new LexicalEmbedder({ dimensions: DIMENSIONS, charNgram: 4 })

function state(id: string, text: string, extra: Partial<LatestMemory> = {}): LatestMemory {
  return {
    id,
    namespace: 'ns',
    type: 'semantic',
    importance: null,
    version: 2,
    event_id: '00000000-0000-4000-8000-000000000001',
    timestamp: TS,
    payload: { text },
    ...extra
  }
}

/** memory.latest records as the decoder hands them to the sink (offsets 0, 1, 2… of partition 0). */
function latestEnvelopes(records: readonly LatestRecord[], host = new RecordingHost()): Envelope<LatestRecord>[] {
  return records.map((r, offset) =>
    envelopeOf(host, JSON.stringify(r.state), {
      topic: 'memory.latest',
      partition: 0,
      offset: BigInt(offset),
      key: r.id
    }).withValue(r)
  )
}

interface StoreCase {
  name: string
  skip: string | false
  make: (t: TestContext) => Promise<VectorStore>
}

/** Why the server PostgreSQL case is skipped, or false: it needs DATABASE_URL and the pgvector extension there. */
async function serverSkip(): Promise<string | false> {
  const url = process.env.DATABASE_URL
  if (!url) return 'DATABASE_URL is not set'
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  try {
    const { rows } = await pool.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'vector'`)
    return rows.length > 0 ? false : 'the server PostgreSQL has no pgvector (npm run stack -- pgvector builds it)'
  } catch (error) {
    return `cannot reach DATABASE_URL: ${(error as Error).message}`
  } finally {
    await pool.end()
  }
}

const stores: StoreCase[] = [
  {
    name: 'pgvector on PGlite',
    skip: false,
    make: async () => new PgvectorStore(await pgliteDatabase(), { hnswM: 12, hnswEfConstruction: 40 })
  },
  {
    name: 'pgvector on a server PostgreSQL',
    skip: await serverSkip(),
    make: async (t) => {
      const schema = `sfm_reindex_${randomBytes(5).toString('hex')}`
      const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 })
      await pool.query(`CREATE SCHEMA "${schema}"`)
      t.after(async () => {
        await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
        await pool.end()
      })
      return new PgvectorStore(pgDatabase({ pool }), { table: `${schema}.memory_vectors` })
    }
  },
  {
    name: 'Qdrant (v1.19 OpenAPI spec server)',
    skip: qdrantSpecAvailable() ? false : NO_QDRANT_SPEC,
    make: async (t) => {
      const server = await new QdrantSpecServer().listen()
      t.after(() => {
        assert.deepEqual(server.violations, [], 'every request matches the spec')
        return server.close()
      })
      return new QdrantStore({ url: server.url, collection: 'reindex', pointsPerRequest: 4 })
    }
  }
]

for (const { name, skip, make } of stores) {
  describe(`reindex sink: ${name}`, { skip }, () => {
    test('re-embeds what the index holds at this version; skips current, newer, absent, deleted, empty', async (t) => {
      const store = await make(t)
      const texts = textCorpus(12, 5)
      // The live vector branch with revision A: m-0..m-9 at version 2, m-8 then deleted at version 3.
      const live = memoryVectorSink({ embedder: embedderA(), store, owns: false })
      await live.open()
      assert.deepEqual(
        await live.write(
          memoryEnvelopes(texts.slice(0, 10).map((text, i) => upsert(`m-${i}`, text, { timestamp: TS, version: 2 })))
        ),
        {}
      )
      assert.deepEqual(await live.write(memoryEnvelopes([remove('m-8', { version: 3, timestamp: TS })])), {})
      await live.close()

      const b = embedderB()
      const sink = reindexSink({ embedder: b, store, progress: new ReindexProgress([], { intervalMs: 0 }) })
      t.after(() => sink.close())
      await sink.open(context)
      const batch: LatestRecord[] = [
        { id: 'm-0', state: state('m-0', texts[0]!) },
        // Written when memory.latest carried milliseconds: the same state as the index's .123456.
        { id: 'm-1', state: state('m-1', texts[1]!, { timestamp: '2026-03-04T05:06:07.123Z' }) },
        { id: 'm-2', state: state('m-2', 'an older record of m-2, superseded in this batch') },
        { id: 'm-2', state: state('m-2', texts[2]!) },
        { id: 'm-3', state: state('m-3', '', { payload: {} }) },
        { id: 'm-4', state: state('m-4', texts[4]!, { version: -1 }) },
        { id: 'm-5', state: state('m-5', texts[5]!) },
        { id: 'm-6', state: state('m-6', texts[6]!) },
        { id: 'm-7', state: state('m-7', texts[7]!) },
        { id: 'm-8', state: state('m-8', texts[8]!) },
        { id: 'm-9', state: state('m-9', texts[9]!, { version: 1 }) },
        { id: 'm-10', state: state('m-10', texts[10]!) },
        { id: 'm-11', state: null }
      ]
      const result = await sink.write(latestEnvelopes(batch), context)
      assert.deepEqual(
        result.failures?.map((f) => f.index),
        [5],
        'the malformed record (version -1) is dead-lettered alone'
      )
      assert.deepEqual(sink.counts, {
        read: 13,
        reembedded: 6, // m-0, m-1, m-2, m-5, m-6, m-7
        inserted: 0,
        updated: 0,
        deleted: 0,
        current: 0,
        newer: 1, // m-9: the index holds version 2
        absent: 2, // m-8 deleted in the index, m-10 never indexed
        tombstones: 1,
        superseded: 1,
        empty: 1, // m-3
        failed: 1
      })

      const points = await store.points(Array.from({ length: 12 }, (_, i) => `m-${i}`))
      for (const i of [0, 1, 2, 5, 6, 7]) {
        const p = points.get(`m-${i}`)!
        assert.equal(p.modelRevision, b.revision, `m-${i} re-embedded`)
        assert.equal(p.version, 2)
        assert.equal(p.micros, 1772600767123456n, `m-${i} keeps its exact fence pair`)
      }
      for (const i of [3, 4, 9]) assert.notEqual(points.get(`m-${i}`)!.modelRevision, b.revision, `m-${i} untouched`)
      assert.ok(!points.has('m-10'), 'a reindex never adds a memory')
      assert.ok(points.get('m-8') === undefined || points.get('m-8')!.deleted, 'nor brings back a deleted one')
      assert.equal(await store.count(), 9)
      const [query] = await b.embed([texts[5]!])
      assert.equal((await store.search(query!, { k: 1 }))[0]?.id, 'm-5')

      // A second pass re-embeds nothing.
      const again = reindexSink({ embedder: b, store, owns: false })
      await again.write(latestEnvelopes(batch), context)
      assert.equal(again.counts.reembedded, 0)
      assert.equal(again.counts.current, 6)
      // Unless every memory is asked for.
      const all = reindexSink({ embedder: b, store, owns: false, all: true })
      await all.write(latestEnvelopes(batch), context)
      assert.equal(all.counts.reembedded, 6)
    })

    test('a newer version the live topology writes between the lookup and the write is never overwritten', async (t) => {
      const store = await make(t)
      const a = embedderA()
      const live = memoryVectorSink({ embedder: a, store, owns: false })
      await live.open()
      await live.write(memoryEnvelopes([upsert('m-0', 'first words', { version: 2 }), upsert('m-1', 'other words')]))
      // The store as the reindex sees it, with the live memory topology writing version 3 of m-0 and deleting m-1
      // after the reindex read the stored state and before its write.
      const racing: VectorStore = {
        kind: store.kind,
        description: store.description,
        open: (dimensions) => store.open(dimensions),
        fences: (ids) => store.fences(ids),
        points: (ids) => store.points(ids),
        write: (upserts, deletes) => store.write(upserts, deletes),
        async reembed(records) {
          await live.write(
            memoryEnvelopes([upsert('m-0', 'newer words', { version: 3 }), remove('m-1', { version: 2 })])
          )
          return store.reembed(records)
        },
        evict: (points) => store.evict(points),
        reinstate: (records) => store.reinstate(records),
        search: (vector, options) => store.search(vector, options),
        count: () => store.count(),
        close: async () => {}
      }
      const sink = reindexSink({ embedder: embedderB(), store: racing, owns: false })
      const result = await sink.write(
        latestEnvelopes([
          { id: 'm-0', state: state('m-0', 'first words', { version: 2, timestamp: '2026-01-01T00:00:00.000000Z' }) },
          { id: 'm-1', state: state('m-1', 'other words', { version: 1, timestamp: '2026-01-01T00:00:00.000000Z' }) }
        ]),
        context
      )
      assert.deepEqual(result, {})
      const points = await store.points(['m-0', 'm-1'])
      assert.equal(points.get('m-0')?.version, 3, 'the newer version stays')
      assert.equal(points.get('m-0')?.modelRevision, a.revision)
      assert.ok(points.get('m-1') === undefined || points.get('m-1')!.deleted, 'the delete stays')
      if (store.kind === 'pgvector') assert.equal(sink.counts.newer, 2, 'both lost the fence at write time')
      await live.close()
      await store.close()
    })

    test('the store fence: reembed replaces equal or older live points only, never inserts or resurrects', async (t) => {
      const store = await make(t)
      const a = embedderA()
      const live = memoryVectorSink({ embedder: a, store, owns: false })
      await live.open()
      await live.write(
        memoryEnvelopes([
          upsert('equal', 'same version'),
          upsert('older', 'older in the index', { version: 1 }),
          upsert('newer', 'newer in the index', { version: 5 }),
          upsert('gone', 'deleted in the index', { version: 1 })
        ])
      )
      await live.write(memoryEnvelopes([remove('gone', { version: 2 })]))
      const [vector] = await embedderB().embed(['re-embedded text'])
      const record = (id: string, version: number): VectorRecord => ({
        id,
        namespace: 'ns',
        type: 'semantic',
        importance: null,
        version,
        micros: 1767225600000000n, // 2026-01-01T00:00:00Z, as upsert() writes
        timestamp: '2026-01-01T00:00:00.000000Z',
        modelRevision: 'B',
        vector: vector!,
        excerpt: 're-embedded text'
      })
      const report = await store.reembed([
        record('equal', 1),
        record('older', 2),
        record('newer', 4),
        record('gone', 3),
        record('absent', 1)
      ])
      if (store.kind === 'pgvector') assert.equal(report.upserts, 2, 'pgvector counts the rows it replaced')
      const points = await store.points(['equal', 'older', 'newer', 'gone', 'absent'])
      assert.equal(points.get('equal')?.modelRevision, 'B')
      assert.equal(points.get('older')?.modelRevision, 'B')
      assert.equal(points.get('older')?.version, 2)
      assert.equal(points.get('newer')?.modelRevision, a.revision, 'a newer point is never replaced')
      assert.equal(points.get('newer')?.version, 5)
      assert.ok(!points.has('absent'), 'reembed never inserts')
      assert.ok(points.get('gone') === undefined || points.get('gone')!.deleted, 'nor resurrects')
      assert.equal(await store.count(), 3)
      await store.close()
    })

    test('fill: inserts what the index lacks, updates older, re-embeds, removes tombstoned; a second pass does nothing', async (t) => {
      const store = await make(t)
      const texts = textCorpus(12, 9)
      const at = (version: number) => ({ timestamp: TS, version })
      // The live vector branch with revision A.
      const live = memoryVectorSink({ embedder: embedderA(), store, owns: false })
      await live.open()
      await live.write(
        memoryEnvelopes([
          upsert('f-0', texts[0]!, at(2)), // same state as the record: re-embedded
          upsert('f-1', 'an older text of f-1', at(1)), // older: updated
          upsert('f-2', 'a newer text of f-2', at(5)), // newer: left
          upsert('f-3', 'f-3 before its delete', at(1)),
          upsert('f-5', texts[5]!, at(2)), // its last record is a tombstone: removed
          upsert('f-7', 'f-7 before its delete', at(1)),
          upsert('f-9', 'f-9 at version 1', at(1))
        ])
      )
      // f-3 deleted after the record's version; f-7 before it (the record re-creates it).
      await live.write(
        memoryEnvelopes([remove('f-3', at(3)), remove('f-7', { ...at(1), timestamp: TS.replace(':07.', ':08.') })])
      )
      await live.close()

      const b = embedderB()
      const sink = reindexSink({ embedder: b, store, fill: true, owns: false })
      const batch: LatestRecord[] = [
        { id: 'f-0', state: state('f-0', texts[0]!) },
        { id: 'f-1', state: state('f-1', texts[1]!) },
        { id: 'f-2', state: state('f-2', texts[2]!) },
        { id: 'f-3', state: state('f-3', texts[3]!) },
        { id: 'f-4', state: state('f-4', texts[4]!) }, // never indexed: inserted
        { id: 'f-5', state: null },
        { id: 'f-6', state: null }, // not in the index: nothing to do
        { id: 'f-7', state: state('f-7', texts[7]!) },
        { id: 'f-8', state: state('f-8', '', { payload: {} }) },
        { id: 'f-9', state: state('f-9', texts[9]!) },
        { id: 'f-9', state: null } // the last record of f-9 decides
      ]
      assert.deepEqual(await sink.write(latestEnvelopes(batch), context), {})
      const qdrant = store.kind === 'qdrant'
      assert.deepEqual(sink.counts, {
        read: 11,
        reembedded: 1, // f-0
        // f-4, f-7 (its tombstone is older than the record); f-3 too on Qdrant, which keeps no tombstone to say that
        // it was deleted after this state (the documented limit).
        inserted: qdrant ? 3 : 2,
        updated: 1, // f-1
        deleted: 2, // f-5, f-9
        current: 0,
        newer: qdrant ? 1 : 2, // f-2; f-3 (deleted at version 3) on pgvector
        absent: 0,
        tombstones: 1, // f-6
        superseded: 1, // f-9's state
        empty: 1, // f-8
        failed: 0
      })
      const points = await store.points(Array.from({ length: 10 }, (_, i) => `f-${i}`))
      for (const i of [0, 1, 4, 7]) {
        const p = points.get(`f-${i}`)
        assert.equal(p?.modelRevision, b.revision, `f-${i} holds the record's state, embedded by B`)
        assert.equal(p?.version, 2)
        assert.equal(p?.deleted, false)
      }
      assert.equal(points.get('f-2')?.version, 5, 'a newer version is never replaced')
      assert.equal(points.get('f-2')?.modelRevision, embedderA().revision)
      if (!qdrant) assert.ok(points.get('f-3')?.deleted, 'a newer delete stays (pgvector keeps tombstones)')
      for (const id of ['f-5', 'f-9']) {
        const p = points.get(id)
        assert.ok(qdrant ? p === undefined : p?.deleted, `${id} deleted (pgvector: a tombstone)`)
      }
      // f-9's tombstone: left by evict at the pair the index held (version 1), raised to the state before the
      // tombstone in the batch (version 2), so a run meeting that state in another batch than the tombstone skips it.
      if (!qdrant) assert.equal(points.get('f-9')?.version, 2)
      for (const id of ['f-6', 'f-8']) assert.equal(points.get(id), undefined, `${id} not in the index`)
      assert.equal(await store.count(), qdrant ? 6 : 5)
      for (const i of [1, 4, 7]) {
        const [query] = await b.embed([texts[i]!])
        assert.equal((await store.search(query!, { k: 1 }))[0]?.id, `f-${i}`, `f-${i}'s own text recalls it`)
      }

      // The same records again: nothing to write.
      const again = reindexSink({ embedder: b, store, fill: true, owns: false })
      assert.deepEqual(await again.write(latestEnvelopes(batch), context), {})
      const c = again.counts
      assert.deepEqual([c.inserted, c.updated, c.reembedded, c.deleted], [0, 0, 0, 0])
      assert.equal(c.current, qdrant ? 5 : 4)
      assert.equal(c.read, c.current + c.newer + c.tombstones + c.superseded + c.empty)
      await store.close()
    })

    test('fill across batches: a deleted memory stays out on the next run, one created again ends at its new state', async (t) => {
      const store = await make(t)
      const qdrant = store.kind === 'qdrant'
      const b = embedderB()
      const fillPass = async (...batches: LatestRecord[][]) => {
        const sink = reindexSink({ embedder: b, store, fill: true, owns: false })
        for (const records of batches) assert.deepEqual(await sink.write(latestEnvelopes(records), context), {})
        return sink.counts
      }
      const written = (c: ReindexCounts) => [c.inserted, c.updated, c.reembedded, c.deleted]

      // h-0 deleted: memory.latest holds [state, tombstone] until compaction, each in its own batch here.
      const h0 = { id: 'h-0', state: state('h-0', 'h-0 before its delete', { version: 1 }) }
      const h0Deleted = { id: 'h-0', state: null }
      assert.deepEqual(written(await fillPass([h0], [h0Deleted])), [1, 0, 0, 1], 'inserted, then deleted')
      const rerun = await fillPass([h0], [h0Deleted])
      if (!qdrant) {
        // The tombstone evict left fences the old state out: nothing is written, the memory never shows.
        assert.deepEqual(written(rerun), [0, 0, 0, 0])
        assert.equal(rerun.newer, 1)
        assert.equal(rerun.tombstones, 1)
      } else assert.deepEqual(written(rerun), [1, 0, 0, 1], 'Qdrant keeps no tombstone: in and out again')
      // k-0 the same, but its state and tombstone first meet in one batch: nothing to delete, yet pgvector keeps a
      // tombstone at the state's pair, so a run that reads them in two batches does not insert the state.
      const k0 = { id: 'k-0', state: state('k-0', 'k-0 before its delete', { version: 1 }) }
      const k0Deleted = { id: 'k-0', state: null }
      const together = await fillPass([k0, k0Deleted])
      assert.deepEqual(written(together), [0, 0, 0, 0])
      assert.deepEqual([together.superseded, together.tombstones], [1, 1])
      assert.deepEqual(written(await fillPass([k0], [k0Deleted])), qdrant ? [1, 0, 0, 1] : [0, 0, 0, 0])
      const ends = await store.points(['h-0', 'k-0'])
      assert.equal(ends.size, qdrant ? 0 : 2, 'Qdrant: absent; pgvector: tombstones')
      for (const [id, p] of ends) assert.ok(p.deleted, `${id} ends deleted`)

      // g-0 deleted and created again: [first life, tombstone, second life]; an earlier run wrote the second life.
      const first = { id: 'g-0', state: state('g-0', 'the first life of g-0', { version: 1 }) }
      const deleted = { id: 'g-0', state: null }
      const second = { id: 'g-0', state: state('g-0', 'the second life of g-0', { version: 3 }) }
      await fillPass([second])
      const counts = await fillPass([first], [deleted], [second])
      // The first life is older than the index (skipped); the tombstone evicts the second, which comes back next.
      assert.deepEqual(written(counts), [1, 0, 0, 1])
      assert.equal(counts.newer, 1)
      const point = (await store.points(['g-0'])).get('g-0')
      assert.equal(point?.version, 3)
      assert.equal(point?.deleted, false)
      assert.equal(point?.modelRevision, b.revision)
      const [query] = await b.embed(['the second life of g-0'])
      assert.equal((await store.search(query!, { k: 1 }))[0]?.id, 'g-0')
      assert.equal(await store.count(), 1)
      await store.close()
    })

    test('evict takes a live point at exactly the pair it was seen at; reinstate undoes it', async (t) => {
      const store = await make(t)
      const pgvector = store.kind === 'pgvector'
      const a = embedderA()
      const live = memoryVectorSink({ embedder: a, store, owns: false })
      await live.open()
      await live.write(
        memoryEnvelopes([
          upsert('e-0', 'e-0 text'),
          upsert('e-1', 'e-1 text'),
          upsert('e-2', 'e-2 text', { version: 2 }),
          upsert('e-3', 'e-3 text')
        ])
      )
      const stored = await store.points(['e-0', 'e-1', 'e-2', 'e-3'])
      // Between the lookup and the delete, the live topology writes version 2 of e-0.
      await live.write(memoryEnvelopes([upsert('e-0', 'e-0 newer text', { version: 2 })]))
      const pairOf = (id: string) => ({ id, version: stored.get(id)!.version, micros: stored.get(id)!.micros })
      const report = await store.evict([pairOf('e-0'), pairOf('e-1'), { ...pairOf('e-2'), version: 1 }, pairOf('e-3')])
      if (pgvector) assert.equal(report.deletes, 2, 'pgvector counts the rows it deleted')
      let after = await store.points(['e-0', 'e-1', 'e-2', 'e-3'])
      assert.equal(after.get('e-0')?.version, 2, 'written meanwhile: stays')
      assert.equal(after.get('e-0')?.deleted, false)
      assert.equal(after.get('e-2')?.version, 2, 'another pair: stays')
      if (pgvector) {
        const tombstone = after.get('e-1')
        assert.equal(tombstone?.deleted, true, 'pgvector: a tombstone…')
        assert.equal(tombstone?.version, stored.get('e-1')!.version, '…at the pair it held')
        assert.equal(tombstone?.micros, stored.get('e-1')!.micros)
      } else assert.equal(after.get('e-1'), undefined, 'Qdrant: removed')
      assert.equal(await store.count(), 2)

      // e-3 then deleted for real by the live topology (version 2): a reinstate of its old state must not undo that.
      await live.write(memoryEnvelopes([remove('e-3', { version: 2 })]))
      const [vector] = await embedderB().embed(['e-1 text'])
      const back = (id: string): VectorRecord => ({
        id,
        namespace: 'ns',
        type: 'semantic',
        importance: null,
        version: 1,
        micros: 1767225600000000n, // 2026-01-01T00:00:00Z, as upsert() writes
        timestamp: '2026-01-01T00:00:00.000000Z',
        modelRevision: 'B',
        vector: vector!,
        excerpt: 'e-1 text'
      })
      const reinstated = await store.reinstate([back('e-1'), back('e-3')])
      after = await store.points(['e-1', 'e-3'])
      assert.equal(after.get('e-1')?.deleted, false, 'e-1 is back')
      assert.equal(after.get('e-1')?.modelRevision, 'B')
      if (pgvector) {
        assert.equal(reinstated.upserts, 1)
        assert.equal(after.get('e-3')?.deleted, true, 'a real, newer delete stays')
      }
      await live.close()
      await store.close()
    })
  })
}

test('progress: offsets done / total against the spans the pass started with, records/s, ETA, counts', () => {
  let now = 0
  const lines: string[] = []
  const logger = { info: (line: string) => lines.push(line) } as unknown as Logger
  const progress = new ReindexProgress(
    [
      { topic: 'memory.latest', partition: 0, start: 10n, end: 110n },
      { topic: 'memory.latest', partition: 1, start: 0n, end: 100n }
    ],
    { intervalMs: 0, logger, now: () => now }
  )
  assert.equal(progress.total, 200n)
  const origin = (partition: number, offset: bigint) => ({
    topic: 'memory.latest',
    partition,
    offset,
    leaderEpoch: 0,
    timestamp: 0n
  })
  now = 2_000
  progress.record([origin(0, 59n), origin(1, 49n)], { read: 100, reembedded: 90, current: 10 })
  assert.equal(progress.done, 100n)
  assert.equal(
    progress.line(),
    'reindex: 100/200 offsets (50.0%) · 50 records/s · ETA 2.0 s · reembedded 90 · current 10'
  )
  // A record appended after the pass started is read, but the pass is measured against its start.
  now = 4_000
  progress.record([origin(0, 200n), origin(1, 99n)], { read: 60, reembedded: 60 })
  assert.equal(progress.done, 200n)
  assert.match(progress.line(), /^reindex: 200\/200 offsets \(100\.0%\) · 30 records\/s · reembedded 150 · current 10$/)
  progress.stop()
  assert.match(lines.at(-1)!, /^reindex pass: 160 records in .* 200\/200 offsets · reembedded 150 · current 10$/)
})

test('progress of a fill: inserted, updated, reembedded, deleted always shown, and the skipped total with reasons', () => {
  const lines: string[] = []
  const logger = { info: (line: string) => lines.push(line) } as unknown as Logger
  const progress = new ReindexProgress([{ topic: 'memory.latest', partition: 0, start: 0n, end: 10n }], {
    intervalMs: 0,
    logger,
    now: () => 1_000,
    fill: true
  })
  const origin = { topic: 'memory.latest', partition: 0, offset: 9n, leaderEpoch: 0, timestamp: 0n }
  progress.record([origin], { read: 10, inserted: 6, deleted: 1, newer: 1, tombstones: 2 })
  assert.equal(progress.skipped, 3)
  assert.match(
    progress.line(),
    / · inserted 6 · updated 0 · reembedded 0 · deleted 1 · skipped 3 \(newer 1, tombstones 2\)$/
  )
  progress.stop()
  assert.match(
    lines.at(-1)!,
    /^reindex pass: 10 records .* 10\/10 offsets · inserted 6 · updated 0 · reembedded 0 · deleted 1 · skipped 3 \(newer 1, tombstones 2\)$/
  )
})

test('a reindex without fill that finds none of its memories in the index says how to fill it', async () => {
  const lines: string[] = []
  const logger: Logger = { debug() {}, info() {}, warn: (line) => lines.push(line), error() {} }
  const store = new PgvectorStore(await pgliteDatabase(), { hnswM: 12, hnswEfConstruction: 40 })
  const sink = reindexSink({ embedder: embedderB(), store, logger })
  await sink.open(context)
  await sink.write(latestEnvelopes([{ id: 'n-0', state: state('n-0', 'a memory of a new, empty table') }]), context)
  assert.equal(sink.counts.absent, 1)
  await sink.close()
  assert.equal(lines.length, 1)
  assert.match(lines[0]!, /none of the 1 memories read is in .*SFM_REINDEX_FILL=true builds the index/)
})
