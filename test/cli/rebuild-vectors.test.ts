import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import pg from 'pg'
import { LexicalEmbedder } from '../../src/embedders/lexical.ts'
import type { OutgoingMessage } from '../../src/kafka/messages.ts'
import type { MemoryEvent } from '../../src/memory/event.ts'
import type { RebuildVectorsReport } from '../../src/memory/vectors/rebuild.ts'
import { memoryVectorSink } from '../../src/memory/vectors/sink.ts'
import { lockFolder } from '../../src/pglite/folder-lock.ts'
import { pgliteVectorFolder } from '../../src/pglite/shared.ts'
import { PgvectorStore, pgDatabase, pgliteDatabase } from '../../src/sinks/pgvector/index.ts'
import { QdrantStore } from '../../src/sinks/qdrant/index.ts'
import { linesAfterStackChoice, runCli } from '../helpers/dlq.ts'
import { brokers, createTopics, NO_KAFKA, produce, uniqueName } from '../helpers/kafka.ts'
import { NO_QDRANT_SPEC, QdrantSpecServer, qdrantSpecAvailable } from '../helpers/qdrant-spec-server.ts'
import { memoryEnvelopes } from '../helpers/vectors.ts'
import { testSchema } from '../sinks/postgres/helpers.ts'

const DIMENSIONS = 16

/** Why the server case is skipped, or false: it needs the broker, DATABASE_URL and pgvector there. */
async function serverSkip(): Promise<string | false> {
  if (!brokers()) return NO_KAFKA
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

const state = (id: string, version: number, payload: MemoryEvent['payload'] = { text: `${id} v${version}` }) => ({
  id,
  namespace: 'ns',
  type: 'note',
  importance: 0.5,
  version,
  event_id: randomUUID(),
  timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, version)).toISOString(),
  payload
})
type State = ReturnType<typeof state>

/**
 * memory.latest of 31 memories on 3 partitions: m0..m9 updated (a second, newer record), m20..m24 deleted (a state,
 * then a tombstone), m30 with nothing to embed. Returns the fold (id → last state, null for deleted).
 */
async function latestTopic(t: TestContext): Promise<{ topic: string; last: Map<string, State | null> }> {
  const topic = uniqueName('latest')
  await createTopics(t, [topic], 3)
  const messages: OutgoingMessage[] = []
  const last = new Map<string, State | null>()
  const put = (s: State) => {
    messages.push({ topic, key: s.id, value: JSON.stringify(s) })
    last.set(s.id, s)
  }
  for (let i = 0; i < 30; i++) put(state(`m${i}`, 1))
  for (let i = 0; i < 10; i++) put(state(`m${i}`, 2))
  for (let i = 20; i < 25; i++) {
    messages.push({ topic, key: `m${i}`, value: null })
    last.set(`m${i}`, null)
  }
  put(state('m30', 1, {}))
  await produce(messages)
  return { topic, last }
}

const asEvent = (s: State): MemoryEvent => ({ ...s, op: 'upsert' }) as MemoryEvent

const serverSkipped = await serverSkip()

