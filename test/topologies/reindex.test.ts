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
import type { ReindexSink } from '../../src/memory/vectors/reindex.ts'
import { pgliteVectorFolder } from '../../src/pglite/shared.ts'
import { pgliteDatabase, ThreadedPgvectorStore } from '../../src/sinks/pgvector/index.ts'
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
  const versions = new Map<string, number>()
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
    } else {
      live.set(id, text)
      versions.set(id, i % 3 === 0 ? 2 : 1)
    }
  }
  return { phase1, phase2, live, versions, deleted }
}

/**
 * After `history(n)`: every fifth live memory deleted (version 4), every seventh other one given a new text
 * (version 4), every sixteenth deleted one created again (version 5). Returns the events and the memories then.
 */
function laterHistory(before: ReturnType<typeof history>, n: number) {
  const texts = textCorpus(n, 29)
  const events: MemoryEvent[] = []
  const live = new Map(before.live)
  const versions = new Map(before.versions)
  const deleted = new Set(before.deleted)
  const changes = { deletes: 0, updates: 0, recreations: 0 }
  for (let i = 0; i < n; i++) {
    const id = `r-${i}`
    const base = { event_id: randomUUID(), id, namespace: i % 2 ? 'odd' : 'even' }
    if (before.live.has(id) && i % 5 === 0) {
      events.push({ ...base, op: 'delete', version: 4, timestamp: at(4, i) })
      live.delete(id)
      versions.delete(id)
      deleted.add(id)
      changes.deletes++
    } else if (before.live.has(id) && i % 7 === 0) {
      events.push({ ...base, type: 'semantic', version: 4, timestamp: at(4, i), payload: { text: texts[i]! } })
      live.set(id, texts[i]!)
      versions.set(id, 4)
      changes.updates++
    } else if (before.deleted.has(id) && i % 16 === 0) {
      events.push({ ...base, type: 'semantic', version: 5, timestamp: at(5, i), payload: { text: texts[i]! } })
      live.set(id, texts[i]!)
      versions.set(id, 5)
      deleted.delete(id)
      changes.recreations++
    }
  }
  return { events, live, versions, deleted, changes }
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
  version: number
}

