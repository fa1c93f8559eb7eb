import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, test } from 'node:test'
import pg from 'pg'
import { fold } from '../../src/memory/fold.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { memoryTopology } from '../../topologies/memory.ts'
import { brokers, committedOffsets, createTopics, NO_KAFKA, produce, uniqueName, waitFor } from '../helpers/kafka.ts'
import { generateHistory } from '../helpers/memory-history.ts'
import { postgresControl } from '../helpers/stack-control.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

/** 30 s by default (the issue asks for 30–60 s); shorten it locally with SFM_PG_OUTAGE_MS. */
const OUTAGE_MS = Number(process.env.SFM_PG_OUTAGE_MS ?? 30_000)

const control = brokers() && process.env.DATABASE_URL ? await postgresControl() : `${NO_KAFKA}; DATABASE_URL too`
const skip = typeof control === 'string' ? control : false

describe('memory topology while PostgreSQL is down', { skip }, () => {
  test(`PostgreSQL stopped for ${OUTAGE_MS / 1000} s under load: held, nothing dead-lettered, ends equal to the fold`, {
    timeout: 300_000
  }, async (t) => {
    if (typeof control === 'string') return
    const prefix = `${uniqueName('o')}.`
    const table = `mem_${randomBytes(5).toString('hex')}`
    const group = uniqueName('memory')
    await createTopics(
      t,
      ['memory.events', 'memory.latest', 'memory.audit', 'memory.dlq'].map((n) => prefix + n),
      3
    )
    const saved = { ...process.env }
    Object.assign(process.env, {
      SFM_TOPIC_PREFIX: prefix,
      SFM_MEMORY_TABLE: table,
      SFM_MEMORY_GROUP: group,
      SFM_KV_BATCH: '200',
      // This test is about the KV path; the vector branch has its own outage test (memory-vectors.test.ts).
      SFM_VECTORS: 'off'
    })
    t.after(async () => {
      process.env = saved
      await control.start().catch(() => {})
      const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
      await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_events_processed" CASCADE`).catch(() => {})
      await pool.end()
    })

    const history = generateHistory({ ids: 400, eventsPerId: 8, idPrefix: 'out-', seed: 23, payloadBytes: 1000 })
    const events = history.map((e) => ({ topic: `${prefix}memory.events`, key: e.id, value: JSON.stringify(e) }))
    const half = Math.floor(events.length / 2)
    await produce(events.slice(0, half))

    const runtime = new Runtime(await memoryTopology(), { untilIdleMs: 3_000 })
    const run = runtime.run()
    await waitFor(() => runtime.stats().done > 500, 60_000, 'the topology to apply some events')
    await control.stop()
    // Load keeps arriving while the database is down.
    await produce(events.slice(half))
    const downSince = Date.now()
    await waitFor(() => runtime.stats().sinkRetries > 0, 30_000, 'the sink to start retrying')
    const during = runtime.stats()
    await new Promise((r) => setTimeout(r, Math.max(0, OUTAGE_MS - (Date.now() - downSince))))
    const held = runtime.stats()
    assert.equal(held.deadLettered, 0, 'nothing is dead-lettered because the database is down')
    assert.ok(held.inFlight <= 20_000)
    // Only duplicates dropped by dedupe (no write needed) can complete while the database is down.
    assert.equal(held.done - during.done, held.dropped - during.dropped, 'no write completes while PostgreSQL is down')
    await control.start()

    const summary = await run
    assert.equal(summary.deadLettered, 0)
    assert.ok(summary.sinkRetries > 0)
    t.diagnostic(`outage ${OUTAGE_MS} ms, sink retries ${summary.sinkRetries}, events ${history.length}`)

    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
    t.after(() => pool.end())
    const expected = fold(history)
    const actual = await readMemories(pool, `"${table}"`, 'out-')
    assert.equal(actual.size, expected.size)
    for (const [id, row] of expected) assert.deepEqual(actual.get(id), row, `row ${id}`)
    const committed = await committedOffsets(group, `${prefix}memory.events`)
    assert.equal(
      [...committed.values()].reduce((a, b) => a + b, 0n),
      BigInt(events.length),
      'lag is back to 0'
    )
  })
})
