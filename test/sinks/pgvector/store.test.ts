import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, type TestContext, test } from 'node:test'
import pg from 'pg'
import { LexicalEmbedder } from '../../../src/embedders/lexical.ts'
import { ErrorKinds, kindOf } from '../../../src/errors.ts'
import { createLogger } from '../../../src/logger.ts'
import { fold } from '../../../src/memory/fold.ts'
import { memoryVectorSink } from '../../../src/memory/vectors/sink.ts'
import { PgvectorIndexes, PgvectorStore, pgDatabase, pgliteDatabase } from '../../../src/sinks/pgvector/index.ts'
import { vectorStoreFromEnv } from '../../../src/sinks/vector/select.ts'
import { RecordingHost } from '../../helpers/envelopes.ts'
import { generateHistory } from '../../helpers/memory-history.ts'
import { serverPgvectorSkip } from '../../helpers/pgvector.ts'
import { cosine, memoryEnvelopes, remove, textCorpus, upsert } from '../../helpers/vectors.ts'
import { DatabaseProxy, databaseUrl, testSchema } from '../postgres/helpers.ts'

const quiet = createLogger('test', 'error')

/** Where one test's vectors live: a store on a fresh table of its own (not opened yet; the caller closes it). */
interface Backend {
  store(t: TestContext): Promise<{ store: PgvectorStore; schema: string; table: string }>
}

/** The embedded store: an in-memory PGlite per test, with the HNSW parameters of src/sinks/vector/select.ts. */
const pglite: Backend = {
  async store() {
    const store = new PgvectorStore(await pgliteDatabase(), { hnswM: 12, hnswEfConstruction: 40 })
    return { store, schema: 'public', table: 'memory_vectors' }
  }
}

/** A store made the way the topology makes it: VECTOR_DATABASE_URL and SFM_VECTOR_TABLE, in a schema per test. */
async function serverStore(
  t: TestContext,
  url: string
): Promise<{ store: PgvectorStore; schema: string; table: string }> {
  const { schema } = await testSchema(t, 'sfm_pgv')
  const table = `${schema}.memory_vectors`
  const store = await vectorStoreFromEnv({ VECTOR_DATABASE_URL: url, SFM_VECTOR_TABLE: table }, quiet)
  assert.ok(store instanceof PgvectorStore, `VECTOR_DATABASE_URL selects pgvector, got ${store.kind}`)
  return { store, schema, table }
}

const server: Backend = { store: (t) => serverStore(t, databaseUrl()) }

async function openSink(t: TestContext, backend: Backend, dimensions = 384) {
  const { store, schema, table } = await backend.store(t)
  const embedder = new LexicalEmbedder({ dimensions })
  const sink = memoryVectorSink({ embedder, store, logger: quiet })
  await sink.open()
  t.after(() => sink.close())
  return { sink, store, embedder, schema, table }
}

