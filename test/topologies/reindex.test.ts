import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import pg from 'pg'
import { embedderFromEnv } from '../../src/embedders/index.ts'
import type { MemoryEvent } from '../../src/memory/event.ts'
import { PgvectorStore, sharedPgliteDatabase } from '../../src/sinks/pgvector/index.ts'
import type { ReindexSink } from '../../src/sinks/vector/index.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import type { Topology } from '../../src/streams/topology.ts'
import { memoryTopology } from '../../topologies/memory.ts'
import { reindexTopology } from '../../topologies/reindex.ts'
import { brokers, createTopics, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'
import { startRunner } from '../helpers/runner.ts'
import { textCorpus } from '../helpers/vectors.ts'

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`

const TOPICS = ['memory.events', 'memory.latest', 'memory.audit', 'memory.dlq'] as const

/** Prefixed topics, a table, a PGlite data folder and groups of this test alone; env restored afterwards. */
async function isolated(t: TestContext) {
  const prefix = `${uniqueName('ri')}.`
  const table = `mem_${randomBytes(5).toString('hex')}`
  await createTopics(
    t,
    TOPICS.map((name) => prefix + name),
    3
  )
  const dataDir = await mkdtemp(join(tmpdir(), 'sfm-reindex-test-'))
  const vars: Record<string, string> = {
    SFM_DATA_DIR: dataDir,
    SFM_TOPIC_PREFIX: prefix,
    SFM_MEMORY_TABLE: table,
    SFM_MEMORY_GROUP: uniqueName('memory'),
    SFM_REINDEX_GROUP: uniqueName('reindex'),
    SFM_LEXICAL_DIMENSIONS: '64',
    SFM_REINDEX_BATCH: '64'
  }
  const saved = { ...process.env }
  t.after(async () => {
    process.env = saved
    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
    await pool
      .query(`DROP TABLE IF EXISTS "${table}", "${table}_events_processed", schema_migrations_${table} CASCADE`)
      .catch(() => {})
    await pool.end()
    await rm(dataDir, { recursive: true, force: true })
  })
  /** Sets this test's environment (plus `extra`) for what runs next in this process. */
  const use = (extra: Record<string, string> = {}) => {
    process.env = { ...saved, ...vars, ...extra }
    delete process.env.QDRANT_URL
    delete process.env.VECTOR_DATABASE_URL
  }
  return { prefix, dataDir, vars, use, topic: (name: (typeof TOPICS)[number]) => prefix + name }
}

/** Microsecond timestamps, so the fence pairs the reindex matches are exact (memory.latest must carry them). */
function at(second: number, micros: number): string {
  return `2026-05-06T07:08:${String(second).padStart(2, '0')}.${String(micros).padStart(6, '0')}Z`
}

/**
 * N memories at version 1 (phase 1); then (phase 2) a new text at version 2 for every third and a delete at
 * version 3 for every eighth. Run as two passes of the memory topology, memory.latest holds older states before
 * newer ones and before tombstones, as an uncompacted topic does.
 */
function history(n: number) {
  const texts = textCorpus(n * 2, 17)
  const phase1: MemoryEvent[] = []
  const phase2: MemoryEvent[] = []
  const live = new Map<string, string>()
  const deleted = new Set<string>()
  for (let i = 0; i < n; i++) {
    const id = `r-${i}`
    const base = { id, namespace: i % 2 ? 'odd' : 'even', type: 'semantic' }
    phase1.push({ ...base, event_id: randomUUID(), version: 1, timestamp: at(1, i), payload: { text: texts[i]! } })
    let text = texts[i]!
    if (i % 3 === 0) {
      text = texts[n + i]!
      phase2.push({ ...base, event_id: randomUUID(), version: 2, timestamp: at(2, i), payload: { text } })
    }
    if (i % 8 === 0) {
      phase2.push({
        event_id: randomUUID(),
        id,
        namespace: base.namespace,
        op: 'delete',
        version: 3,
        timestamp: at(3, i)
      })
      deleted.add(id)
    } else live.set(id, text)
  }
  return { phase1, phase2, live, deleted }
}

async function run<T>(build: () => Promise<Topology<T>>) {
  const topology = await build()
  const summary = await new Runtime(topology, { untilIdleMs: 2_000 }).run()
  return { topology, summary }
}

interface Row {
  id: string
  deleted: boolean
  model_revision: string | null
}

async function readIndex(dataDir: string): Promise<Map<string, Row>> {
  const db = await sharedPgliteDatabase(dataDir)
  try {
    const rows = await db.query<Row>(
      'SELECT id, deleted_at IS NOT NULL AS deleted, model_revision FROM memory_vectors ORDER BY id'
    )
    return new Map(rows.map((r) => [r.id, r]))
  } finally {
    await db.close()
  }
}

describe('reindex topology on the real broker, pgvector in PGlite', { skip }, () => {
  test('revision A → B: every vector re-embedded, recall holds, deletes stay absent, a second run does nothing', {
    timeout: 300_000
  }, async (t) => {
    const stack = await isolated(t)
    const { phase1, phase2, live, deleted } = history(240)
    const records = (events: MemoryEvent[]) =>
      events.map((e) => ({ topic: stack.topic('memory.events'), key: e.id, value: JSON.stringify(e) }))

    // Revision A: the memory topology indexes with character 3-grams (the default).
    stack.use()
    const revisionA = embedderFromEnv().revision
    for (const phase of [phase1, phase2]) {
      await produce(records(phase))
      assert.equal((await run(memoryTopology)).summary.deadLettered, 0)
    }
    let index = await readIndex(stack.dataDir)
    assert.equal([...index.values()].filter((r) => !r.deleted).length, live.size)
    assert.ok([...index.values()].every((r) => r.deleted || r.model_revision === revisionA))

    // memory.latest carries the fence pair exactly (microseconds), which the reindex matches against the index.
    const latest = await readTopic(stack.topic('memory.latest'), Number.MAX_SAFE_INTEGER, 3_000)
    const r1 = latest.filter((m) => m.key === 'r-1').at(-1)
    assert.equal(JSON.parse(r1?.value ?? '{}').timestamp, at(1, 1))

    // Revision B: 4-grams, same dimensions. The reindex re-embeds every live memory and nothing else.
    stack.use({ SFM_LEXICAL_NGRAM: '4' })
    const b = embedderFromEnv()
    assert.notEqual(b.revision, revisionA)
    const first = await run(reindexTopology)
    const counts = (first.topology.branches.reembed!.sink as ReindexSink).counts
    t.diagnostic(`first pass: ${JSON.stringify(counts)}`)
    assert.equal(first.summary.deadLettered, 0)
    assert.equal(counts.reembedded, live.size)
    assert.equal(counts.current, 0)
    assert.equal(counts.failed, 0)
    assert.equal(counts.tombstones, deleted.size, 'every deleted memory was seen as a tombstone')
    // Older states before newer ones or tombstones: skipped (the index holds newer) or superseded in the batch.
    assert.ok(counts.newer + counts.absent + counts.superseded > 0, 'the pass met older states')
    assert.equal(counts.read, counts.reembedded + counts.tombstones + counts.newer + counts.absent + counts.superseded)

    index = await readIndex(stack.dataDir)
    for (const id of live.keys()) assert.equal(index.get(id)?.model_revision, b.revision, `${id} has revision B`)
    for (const id of deleted) assert.ok(index.get(id)?.deleted, `${id} stays deleted`)

    // Recall with revision B: each memory's own text returns it first; deleted memories never come back.
    const db = await sharedPgliteDatabase(stack.dataDir)
    const store = new PgvectorStore(db)
    try {
      await store.open(b.dimensions)
      const ids = [...live.keys()]
      const vectors = await b.embed(ids.map((id) => live.get(id)!))
      let first1 = 0
      for (let i = 0; i < ids.length; i++) {
        const hits = await store.search(vectors[i]!, { k: 3 })
        if (hits[0]?.id === ids[i]) first1++
        assert.ok(!hits.some((h) => deleted.has(h.id)), 'no deleted memory in the results')
      }
      t.diagnostic(`self-recall@1 with revision B: ${first1}/${ids.length}`)
      assert.equal(first1, ids.length)
    } finally {
      await store.close()
    }

    // A second run (the group is rewound: it reads everything again) re-embeds nothing.
    const second = await run(reindexTopology)
    const again = (second.topology.branches.reembed!.sink as ReindexSink).counts
    assert.equal(again.reembedded, 0)
    assert.equal(again.current, live.size)
    assert.equal(again.read, counts.read, 'the second run read the whole topic again')

    // The real runner: `npm start -- topologies/reindex.ts --until-idle` with SFM_REINDEX_ALL=true re-embeds every
    // live memory again, logs its pass and exits 0.
    const runner = startRunner(
      'topologies/reindex.ts',
      { ...stack.vars, SFM_LEXICAL_NGRAM: '4', SFM_REINDEX_ALL: 'true' },
      ['--until-idle=2', '--status-interval=0']
    )
    const [code] = (await once(runner.child, 'exit')) as [number | null]
    const log = runner.stderr()
    assert.equal(code, 0, log)
    const pass = log.split('\n').find((line) => line.includes('reindex pass:'))
    assert.ok(pass, `a summary line in:\n${log}`)
    assert.match(pass, new RegExp(`reembedded ${live.size}\\b`))
    assert.match(pass, /offsets/)
    t.diagnostic(pass.trim())
  })
})
