import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import pg from 'pg'
import { fold } from '../../src/memory/fold.ts'
import { DeadLetterHeaders } from '../../src/streams/dead-letter.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { memoryTopology } from '../../topologies/memory.ts'
import { brokers, createTopics, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'
import { generateHistory } from '../helpers/memory-history.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`

const TOPICS = ['memory.events', 'memory.latest', 'memory.audit', 'memory.dlq'] as const

/** An isolated memory stack: prefixed topics, its own table and consumer group. Env is restored afterwards. */
async function isolated(t: TestContext, partitions = 3, configs: Record<string, string> = {}) {
  const prefix = `${uniqueName('m')}.`
  const table = `mem_${randomBytes(5).toString('hex')}`
  await createTopics(
    t,
    TOPICS.map((name) => prefix + name),
    partitions,
    configs
  )
  const saved = { ...process.env }
  // The vector branch's embedded store (PGlite) in a directory of this test alone.
  const dataDir = await mkdtemp(join(tmpdir(), 'sfm-memory-test-'))
  Object.assign(process.env, {
    SFM_DATA_DIR: dataDir,
    SFM_TOPIC_PREFIX: prefix,
    SFM_MEMORY_TABLE: table,
    SFM_MEMORY_GROUP: uniqueName('memory'),
    SFM_KV_BATCH: '500'
  })
  delete process.env.QDRANT_URL
  delete process.env.VECTOR_DATABASE_URL
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 })
  t.after(async () => {
    process.env = saved
    await pool
      .query(`DROP TABLE IF EXISTS "${table}", "${table}_events_processed", schema_migrations_${table} CASCADE`)
      .catch(() => {})
    await pool.end()
    await rm(dataDir, { recursive: true, force: true })
  })
  return { prefix, table, pool, topic: (name: (typeof TOPICS)[number]) => prefix + name }
}

async function runUntilIdle() {
  const topology = await memoryTopology()
  return new Runtime(topology, { untilIdleMs: 2_000 }).run()
}