/** The behaviour both backends must show: the same SQL on PGlite and on a server PostgreSQL with the extension. */
function behaviour(backend: Backend): void {
  test('open creates the extension, the table and its HNSW index (cosine)', async (t) => {
    const { store, schema } = await openSink(t, backend, 16)
    const [extension] = await store.database.query<{ v: string }>(
      `SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'`
    )
    assert.match(extension?.v ?? '', /^0\.(8|9|\d\d)\./, 'pgvector 0.8 or newer (iterative index scans)')
    const indexes = await store.database.query<{ indexdef: string }>(
      `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'memory_vectors'`,
      [schema]
    )
    assert.ok(
      indexes.some((i) => /USING hnsw \(embedding vector_cosine_ops\)/.test(i.indexdef)),
      indexes.map((i) => i.indexdef).join('\n')
    )
    await store.open(16) // idempotent: a restarted runner opens the same table again
  })

  test('vectors travel as binary parameters and come back bit for bit (write, reembed, search); NaN is refused', async (t) => {
    const { store, table } = await openSink(t, backend, 8)
    // Extremes of float32: the text form needed nine significant digits for these; binary carries them exactly.
    const vectors = [
      Float32Array.of(1, -0, 3.4028234663852886e38, -1.401298464324817e-45, 0, 0, 0, 1),
      Float32Array.of(1.1754943508222875e-38, 0.1, -0.30000001192092896, 123456.7890625, 1, 2, 3, 4),
      Float32Array.of(0.5, 0.25, -0.125, 2, -1, -2, -3, -4)
    ]
    const record = (id: string, vector: Float32Array, version = 1) => ({
      id,
      namespace: 'ns',
      type: 'semantic',
      importance: null,
      version,
      micros: 1_700_000_000_000_000n,
      timestamp: '2023-11-14T22:13:20.000000Z',
      modelRevision: 'r1',
      vector,
      excerpt: `text ${id}`
    })
    const stored = async (id: string) => {
      const [row] = await store.database.query<{ e: number[] }>(
        `SELECT embedding::real[] AS e FROM ${table} WHERE id = $1`,
        [id]
      )
      return row?.e
    }
    // One batch with an upsert and a delete: the delete's element of the vector[] is NULL.
    const report = await store.write(
      vectors.map((v, i) => record(`v${i}`, v)),
      [{ id: 'gone', namespace: 'ns', version: 1, micros: 1n, timestamp: '1970-01-01T00:00:00.000001Z' }]
    )
    assert.deepEqual(report, { upserts: 3, deletes: 1, requests: 1 })
    for (const [i, v] of vectors.entries()) {
      assert.deepEqual(Float32Array.from((await stored(`v${i}`)) ?? []), v, `v${i} round-trips exactly`)
    }
    assert.equal(await stored('gone'), null, 'a tombstone has no vector')
    // reembed writes through the UPDATE path: the same bytes must land.
    const replacement = Float32Array.of(-2, 0.75, 1e-30, 7, 0, 0.5, 0, 9)
    assert.equal((await store.reembed([record('v2', replacement)])).upserts, 1)
    assert.deepEqual(Float32Array.from((await stored('v2')) ?? []), replacement)
    // The query vector is binary too: the stored vector itself is its own nearest neighbour at cosine score 1.
    const [hit] = await store.search(vectors[1]!, { k: 1 })
    assert.equal(hit?.id, 'v1')
    assert.ok(Math.abs((hit?.score ?? 0) - 1) < 1e-6, `score ${hit?.score}`)
    // pgvector refuses NaN in binary input as in text: a database refusal, not a silent write.
    await assert.rejects(store.write([record('nan', Float32Array.of(Number.NaN, 0, 0, 1, 0, 0, 0, 0), 2)], []), /NaN/)
  })

  test('5,000 memories: each one’s own text recalls it first for ≥ 99% of queries', { timeout: 300_000 }, async (t) => {
    const { sink, store, embedder } = await openSink(t, backend)
    const texts = textCorpus(5000, 42)
    const events = texts.map((text, i) => upsert(`m-${i}`, text, { namespace: i % 2 ? 'odd' : 'even' }))
    let started = performance.now()
    for (let i = 0; i < events.length; i += 500) {
      const result = await sink.write(memoryEnvelopes(events.slice(i, i + 500)))
      assert.deepEqual(result, {})
    }
    const indexSeconds = (performance.now() - started) / 1000
    assert.equal(await store.count(), 5000)

    started = performance.now()
    let first = 0
    const vectors = await embedder.embed(texts)
    for (let i = 0; i < texts.length; i++) {
      const [hit] = await store.search(vectors[i]!, { k: 1 })
      if (hit?.id === `m-${i}`) first++
    }
    const searchSeconds = (performance.now() - started) / 1000
    t.diagnostic(
      `indexed 5000 in ${indexSeconds.toFixed(1)} s (${(5000 / indexSeconds).toFixed(0)}/s); ` +
        `recall@1 ${(first / 50).toFixed(2)}%; ${(5000 / searchSeconds).toFixed(0)} searches/s`
    )
    assert.ok(first >= 4950, `self-recall ${first}/5000`)

    // A filter keeps the k nearest inside the namespace (iterative index scan), with the excerpt and metadata.
    const hits = await store.search(vectors[7]!, { k: 5, namespace: 'odd' })
    assert.equal(hits.length, 5)
    assert.equal(hits[0]!.id, 'm-7')
    assert.ok(hits.every((h) => h.namespace === 'odd'))
    assert.equal(hits[0]!.excerpt, texts[7])
    assert.equal(hits[0]!.modelRevision, embedder.revision)
    assert.ok(Math.abs(hits[0]!.score - 1) < 1e-5)
    for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1]!.score >= hits[i]!.score)
  })

  test('index exact: no HNSW index and the true nearest neighbours; hnsw builds it over the rows, exact drops it', async (t) => {
    const { sink, store, embedder, schema, table } = await openSink(t, backend, 64)
    const texts = textCorpus(400, 9)
    await sink.write(memoryEnvelopes(texts.map((text, i) => upsert(`x-${i}`, text, { namespace: i % 3 ? 'a' : 'b' }))))
    const hnswIndexes = async () =>
      (
        await store.database.query<{ indexdef: string }>(
          `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'memory_vectors'`,
          [schema]
        )
      ).filter((i) => /USING hnsw/.test(i.indexdef)).length
    assert.equal(await hnswIndexes(), 1, 'the store under test was opened with an HNSW index')

    // The same table reopened exact (as a runner restarted with SFM_VECTOR_INDEX=exact): the index goes.
    const exact = new PgvectorStore(store.database, { table, index: PgvectorIndexes.EXACT })
    assert.match(exact.description, /exact search/)
    await exact.open(64)
    assert.equal(await hnswIndexes(), 0)
    // Exact means exact: the k nearest by cosine, computed here over every stored vector, in order.
    const vectors = await embedder.embed(texts)
    for (const q of [0, 17, 123, 399]) {
      const query = await embedder.embed([`${texts[q]} and something else entirely`])
      const expected = vectors
        .map((v, i) => ({ id: `x-${i}`, score: cosine(query[0]!, v), ns: i % 3 ? 'a' : 'b' }))
        .filter((h) => h.ns === 'b')
        .sort((a, b) => b.score - a.score)
        .slice(0, 5)
      const hits = await exact.search(query[0]!, { k: 5, namespace: 'b' })
      assert.deepEqual(
        hits.map((h) => h.id),
        expected.map((h) => h.id),
        `query ${q}`
      )
      for (const [i, h] of hits.entries()) assert.ok(Math.abs(h.score - expected[i]!.score) < 1e-5)
    }
    // Writes keep working without the index.
    await exact.write(
      [],
      [{ id: 'x-0', namespace: 'a', version: 9, micros: 1n, timestamp: '1970-01-01T00:00:00.000001Z' }]
    )
    assert.equal(await exact.count(), 399)

    // Back to hnsw: open builds the index over the rows already there, and searches use it.
    const hnsw = new PgvectorStore(store.database, {
      table,
      index: PgvectorIndexes.HNSW,
      hnswM: 12,
      hnswEfConstruction: 40
    })
    await hnsw.open(64)
    assert.equal(await hnswIndexes(), 1)
    const [hit] = await hnsw.search(vectors[123]!, { k: 1 })
    assert.equal(hit?.id, 'x-123')
    assert.throws(() => new PgvectorStore(store.database, { index: 'ivf' as never }), /index must be hnsw or exact/)
  })

  test('deletes disappear from results; a stale upsert after the delete does not resurrect', async (t) => {
    const { sink, store, embedder } = await openSink(t, backend)
    const texts = textCorpus(50, 3)
    await sink.write(memoryEnvelopes(texts.map((text, i) => upsert(`d-${i}`, text, { version: 2 }))))
    await sink.write(memoryEnvelopes([remove('d-1', { version: 3 }), remove('d-2', { version: 3 })]))
    // Older than the delete: fenced.
    await sink.write(memoryEnvelopes([upsert('d-1', texts[1]!, { version: 2, timestamp: '2026-01-02T00:00:00Z' })]))
    assert.equal(await store.count(), 48)
    for (const i of [1, 2]) {
      const [vector] = await embedder.embed([texts[i]!])
      const hits = await store.search(vector!, { k: 10 })
      assert.ok(!hits.some((h) => h.id === `d-${i}`), `d-${i} is gone`)
    }
    // A newer upsert re-creates it.
    await sink.write(memoryEnvelopes([upsert('d-1', 'brand new words here', { version: 4 })]))
    const [vector] = await embedder.embed(['brand new words here'])
    assert.equal((await store.search(vector!, { k: 1 }))[0]?.id, 'd-1')
  })

  test('a duplicated, reordered history leaves the newest version of each memory indexed', async (t) => {
    const { sink, store, table } = await openSink(t, backend, 64)
    const history = generateHistory({ ids: 200, eventsPerId: 6, idPrefix: 'h-', seed: 5 })
    for (let i = 0; i < history.length; i += 97) {
      const result = await sink.write(memoryEnvelopes(history.slice(i, i + 97)))
      assert.deepEqual(result, {})
    }
    const expected = fold(history)
    const rows = await store.database.query<{ id: string; version: string; excerpt: string | null; deleted: boolean }>(
      `SELECT id, version::text AS version, excerpt, deleted_at IS NOT NULL AS deleted FROM ${table}`
    )
    assert.equal(rows.length, expected.size)
    for (const row of rows) {
      const want = expected.get(row.id)!
      assert.equal(row.deleted, want.deletedAt !== null, `deleted state of ${row.id}`)
      assert.equal(Number(row.version), want.version, `version of ${row.id}`)
      if (!row.deleted) assert.equal(row.excerpt, (want.payload as { text: string }).text.replace(/\s+/g, ' ').trim())
    }
    assert.equal(await store.count(), [...expected.values()].filter((r) => r.deletedAt === null).length)
    assert.ok(sink.counts.skipped > 0, 'stale and duplicate events were skipped before embedding')
  })

  test('carried embeddings are used; wrong dimensions and nothing to embed go to the DLQ alone', async (t) => {
    const { sink, store } = await openSink(t, backend, 8)
    const host = new RecordingHost()
    const own = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    const batch = memoryEnvelopes(
      [
        upsert('ok', 'plain text'),
        { ...upsert('carried', 'ignored for the vector'), embedding: own, model_revision: 'my-model' },
        { ...upsert('short', 'x'), embedding: [1, 2, 3] },
        { ...upsert('empty', ''), payload: { text: '   ' } },
        { ...upsert('nothing', ''), payload: {} },
        { ...upsert('json', ''), payload: { b: 1, a: ['x', 'y'] } }
      ],
      host
    )
    const result = await sink.write(batch)
    const failed = (result.failures ?? []).map((f) => ({
      index: f.index,
      kind: kindOf(f.error),
      message: String(f.error)
    }))
    assert.deepEqual(
      failed.map((f) => [f.index, f.kind]),
      [
        [2, ErrorKinds.POISON],
        [3, ErrorKinds.POISON],
        [4, ErrorKinds.POISON]
      ]
    )
    assert.match(failed[0]!.message, /embedding has 3 dimensions, the vector index has 8/)
    assert.match(failed[1]!.message, /nothing to embed/)
    assert.equal(await store.count(), 3)
    const hits = await store.search(new Float32Array(own), { k: 1 })
    assert.equal(hits[0]?.id, 'carried')
    assert.equal(hits[0]?.modelRevision, 'my-model')
    assert.ok(Math.abs(hits[0]!.score - 1) < 1e-5)
  })

  test('a table made for other dimensions is refused with a clear message', async (t) => {
    const { store, table } = await backend.store(t)
    t.after(() => store.close())
    await store.open(16)
    await assert.rejects(
      new PgvectorStore(store.database, { table }).open(32),
      /holds vectors of 16 dimensions, the embedder makes 32/
    )
  })
}

