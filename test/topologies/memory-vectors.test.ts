import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import pg from 'pg'
import { fold } from '../../src/memory/fold.ts'
import { pgliteVectorFolder } from '../../src/pglite/shared.ts'
import { pgliteDatabase } from '../../src/sinks/pgvector/index.ts'
import { pointId } from '../../src/sinks/qdrant/index.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import type { Topology } from '../../src/streams/topology.ts'
import { embedderTopology } from '../../topologies/embedder.ts'
import { memoryTopology } from '../../topologies/memory.ts'
import { vectorIndexerTopology } from '../../topologies/vector-indexer.ts'
import { brokers, createTopics, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'
import { generateHistory } from '../helpers/memory-history.ts'
import { NO_QDRANT_SPEC, QdrantSpecServer, qdrantSpecAvailable } from '../helpers/qdrant-spec-server.ts'

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`

const TOPICS = [
  'memory.events',
  'memory.latest',
  'memory.audit',
  'memory.dlq',
  'embedding.requests',
  'embedding.responses'
] as const

/** An isolated memory stack with its own vector store (PGlite in a temp dir unless `env` says otherwise). */
export async function isolatedVectors(t: TestContext, env: Record<string, string> = {}) {
  const prefix = `${uniqueName('v')}.`
  const table = `mem_${randomBytes(5).toString('hex')}`
  await createTopics(
    t,
    TOPICS.map((name) => prefix + name),
    3
  )
  const dataDir = await mkdtemp(join(tmpdir(), 'sfm-vectors-test-'))
  const vars: Record<string, string | undefined> = {
    QDRANT_URL: undefined,
    VECTOR_DATABASE_URL: undefined,
    SFM_DATA_DIR: dataDir,
    SFM_TOPIC_PREFIX: prefix,
    SFM_MEMORY_TABLE: table,
    SFM_MEMORY_GROUP: uniqueName('memory'),
    SFM_EMBEDDER_GROUP: uniqueName('embedder'),
    SFM_INDEXER_GROUP: uniqueName('indexer'),
    SFM_LEXICAL_DIMENSIONS: '64',
    ...env
  }
  t.after(async () => {
    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
    await pool
      .query(`DROP TABLE IF EXISTS "${table}", "${table}_events_processed", schema_migrations_${table} CASCADE`)
      .catch(() => {})
    await pool.end()
    await rm(dataDir, { recursive: true, force: true })
  })
  /** Builds and runs a topology until idle with this stack's environment. */
  const run = async <T>(build: () => Promise<Topology<T>>, until = 2_000, during?: (r: Runtime) => Promise<void>) => {
    const saved = process.env
    process.env = { ...saved }
    for (const [k, v] of Object.entries(vars)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
    try {
      const runtime = new Runtime((await build()) as unknown as Topology<unknown>, { untilIdleMs: until })
      const running = runtime.run()
      await during?.(runtime)
      return await running
    } finally {
      process.env = saved
    }
  }
  return { prefix, dataDir, run, topic: (name: (typeof TOPICS)[number]) => prefix + name }
}

export interface IndexedRow {
  embedding: string | null
  version: number
  deleted: boolean
  excerpt: string | null
  model_revision: string | null
}

/** The PGlite vector index of a finished run, by memory id. */
export async function readPgliteIndex(dataDir: string): Promise<Map<string, IndexedRow>> {
  // The embedded vector index's own PGlite (<dataDir>/vectors); the runner that owned it has stopped.
  const db = await pgliteDatabase(pgliteVectorFolder(dataDir))
  try {
    const rows = await db.query<{
      id: string
      version: string
      deleted: boolean
      excerpt: string | null
      model_revision: string | null
      embedding: string | null
    }>(
      'SELECT id, version::text AS version, deleted_at IS NOT NULL AS deleted, excerpt, model_revision, embedding::text AS embedding FROM memory_vectors'
    )
    return new Map(
      rows.map((r) => [
        r.id,
        {
          version: Number(r.version),
          deleted: r.deleted,
          excerpt: r.excerpt,
          model_revision: r.model_revision,
          embedding: r.embedding
        }
      ])
    )
  } finally {
    await db.close()
  }
}

async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()))
  const port = (server.address() as { port: number }).port
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

describe('memory topology: the vector branch on Kafka', { skip }, () => {
  test('the PGlite vector index ends equal to the fold of a duplicated, reordered history', {
    timeout: 180_000
  }, async (t) => {
    const stack = await isolatedVectors(t)
    const history = generateHistory({ ids: 120, eventsPerId: 5, idPrefix: 'vec-', seed: 21 })
    await produce(history.map((e) => ({ topic: stack.topic('memory.events'), key: e.id, value: JSON.stringify(e) })))
    const summary = await stack.run(memoryTopology)
    assert.equal(summary.deadLettered, 0)
    const expected = fold(history)
    const index = await readPgliteIndex(stack.dataDir)
    assert.equal(index.size, expected.size)
    for (const [id, row] of expected) {
      const got = index.get(id)
      assert.ok(got, `indexed ${id}`)
      assert.equal(got.deleted, row.deletedAt !== null, `deleted state of ${id}`)
      assert.equal(got.version, row.version, `version of ${id}`)
      if (!got.deleted) assert.equal(got.excerpt, (row.payload as { text: string }).text.replace(/\s+/g, ' ').trim())
    }
  })

  test('vector store down at start: held and retried, nothing in the DLQ, completes when it returns', {
    skip: qdrantSpecAvailable() ? false : NO_QDRANT_SPEC,
    timeout: 180_000
  }, async (t) => {
    const port = await freePort()
    const stack = await isolatedVectors(t, { QDRANT_URL: `http://127.0.0.1:${port}`, SFM_QDRANT_COLLECTION: 'down' })
    const history = generateHistory({ ids: 40, eventsPerId: 3, idPrefix: 'down-', seed: 4 })
    await produce(history.map((e) => ({ topic: stack.topic('memory.events'), key: e.id, value: JSON.stringify(e) })))
    let server: QdrantSpecServer | undefined
    t.after(() => server?.close())
    const summary = await stack.run(memoryTopology, 2_000, async (runtime) => {
      await new Promise((r) => setTimeout(r, 3_000))
      assert.ok(runtime.stats().sinkRetries > 0, 'the vector branch is retrying')
      server = await new QdrantSpecServer().listen(port)
    })
    assert.ok(server)
    assert.equal(summary.deadLettered, 0)
    assert.deepEqual(server.violations, [])
    const expected = fold(history)
    const live = [...expected].filter(([, row]) => row.deletedAt === null)
    const points = server.collections.get('down')!.points
    assert.equal(points.size, live.length)
    for (const [id, row] of live) assert.equal(points.get(pointId(id))?.payload.version, row.version, id)
    assert.equal((await readTopic(stack.topic('memory.dlq'), 0, 1_000)).length, 0)
  })

  test('remote mode: requests → embedder topology → responses → indexer ends with the same index as inline', {
    timeout: 240_000
  }, async (t) => {
    const history = generateHistory({ ids: 80, eventsPerId: 5, idPrefix: 'rm-', seed: 33 })
    const records = (topic: string) => history.map((e) => ({ topic, key: e.id, value: JSON.stringify(e) }))

    const inline = await isolatedVectors(t)
    await produce(records(inline.topic('memory.events')))
    assert.equal((await inline.run(memoryTopology)).deadLettered, 0)

    const remote = await isolatedVectors(t, { SFM_EMBEDDING_MODE: 'remote' })
    await produce(records(remote.topic('memory.events')))
    assert.equal((await remote.run(memoryTopology)).deadLettered, 0)
    const requests = await readTopic(remote.topic('embedding.requests'), Number.MAX_SAFE_INTEGER, 3_000)
    assert.ok(requests.length > 0)
    assert.ok(
      requests.every((r) => r.key && JSON.parse(r.value!).id === r.key),
      'requests are keyed by memory id'
    )
    assert.equal((await remote.run(embedderTopology)).deadLettered, 0)
    assert.equal((await remote.run(vectorIndexerTopology)).deadLettered, 0)

    const expected = fold(history)
    const a = await readPgliteIndex(inline.dataDir)
    const b = await readPgliteIndex(remote.dataDir)
    assert.equal(a.size, expected.size)
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort())
    for (const [id, row] of a) assert.deepEqual(b.get(id), row, id)
    t.diagnostic(`${requests.length} requests for ${history.length} events of ${expected.size} memories`)
  })
})