describe('memory topology on Kafka + PostgreSQL', { skip }, () => {
  test('duplicated, reordered histories end equal to the fold; latest and audit follow', {
    timeout: 180_000
  }, async (t) => {
    const stack = await isolated(t)
    const history = generateHistory({ ids: 150, eventsPerId: 6, idPrefix: 'mem-', seed: 7 })
    await produce(history.map((e) => ({ topic: stack.topic('memory.events'), key: e.id, value: JSON.stringify(e) })))
    const summary = await runUntilIdle()
    t.diagnostic(`events ${history.length}, consumed ${summary.consumed}, dropped as duplicates ${summary.dropped}`)

    const expected = fold(history)
    const actual = await readMemories(stack.pool, `"${stack.table}"`, 'mem-')
    assert.equal(actual.size, expected.size)
    for (const [id, row] of expected) assert.deepEqual(actual.get(id), row, `row ${id}`)
    assert.equal(summary.deadLettered, 0)

    // memory.latest: the last record per key is the table's state (null for tombstones).
    const latest = await readTopic(stack.topic('memory.latest'), Number.MAX_SAFE_INTEGER, 4_000)
    const lastByKey = new Map<string, string | undefined>()
    for (const m of latest) lastByKey.set(m.key!, m.value)
    assert.equal(lastByKey.size, expected.size)
    for (const [id, row] of expected) {
      const value = lastByKey.get(id)
      if (row.deletedAt !== null) assert.equal(value, undefined, `tombstone for ${id}`)
      else {
        const state = JSON.parse(value ?? 'null')
        assert.equal(state.event_id, row.eventId)
        assert.deepEqual(state.payload, row.payload)
      }
    }

    // memory.audit: one record per distinct event at least, each with an outcome.
    const unique = new Set(history.map((e) => e.event_id)).size
    const audit = await readTopic(stack.topic('memory.audit'), Number.MAX_SAFE_INTEGER, 4_000)
    const records = audit.map(
      (m) => JSON.parse(m.value ?? '{}') as { event_id: string; outcome: string; topology: string }
    )
    assert.ok(records.length >= unique, `audit has ${records.length} records for ${unique} events`)
    assert.equal(new Set(records.map((r) => r.event_id)).size, unique)
    assert.ok(records.every((r) => ['applied', 'fenced', 'duplicate'].includes(r.outcome) && r.topology === 'memory'))
    // Distinct events, since the audit topic is at-least-once (a retried produce may repeat a record).
    const applied = new Set(records.filter((r) => r.outcome === 'applied').map((r) => r.event_id)).size
    assert.ok(applied >= expected.size && applied <= unique)

    // Running again (same group) changes nothing: offsets were committed.
    const again = await runUntilIdle()
    assert.equal(again.consumed, 0)
  })

  test('poison goes to memory.dlq with reasons; every valid event is still applied', {
    timeout: 120_000
  }, async (t) => {
    // Topics that take a 10 MB record, so the broker lets the oversized event reach the topology (and the DLQ).
    const stack = await isolated(t, 2, { 'max.message.bytes': String(16 * 1024 * 1024) })
    const valid = generateHistory({ ids: 20, eventsPerId: 2, idPrefix: 'ok-', seed: 11 })
    const deep = `{"event_id":"7b5e3c1e-8a5e-4c1a-9d7e-2f1b3c4d5e6f","id":"deep","payload":${'['.repeat(1000)}${']'.repeat(1000)}}`
    const poison = [
      { key: 'p-json', value: '{"event_id": "not closed' },
      {
        key: 'p-noid',
        value: JSON.stringify({
          event_id: '0b6f7a5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b',
          namespace: 'ns',
          timestamp: '2026-01-01T00:00:00Z',
          type: 't',
          payload: {}
        })
      },
      {
        key: 'p-badeid',
        value: JSON.stringify({
          event_id: 'nope',
          id: 'p-badeid',
          namespace: 'ns',
          timestamp: '2026-01-01T00:00:00Z',
          type: 't',
          payload: {}
        })
      },
      {
        key: 'p-types',
        value: JSON.stringify({
          event_id: '1b6f7a5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b',
          id: 42,
          namespace: 'ns',
          timestamp: 'yesterday',
          type: 't',
          payload: {}
        })
      },
      { key: 'p-deep', value: deep },
      {
        key: 'p-big',
        value: JSON.stringify({
          event_id: '2b6f7a5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b',
          id: 'p-big',
          namespace: 'ns',
          timestamp: '2026-01-01T00:00:00Z',
          type: 't',
          payload: { text: 'y'.repeat(10 * 1024 * 1024) }
        })
      },
      {
        key: 'p-nul',
        value: JSON.stringify({
          event_id: '3b6f7a5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b',
          id: 'p-nul',
          namespace: 'ns',
          timestamp: '2026-01-01T00:00:00Z',
          type: 't',
          payload: { text: 'a\u0000b' }
        })
      }
    ]
    const events = valid.map((e) => ({ topic: stack.topic('memory.events'), key: e.id, value: JSON.stringify(e) }))
    await produce([
      ...events.slice(0, 10),
      ...poison.map((p) => ({ ...p, topic: stack.topic('memory.events') })),
      ...events.slice(10)
    ])
    const summary = await runUntilIdle()
    assert.equal(summary.deadLettered, poison.length)
    const expected = fold(valid)
    const actual = await readMemories(stack.pool, `"${stack.table}"`, 'ok-')
    assert.equal(actual.size, expected.size)
    for (const [id, row] of expected) assert.deepEqual(actual.get(id), row)

    const letters = await readTopic(stack.topic('memory.dlq'), poison.length)
    const stageOf = new Map(letters.map((l) => [l.key, l.headers.get(DeadLetterHeaders.STAGE)]))
    assert.equal(stageOf.get('p-json'), 'decode')
    assert.equal(stageOf.get('p-deep'), 'decode')
    assert.equal(stageOf.get('p-big'), 'decode')
    assert.equal(stageOf.get('p-noid'), 'validate')
    assert.equal(stageOf.get('p-badeid'), 'validate')
    assert.equal(stageOf.get('p-types'), 'validate')
    assert.equal(stageOf.get('p-nul'), 'kv', 'PostgreSQL refuses \\u0000 in jsonb: only that record is dead-lettered')
    const big = letters.find((l) => l.key === 'p-big')
    assert.equal(big?.value?.length, poison[5]!.value.length, 'the dead letter keeps the original bytes')
    for (const l of letters) assert.ok(l.headers.get(DeadLetterHeaders.ERROR_MESSAGE))
  })
})