describe('npm run rebuild -- vectors', () => {
  test('pgvector server: builds from memory.latest, equal to the fold; refuses an existing table (exit 2); --swap merges and exchanges', {
    skip: serverSkipped,
    timeout: 180_000
  }, async (t) => {
    const { schema, pool } = await testSchema(t, 'sfm_rebuild_vec')
    const { topic, last } = await latestTopic(t)
    const env = {
      ...process.env,
      VECTOR_DATABASE_URL: process.env.DATABASE_URL!,
      SFM_LEXICAL_DIMENSIONS: String(DIMENSIONS),
      QDRANT_URL: ''
    }
    const rebuild = (args: string[]) => runCli('src/cli/rebuild.ts', ['vectors', ...args], env)

    // The live vector table as the memory topology's vector branch keeps it: the same states, then (after the
    // rebuild started: updated_at in the future) m29 at version 3 and the delete of m20 at version 2.
    const live = `${schema}.vectors`
    const db = pgDatabase({ connectionString: process.env.DATABASE_URL!, poolSize: 1 })
    const store = new PgvectorStore(db, { table: live })
    const sink = memoryVectorSink({ embedder: new LexicalEmbedder({ dimensions: DIMENSIONS }), store })
    t.after(() => sink.close())
    await sink.open()
    const states = [...last.values()].filter((s): s is State => s !== null && s.id !== 'm30')
    assert.deepEqual(await sink.write(memoryEnvelopes(states.map(asEvent))), {})
    await pool.query(`UPDATE "${schema}"."vectors" SET updated_at = now() - interval '1 hour'`)
    const m29 = state('m29', 3)
    const m20 = { ...state('m20', 2), op: 'delete' } as MemoryEvent
    assert.deepEqual(await sink.write(memoryEnvelopes([asEvent(m29), m20])), {})
    await pool.query(`UPDATE "${schema}"."vectors" SET updated_at = now() + interval '1 hour' WHERE id = 'm29'`)
    const count = async (table: string, where = 'deleted_at IS NULL') =>
      Number((await pool.query(`SELECT count(*) AS n FROM "${schema}"."${table}" WHERE ${where}`)).rows[0].n)
    assert.equal(await count('vectors'), 25)

    const built = await rebuild(['--into', `${schema}.rebuilt`, '--table', live, '--topic', topic])
    assert.equal(built.code, 0, built.stderr)
    const report = JSON.parse(built.stdout) as RebuildVectorsReport
    assert.deepEqual(
      {
        records: report.records,
        memories: report.memories,
        deleted: report.deleted,
        empty: report.empty,
        failed: report.failed,
        mismatches: report.mismatches,
        dimensions: report.dimensions,
        swapped: report.swapped
      },
      { records: 46, memories: 25, deleted: 5, empty: 1, failed: 0, mismatches: 0, dimensions: 16, swapped: false }
    )
    assert.match(built.stderr, /rebuild: read 46\/46 records/)
    const rows = await pool.query<{ id: string; version: string; excerpt: string; deleted: boolean }>(
      `SELECT id, version::text, excerpt, deleted_at IS NOT NULL AS deleted FROM "${schema}"."rebuilt" ORDER BY id`
    )
    const liveRows = rows.rows.filter((r) => !r.deleted)
    assert.equal(liveRows.length, 25)
    for (const row of liveRows) {
      const want = last.get(row.id)
      assert.ok(want, `${row.id} is live in the fold`)
      assert.equal(Number(row.version), want.version, row.id)
      assert.equal(row.excerpt, (want.payload as { text: string }).text)
    }
    for (let i = 20; i < 25; i++) assert.ok(!liveRows.some((r) => r.id === `m${i}`), `m${i} is deleted`)
    assert.equal(await count('vectors'), 25, 'the live table is untouched')

    // Into a table that exists: one line, exit 2, nothing changed.
    const again = await rebuild(['--into', `${schema}.rebuilt`, '--table', live, '--topic', topic])
    assert.equal(again.code, 2, again.stderr)
    // The line that says what it builds from, then the error.
    assert.deepEqual(linesAfterStackChoice(again.stderr).slice(1), [
      `rebuild: table ${schema}.rebuilt exists: choose a new --into (a rebuild never writes into a table or collection it did not create), or drop it first`
    ])
    assert.equal(linesAfterStackChoice(again.stderr).length, 2)
    assert.equal(again.stdout, '')
    assert.equal(await count('rebuilt', 'true'), rows.rows.length)

    // --swap, small batches: the same fold; m29 v3 and the delete of m20 (written by the live topology since the
    // start) merged under the fence; names (and index names) exchanged.
    const swapped = await rebuild([
      '--into',
      `${schema}.fresh`,
      '--table',
      live,
      '--topic',
      topic,
      '--swap',
      '--batch-size',
      '4'
    ])
    assert.equal(swapped.code, 0, swapped.stderr)
    const r = JSON.parse(swapped.stdout) as RebuildVectorsReport
    assert.equal(r.swapped, true)
    assert.equal(r.mismatches, 0)
    assert.equal(r.merged, 2, 'm29 at version 3 and the tombstone of m20')
    assert.equal(r.notCarried, undefined)
    const versions = new Map(
      (
        await pool.query<{ id: string; version: string; deleted: boolean }>(
          `SELECT id, version::text, deleted_at IS NOT NULL AS deleted FROM "${schema}"."vectors"`
        )
      ).rows.map((row) => [row.id, { version: Number(row.version), deleted: row.deleted }])
    )
    assert.deepEqual(versions.get('m29'), { version: 3, deleted: false })
    assert.deepEqual(versions.get('m20'), { version: 2, deleted: true })
    assert.deepEqual(versions.get('m0'), { version: 2, deleted: false })
    assert.equal(await count('vectors'), 25, 'the rebuilt table under the live name')
    assert.equal(await count('fresh'), 25, 'the previous live table under the --into name')
    assert.equal(await count('fresh', `id = 'm29' AND version = 3`), 1)
    const indexes = await pool.query<{ table: string; index: string }>(
      `SELECT tablename AS table, indexname AS index FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE '%_idx'
        ORDER BY 1, 2`,
      [schema]
    )
    assert.deepEqual(
      indexes.rows.filter((row) => row.table !== 'rebuilt'),
      [
        { table: 'fresh', index: 'fresh_embedding_idx' },
        { table: 'fresh', index: 'fresh_namespace_idx' },
        { table: 'vectors', index: 'vectors_embedding_idx' },
        { table: 'vectors', index: 'vectors_namespace_idx' }
      ]
    )
    // The live store, opened again by name (as a restarted topology does), searches the rebuilt table.
    const reopened = new PgvectorStore(pgDatabase({ connectionString: process.env.DATABASE_URL!, poolSize: 1 }), {
      table: live
    })
    t.after(() => reopened.close())
    await reopened.open(DIMENSIONS)
    const [query] = await new LexicalEmbedder({ dimensions: DIMENSIONS }).embed(['m29 v3'])
    const hits = await reopened.search(query!, { k: 1 })
    assert.equal(hits[0]?.id, 'm29')
    assert.equal(hits[0]?.version, 3)
  })

  test('embedded PGlite store: builds the table in the data folder; refused while a runner holds the folder', {
    skip: brokers() ? false : NO_KAFKA,
    timeout: 180_000
  }, async (t) => {
    const { topic } = await latestTopic(t)
    const dataDir = await mkdtemp(join(tmpdir(), 'sfm-rebuild-vectors-'))
    t.after(() => rm(dataDir, { recursive: true, force: true }))
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      SFM_DATA_DIR: dataDir,
      SFM_LEXICAL_DIMENSIONS: String(DIMENSIONS),
      QDRANT_URL: '',
      VECTOR_DATABASE_URL: ''
    }
    const folder = pgliteVectorFolder(dataDir)
    // A runner holds the folder (its vector branch writes there): refused at once, exit 2, nothing made.
    const held = await lockFolder(folder, { what: 'PGlite vector folder' })
    const refused = await runCli('src/cli/rebuild.ts', ['vectors', '--into', 'rebuilt', '--topic', topic], env)
    held.release()
    assert.equal(refused.code, 2, refused.stderr)
    assert.equal(linesAfterStackChoice(refused.stderr).length, 1, refused.stderr)
    assert.match(refused.stderr, /PGlite vector folder .* (in use|held|locked)/i)

    const built = await runCli('src/cli/rebuild.ts', ['vectors', '--into', 'rebuilt', '--topic', topic], env)
    assert.equal(built.code, 0, built.stderr)
    const report = JSON.parse(built.stdout) as RebuildVectorsReport
    assert.deepEqual([report.records, report.memories, report.deleted, report.mismatches], [46, 25, 5, 0])

    const db = await pgliteDatabase(folder)
    try {
      const rows = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM rebuilt WHERE deleted_at IS NULL')
      assert.equal(rows[0]?.n, 25)
    } finally {
      await db.close()
    }
  })

  // Qdrant: against the stand-in that checks every request and answer with Qdrant's published OpenAPI spec, and
  // against a live Qdrant where QDRANT_URL is set.
  const qdrants: {
    name: string
    skip: string | false
    url: (t: TestContext) => Promise<{ url: string; violations?: string[] }>
  }[] = [
    {
      name: 'the Qdrant spec',
      skip: !brokers() ? NO_KAFKA : qdrantSpecAvailable() ? false : NO_QDRANT_SPEC,
      async url(t) {
        const server = await new QdrantSpecServer().listen()
        t.after(() => server.close())
        return { url: server.url, violations: server.violations }
      }
    },
    {
      name: 'a live Qdrant',
      skip: !brokers() ? NO_KAFKA : process.env.QDRANT_URL ? false : 'QDRANT_URL is not set',
      async url() {
        return { url: process.env.QDRANT_URL! }
      }
    }
  ]
  for (const qdrant of qdrants) {
    test(`Qdrant (${qdrant.name}): a new collection, checked; --swap switches the live alias; existing names and a live collection refused (exit 2)`, {
      skip: qdrant.skip,
      timeout: 180_000
    }, async (t) => {
      const { topic, last } = await latestTopic(t)
      const { url, violations } = await qdrant.url(t)
      const tag = randomUUID().slice(0, 8)
      const [old, fresh, other, alias] = ['old', 'fresh', 'other', 'live'].map((n) => `rv_${tag}_${n}`) as [
        string,
        string,
        string,
        string
      ]
      const env = {
        ...process.env,
        QDRANT_URL: url,
        SFM_LEXICAL_DIMENSIONS: String(DIMENSIONS),
        VECTOR_DATABASE_URL: ''
      }
      const rebuild = (args: string[]) => runCli('src/cli/rebuild.ts', ['vectors', ...args, '--topic', topic], env)

      // The live collection, written by the vector branch through the alias.
      const admin = new QdrantStore({ url, collection: old })
      const sink = memoryVectorSink({ embedder: new LexicalEmbedder({ dimensions: DIMENSIONS }), store: admin })
      await sink.open()
      t.after(async () => {
        for (const name of [old, fresh, other]) await admin.client.deleteCollection(name).catch(() => {})
        await sink.close()
      })
      await admin.client.updateCollectionAliases({
        actions: [{ create_alias: { collection_name: old, alias_name: alias } }]
      })
      const states = [...last.values()].filter((s): s is State => s !== null && s.id !== 'm30' && s.id !== 'm29')
      assert.deepEqual(await sink.write(memoryEnvelopes(states.map(asEvent))), {})
      const exists = async (name: string) => (await admin.client.collectionExists(name)).exists

      // Refused, nothing made: --into an existing collection, --into the alias, --swap of a collection.
      for (const [args, message] of [
        [['--into', old], `collection ${old} exists`],
        [['--into', alias], `collection ${alias} exists`],
        [['--into', other, '--table', old, '--swap'], `qdrant: ${old} is a collection, not an alias`]
      ] as const) {
        const refused = await rebuild([...args])
        assert.equal(refused.code, 2, refused.stderr)
        // The line that says what it builds from, then the error.
        const lines = linesAfterStackChoice(refused.stderr)
        assert.equal(lines.length, 2, refused.stderr)
        assert.ok(lines[1]!.startsWith(`rebuild: ${message}`), lines[1])
      }
      assert.equal(await exists(other), false)

      const swapped = await rebuild(['--into', fresh, '--table', alias, '--swap', '--batch-size', '7'])
      assert.equal(swapped.code, 0, swapped.stderr)
      const report = JSON.parse(swapped.stdout) as RebuildVectorsReport
      assert.deepEqual(
        [
          report.records,
          report.memories,
          report.deleted,
          report.empty,
          report.mismatches,
          report.swapped,
          report.previous
        ],
        [46, 25, 5, 1, 0, true, old]
      )
      assert.match(swapped.stderr, new RegExp(`alias ${alias} now points at ${fresh} \\(before: ${old}`))
      const aliases = (await admin.client.getAliases()).aliases.filter((a) => a.alias_name === alias)
      assert.deepEqual(aliases, [{ alias_name: alias, collection_name: fresh }])
      // Through the alias: the rebuilt collection, with m29 (absent from the old one) at its version.
      const live = new QdrantStore({ url, collection: alias })
      t.after(() => live.close())
      assert.equal(await live.count(), 25)
      const points = await live.points(['m29', 'm0', 'm20'])
      assert.equal(points.get('m29')?.version, 1)
      assert.equal(points.get('m0')?.version, 2)
      assert.equal(points.has('m20'), false)
      assert.equal(
        (await admin.client.count(old, { exact: true })).count,
        24,
        'the previous collection is left as it was'
      )
      if (violations) assert.deepEqual(violations, [])
    })
  }
})