describe('pgvector store on PGlite', () => behaviour(pglite))

const serverSkip = await serverPgvectorSkip()

describe('pgvector store on a server PostgreSQL with the extension', { skip: serverSkip }, () => {
  behaviour(server)

  test('in a database without it, open creates the extension (no restart of the server needed)', async (t) => {
    const url = databaseUrl()
    const name = `sfm_pgv_${randomBytes(6).toString('hex')}`
    const admin = new pg.Pool({ connectionString: url, max: 1 })
    t.after(async () => {
      await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
      await admin.end()
    })
    await admin.query(`CREATE DATABASE "${name}"`)
    const fresh = new URL(url)
    fresh.pathname = `/${name}`
    const store = await vectorStoreFromEnv({ VECTOR_DATABASE_URL: fresh.toString() }, quiet)
    assert.ok(store instanceof PgvectorStore)
    t.after(() => store.close())
    const before = await store.database.query(`SELECT 1 FROM pg_extension WHERE extname = 'vector'`)
    assert.equal(before.length, 0)
    await store.open(8)
    const [after] = await store.database.query<{ v: string }>(
      `SELECT extversion AS v FROM pg_extension WHERE extname = 'vector'`
    )
    assert.ok(after !== undefined, 'the extension was created')
    assert.equal(await store.count(), 0)
  })

  test('store down (unreachable, then gone after open): writes are retriable and held; the retry applies them', async (t) => {
    const url = databaseUrl()
    const proxy = new DatabaseProxy(url)
    await proxy.start()
    await proxy.stop() // its port now refuses connections
    t.after(() => proxy.stop())
    const { store, table } = await serverStore(t, proxy.url(url))
    const direct = new pg.Pool({ connectionString: url, max: 1 })
    t.after(() => direct.end())
    const count = async () => {
      const [row] = (
        await direct.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE deleted_at IS NULL`)
      ).rows
      return row?.n
    }

    await assert.rejects(store.open(16), (error: unknown) => kindOf(error) === ErrorKinds.RETRIABLE)
    const sink = memoryVectorSink({ embedder: new LexicalEmbedder({ dimensions: 16 }), store, logger: quiet })
    t.after(() => sink.close())
    await sink.open() // an outage at start is not a configuration error: the runner starts, writes wait
    const first = memoryEnvelopes([upsert('a', 'alpha words'), upsert('b', 'beta words')])
    await assert.rejects(sink.write(first), (error: unknown) => kindOf(error) === ErrorKinds.RETRIABLE)

    await proxy.start()
    assert.deepEqual(await sink.write(first), {})
    assert.equal(await count(), 2)

    await proxy.stop()
    const second = memoryEnvelopes([upsert('c', 'gamma words'), remove('a', { version: 2 })])
    for (let i = 0; i < 2; i++) {
      await assert.rejects(sink.write(second), (error: unknown) => kindOf(error) === ErrorKinds.RETRIABLE)
    }
    assert.equal(await count(), 2, 'nothing of the held batch was written (a still live, no c)')
    await proxy.start()
    assert.deepEqual(await sink.write(second), {})
    assert.equal(await store.count(), 2, 'b and c; a is a tombstone')
  })
})

describe('pgvector store on a server PostgreSQL without the extension', {
  skip: process.env.DATABASE_URL ? false : 'DATABASE_URL is not set'
}, () => {
  test('without the pgvector extension, open fails fatally and says what to install', async (t) => {
    const db = pgDatabase({ connectionString: process.env.DATABASE_URL! })
    t.after(() => db.close())
    const available = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'vector'`
    )
    if (available[0]!.n > 0) {
      t.skip('the server has pgvector: covered by the suite "with the extension" above')
      return
    }
    const error = await new PgvectorStore(db, { table: 'memory_vectors_absent' }).open(8).catch((e: unknown) => e)
    assert.equal(kindOf(error), ErrorKinds.FATAL)
    assert.match(String(error), /pgvector extension is not available/)
  })
})
