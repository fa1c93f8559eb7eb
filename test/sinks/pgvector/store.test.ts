import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { LexicalEmbedder } from '../../../src/embedders/lexical.ts'
import { ErrorKinds, kindOf } from '../../../src/errors.ts'
import { PgvectorStore, pgDatabase, pgliteDatabase } from '../../../src/sinks/pgvector/index.ts'
import { fold } from '../../../src/sinks/postgres/index.ts'
import { vectorSink } from '../../../src/sinks/vector/index.ts'
import { RecordingHost } from '../../helpers/envelopes.ts'
import { generateHistory } from '../../helpers/memory-history.ts'
import { memoryEnvelopes, remove, textCorpus, upsert } from '../../helpers/vectors.ts'

async function pgliteSink(t: { after: (fn: () => Promise<void>) => void }, dimensions = 384) {
  // The HNSW parameters of the embedded store (src/sinks/vector/select.ts).
  const store = new PgvectorStore(await pgliteDatabase(), { hnswM: 12, hnswEfConstruction: 40 })
  const embedder = new LexicalEmbedder({ dimensions })
  const sink = vectorSink({ embedder, store })
  await sink.open()
  t.after(() => sink.close())
  return { sink, store, embedder }
}

describe('pgvector store on PGlite', () => {
  test('5,000 memories: each one’s own text recalls it first for ≥ 99% of queries', { timeout: 300_000 }, async (t) => {
    const { sink, store, embedder } = await pgliteSink(t)
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

  test('deletes disappear from results; a stale upsert after the delete does not resurrect', async (t) => {
    const { sink, store, embedder } = await pgliteSink(t)
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
    const { sink, store } = await pgliteSink(t, 64)
    const history = generateHistory({ ids: 200, eventsPerId: 6, idPrefix: 'h-', seed: 5 })
    for (let i = 0; i < history.length; i += 97) {
      const result = await sink.write(memoryEnvelopes(history.slice(i, i + 97)))
      assert.deepEqual(result, {})
    }
    const expected = fold(history)
    const rows = await store.database.query<{ id: string; version: string; excerpt: string | null; deleted: boolean }>(
      'SELECT id, version::text AS version, excerpt, deleted_at IS NOT NULL AS deleted FROM memory_vectors'
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
    const { sink, store } = await pgliteSink(t, 8)
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
    const db = await pgliteDatabase()
    t.after(() => db.close())
    await new PgvectorStore(db).open(16)
    await assert.rejects(new PgvectorStore(db).open(32), /holds vectors of 16 dimensions, the embedder makes 32/)
  })
})

describe('pgvector store on a server PostgreSQL', {
  skip: process.env.DATABASE_URL ? false : 'DATABASE_URL is not set'
}, () => {
  test('without the pgvector extension, open fails fatally and says what to install', async (t) => {
    const db = pgDatabase({ connectionString: process.env.DATABASE_URL! })
    t.after(() => db.close())
    const available = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'vector'`
    )
    if (available[0]!.n > 0) {
      t.skip('the server has pgvector: covered by the PGlite tests with the same SQL')
      return
    }
    const error = await new PgvectorStore(db, { table: 'memory_vectors_absent' }).open(8).catch((e: unknown) => e)
    assert.equal(kindOf(error), ErrorKinds.FATAL)
    assert.match(String(error), /pgvector extension is not available/)
  })
})
