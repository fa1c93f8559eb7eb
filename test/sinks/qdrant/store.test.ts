import assert from 'node:assert/strict'
import { describe, type TestContext, test } from 'node:test'
import { LexicalEmbedder } from '../../../src/embedders/lexical.ts'
import { ErrorCodes, ErrorKinds, kindOf, SfmError } from '../../../src/errors.ts'
import { memoryVectorSink } from '../../../src/memory/vectors/sink.ts'
import { pointId, QdrantStore, type QdrantStoreInput, uuidv5 } from '../../../src/sinks/qdrant/index.ts'
import { uniqueName } from '../../helpers/kafka.ts'
import { NO_QDRANT_SPEC, QdrantSpecServer, qdrantSpecAvailable } from '../../helpers/qdrant-spec-server.ts'
import { memoryEnvelopes, remove, textCorpus, upsert } from '../../helpers/vectors.ts'

if (!qdrantSpecAvailable()) console.log(`# skipping the Qdrant contract tests: ${NO_QDRANT_SPEC}`)

test('point ids are RFC 9562 UUIDv5', () => {
  // The RFC's own example: the DNS namespace and "www.example.com".
  const dns = Buffer.from('6ba7b8109dad11d180b400c04fd430c8', 'hex')
  assert.equal(uuidv5('www.example.com', dns), '2ed6657d-e927-568b-95e1-2665a8aea6a2')
  assert.equal(pointId('mem-1'), pointId('mem-1'))
  assert.notEqual(pointId('mem-1'), pointId('mem-2'))
  assert.match(pointId('ü/ß 🎉'), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
})

async function serve(t: TestContext) {
  const server = await new QdrantSpecServer().listen()
  t.after(() => server.close())
  return server
}

function qdrantSink(t: TestContext, input: QdrantStoreInput, dimensions = 32, skipStale = true) {
  const store = new QdrantStore({ pointsPerRequest: 64, maxParallelRequests: 2, ...input })
  const embedder = new LexicalEmbedder({ dimensions })
  const sink = memoryVectorSink({ embedder, store, skipStale })
  t.after(() => sink.close())
  return { sink, store, embedder }
}

describe('Qdrant sink against the Qdrant v1.19 OpenAPI spec', {
  skip: qdrantSpecAvailable() ? false : NO_QDRANT_SPEC
}, () => {
  test('ensures the collection once, upserts in batches with wait=true, deletes, and searches', async (t) => {
    const server = await serve(t)
    const { sink, store, embedder } = qdrantSink(t, { url: server.url, collection: 'mem' })
    const texts = textCorpus(300, 9)
    const result = await sink.write(
      memoryEnvelopes(texts.map((text, i) => upsert(`q-${i}`, text, { namespace: i % 3 ? 'a' : 'b' })))
    )
    assert.deepEqual(result, {})
    assert.deepEqual(server.violations, [])
    assert.deepEqual(server.operations().slice(0, 5), [
      'collection_exists',
      'create_collection',
      'get_collection',
      'create_field_index',
      'create_field_index'
    ])
    const create = server.requests.find((r) => r.operation === 'create_collection')!
    assert.deepEqual(create.body, { vectors: { size: 32, distance: 'Cosine' } })
    assert.deepEqual(
      server.requests.filter((r) => r.operation === 'create_field_index').map((r) => r.body),
      [
        { field_name: 'namespace', field_schema: 'keyword' },
        { field_name: 'type', field_schema: 'keyword' }
      ]
    )
    const upserts = server.requests.filter((r) => r.operation === 'upsert_points')
    assert.equal(upserts.length, 5, '300 points in requests of at most 64')
    for (const u of upserts) {
      assert.equal(u.query.wait, 'true')
      const body = u.body as { points: Array<{ id: string; payload: Record<string, unknown> }>; update_filter: unknown }
      assert.ok(body.points.length <= 64 && body.points.length > 0)
      assert.ok(body.update_filter, 'every upsert carries the fence')
      for (const p of body.points) {
        assert.equal(p.id, pointId(p.payload.id as string))
        assert.deepEqual(Object.keys(p.payload).sort(), [
          'excerpt',
          'id',
          'importance',
          'model_revision',
          'namespace',
          'timestamp',
          'ts_micros',
          'type',
          'version'
        ])
        assert.equal(p.payload.model_revision, embedder.revision)
      }
    }
    assert.equal(server.collections.get('mem')!.points.size, 300)

    // Search: a memory's own text finds it first; the namespace filter holds.
    const [vector] = await embedder.embed([texts[4]!])
    const hits = await store.search(vector!, { k: 3, namespace: 'a' })
    assert.equal(hits[0]?.id, 'q-4')
    assert.equal(hits[0]?.excerpt, texts[4])
    assert.ok(hits.every((h) => h.namespace === 'a'))

    // Deletes remove the points, fenced; the collection is not created again by later writes.
    server.requests.length = 0
    await sink.write(memoryEnvelopes([remove('q-1', { version: 2 }), remove('q-2', { version: 2 })]))
    assert.deepEqual(server.violations, [])
    assert.deepEqual(server.operations(), ['get_points', 'delete_points'])
    const del = server.requests[1]!
    assert.equal(del.query.wait, 'true')
    assert.ok((del.body as { filter?: unknown }).filter, 'the delete selects by the fence filter')
    assert.equal(server.collections.get('mem')!.points.size, 298)
    assert.equal(await store.count(), 298)
    assert.ok(!(await store.search(vector!, { k: 300 })).some((h) => h.id === 'q-1' || h.id === 'q-2'))
  })

  test('the test server refuses what the spec forbids (the validation is not vacuous)', async (t) => {
    const server = await serve(t)
    const put = (path: string, body: unknown, method = 'PUT') =>
      fetch(`${server.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body)
      })
    assert.equal((await put('/collections/x', { vectors: { size: 4, distance: 'Cosine' } })).status, 200)
    assert.equal((await put('/collections/x', { vectors: { size: 0, distance: 'Cosine' } })).status, 400)
    assert.equal((await put('/collections/x', { vectors: { size: 4, distance: 'Cosinus' } })).status, 400)
    assert.equal(
      (await put('/collections/x/points?wait=true', { points: [{ id: 'not-a-uuid', vector: [1, 0, 0, 0] }] })).status,
      400
    )
    assert.equal((await put('/collections/x/points?wait=maybe', { points: [] })).status, 400)
    assert.equal((await put('/collections/x/points/delete?wait=true', { nothing: true }, 'POST')).status, 400)
    assert.equal((await put('/collections/x/no-such-thing', {})).status, 400)
    assert.equal(server.violations.length, 6)
    assert.equal(
      (await put('/collections/x/points?wait=true', { points: [{ id: 7, vector: [1, 0, 0, 0] }] })).status,
      200
    )
    assert.equal(server.violations.length, 6)
  })

  test('the fence holds server-side: a stale upsert does not overwrite a newer point', async (t) => {
    const server = await serve(t)
    // skipStale off: the sink sends the stale point, and only update_filter can stop it.
    const { sink, embedder, store } = qdrantSink(t, { url: server.url, collection: 'fence' }, 32, false)
    await sink.write(memoryEnvelopes([upsert('f', 'newest words', { version: 5 })]))
    await sink.write(memoryEnvelopes([upsert('f', 'stale words', { version: 4 })]))
    await sink.write(
      memoryEnvelopes([upsert('f', 'same version earlier time', { version: 5, timestamp: '2025-01-01T00:00:00Z' })])
    )
    await sink.write(
      memoryEnvelopes([
        upsert('g', 'first', { version: 1 }),
        upsert('g', 'second', { version: 1, timestamp: '2026-02-01T00:00:00Z' })
      ])
    )
    assert.deepEqual(server.violations, [])
    const points = server.collections.get('fence')!.points
    assert.equal(points.get(pointId('f'))!.payload.excerpt, 'newest words')
    assert.equal(points.get(pointId('g'))!.payload.excerpt, 'second', 'the in-batch reduce keeps the later timestamp')
    // A newer one passes.
    await sink.write(memoryEnvelopes([upsert('f', 'even newer', { version: 6 })]))
    assert.equal(points.get(pointId('f'))!.payload.excerpt, 'even newer')
    const [v] = await embedder.embed(['even newer'])
    assert.equal((await store.search(v!, { k: 1 }))[0]?.version, 6)
  })

  test('an existing collection is reused; other dimensions are refused with a clear message', async (t) => {
    const server = await serve(t)
    const first = qdrantSink(t, { url: server.url, collection: 'c' })
    await first.sink.open()
    const second = qdrantSink(t, { url: server.url, collection: 'c' })
    await second.sink.open()
    assert.equal(server.operations().filter((o) => o === 'create_collection').length, 1)
    assert.equal(server.operations().filter((o) => o === 'create_field_index').length, 2)
    const other = qdrantSink(t, { url: server.url, collection: 'c' }, 64)
    const error = await other.sink.open().catch((e: unknown) => e)
    assert.equal(kindOf(error), ErrorKinds.FATAL)
    assert.match(String(error), /the embedder makes 64 dimensions/)
    assert.deepEqual(server.violations, [])
  })

  test('unavailable → retriable; unauthorized → fatal', async (t) => {
    const server = await serve(t)
    const { sink } = qdrantSink(t, { url: server.url, collection: 'down', timeoutMs: 2_000 })
    await sink.open()
    for (const status of [503, 502, 429]) {
      server.failWith = status
      const error = await sink.write(memoryEnvelopes([upsert('x', 'some text')])).catch((e: unknown) => e)
      assert.ok(error instanceof SfmError && error.kind === ErrorKinds.RETRIABLE, `HTTP ${status}: ${String(error)}`)
    }
    server.failWith = 401
    const fatal = await sink.write(memoryEnvelopes([upsert('x', 'some text')])).catch((e: unknown) => e)
    assert.equal(kindOf(fatal), ErrorKinds.FATAL)
    server.failWith = undefined
    await server.close()
    const refused = await sink.write(memoryEnvelopes([upsert('x', 'some text')])).catch((e: unknown) => e)
    assert.ok(refused instanceof SfmError && refused.kind === ErrorKinds.RETRIABLE, String(refused))
    assert.equal(refused.code, ErrorCodes.UNAVAILABLE)
  })
})

const live = process.env.QDRANT_URL
if (!live) console.log('# skipping the live Qdrant suite: QDRANT_URL is not set')

describe('Qdrant sink against a live Qdrant', { skip: live ? false : 'QDRANT_URL is not set' }, () => {
  test('create, upsert, fence, delete, search, count', async (t) => {
    const collection = uniqueName('sfm_test').replaceAll('-', '_')
    const { sink, store, embedder } = qdrantSink(
      t,
      {
        url: live!,
        collection,
        ...(process.env.QDRANT_API_KEY ? { apiKey: process.env.QDRANT_API_KEY } : {})
      },
      32,
      false
    )
    t.after(() => store.client.deleteCollection(collection).then(() => undefined))
    const texts = textCorpus(200, 1)
    assert.deepEqual(
      await sink.write(memoryEnvelopes(texts.map((text, i) => upsert(`l-${i}`, text, { version: 2 })))),
      {}
    )
    assert.equal(await store.count(), 200)
    await sink.write(memoryEnvelopes([upsert('l-0', 'stale', { version: 1 }), remove('l-1', { version: 3 })]))
    assert.equal(await store.count(), 199)
    const [v] = await embedder.embed([texts[0]!])
    const [hit] = await store.search(v!, { k: 1 })
    assert.equal(hit?.id, 'l-0')
    assert.equal(hit?.excerpt, texts[0])
  })
})