async function readIndex(dataDir: string, table = 'memory_vectors'): Promise<Map<string, Row>> {
  // The embedded vector index's own PGlite (<dataDir>/vectors); the runner that owned it has stopped.
  const db = await pgliteDatabase(pgliteVectorFolder(dataDir))
  try {
    const rows = await db.query<Row>(
      `SELECT id, deleted_at IS NOT NULL AS deleted, model_revision, version::int AS version FROM "${table}" ORDER BY id`
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
    const store = new ThreadedPgvectorStore({ dataDir: stack.dataDir })
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

  test('fill: a new table of other dimensions gets exactly the live memories; a second fill changes nothing; later changes follow', {
    timeout: 300_000
  }, async (t) => {
    const stack = await isolated(t)
    const before = history(240)
    const records = (events: MemoryEvent[]) =>
      events.map((e) => ({ topic: stack.topic('memory.events'), key: e.id, value: JSON.stringify(e) }))

    // Table A (memory_vectors, 64 dimensions): the memory topology, in two passes (updates and deletes second).
    stack.use()
    const revisionA = embedderFromEnv().revision
    for (const phase of [before.phase1, before.phase2]) {
      await produce(records(phase))
      assert.equal((await run(memoryTopology)).summary.deadLettered, 0)
    }

    // Table B: 96 dimensions, which table A cannot hold (the store refuses it), so a new table built from
    // memory.latest. memory.latest is not compacted here: it holds every older state before newer ones and tombstones.
    const fillVars = { SFM_VECTOR_TABLE: 'vectors_b', SFM_LEXICAL_DIMENSIONS: '96', SFM_REINDEX_FILL: 'true' }
    stack.use(fillVars)
    const b = embedderFromEnv()
    assert.equal(b.dimensions, 96)
    const fill = async () => {
      const { topology, summary } = await run(reindexTopology)
      assert.equal(summary.deadLettered, 0)
      const c = (topology.branches.reembed!.sink as ReindexSink).counts
      assert.equal(c.failed, 0)
      const skipped = c.current + c.newer + c.absent + c.tombstones + c.superseded + c.empty
      assert.equal(c.read, c.inserted + c.updated + c.reembedded + c.deleted + skipped, 'each record counted once')
      return c
    }

    /** Table B holds exactly the live memories, at their newest version, made by B; each one's text recalls it. */
    const expectB = async (expected: { live: Map<string, string>; versions: Map<string, number> }) => {
      const index = await readIndex(stack.dataDir, 'vectors_b')
      const liveRows = [...index.values()].filter((r) => !r.deleted)
      assert.deepEqual(liveRows.map((r) => r.id).sort(), [...expected.live.keys()].sort(), 'exactly the live memories')
      for (const r of liveRows) {
        assert.equal(r.version, expected.versions.get(r.id), `${r.id} at its newest version`)
        assert.equal(r.model_revision, b.revision)
      }
      const store = new ThreadedPgvectorStore({ dataDir: stack.dataDir, store: { table: 'vectors_b' } })
      try {
        await store.open(b.dimensions)
        const ids = [...expected.live.keys()]
        const vectors = await b.embed(ids.map((id) => expected.live.get(id)!))
        let first1 = 0
        for (let i = 0; i < ids.length; i++) {
          const hits = await store.search(vectors[i]!, { k: 3 })
          if (hits[0]?.id === ids[i]) first1++
          assert.ok(
            hits.every((h) => expected.live.has(h.id)),
            'only live memories in the results'
          )
        }
        t.diagnostic(`self-recall@1 in table B: ${first1}/${ids.length}`)
        assert.equal(first1, ids.length)
      } finally {
        await store.close()
      }
    }

    const first = await fill()
    t.diagnostic(`first fill: ${JSON.stringify(first)}`)
    // Older states read in an earlier batch than their newer state or tombstone are written, then replaced or
    // deleted: net, the live memories.
    assert.equal(first.inserted - first.deleted, before.live.size)
    assert.equal(first.reembedded, 0)
    await expectB(before)
    // Table A is another index: untouched.
    const indexA = await readIndex(stack.dataDir)
    assert.equal([...indexA.values()].filter((r) => !r.deleted).length, before.live.size)
    assert.ok([...indexA.values()].every((r) => r.deleted || r.model_revision === revisionA))

    // A second fill reads everything again and writes nothing: older states are fenced by the newer state or by the
    // tombstone the first fill left (pgvector), so none is inserted and deleted again.
    const second = await fill()
    t.diagnostic(`second fill: ${JSON.stringify(second)}`)
    assert.equal(second.read, first.read)
    assert.deepEqual([second.inserted, second.updated, second.reembedded, second.deleted], [0, 0, 0, 0])
    assert.equal(second.current, before.live.size)
    await expectB(before)

    // Later, the memory topology (still on table A) deletes, updates and creates again; the fill catches up, here
    // through the real runner: `npm start -- topologies/reindex.ts --until-idle` with SFM_REINDEX_FILL=true.
    const later = laterHistory(before, 240)
    stack.use()
    await produce(records(later.events))
    assert.equal((await run(memoryTopology)).summary.deadLettered, 0)
    const runner = startRunner('topologies/reindex.ts', { ...stack.vars, ...fillVars }, [
      '--until-idle=2',
      '--status-interval=0'
    ])
    const [code] = (await once(runner.child, 'exit')) as [number | null]
    const log = runner.stderr()
    assert.equal(code, 0, log)
    const pass = log.split('\n').find((line) => line.includes('reindex pass:'))
    assert.ok(pass, `a summary line in:\n${log}`)
    t.diagnostic(pass.trim())
    const { deletes, updates, recreations } = later.changes
    assert.ok(deletes > 0 && updates > 0 && recreations > 0)
    assert.match(
      pass,
      new RegExp(`inserted ${recreations} · updated ${updates} · reembedded 0 · deleted ${deletes} · skipped \\d+`)
    )
    await expectB(later)
  })
})
