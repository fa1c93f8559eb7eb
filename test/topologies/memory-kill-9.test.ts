import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import pg from 'pg'
import { fold } from '../../src/memory/fold.ts'
import {
  brokers,
  committedOffsets,
  createTopics,
  NO_KAFKA,
  produce,
  readTopic,
  uniqueName,
  waitFor
} from '../helpers/kafka.ts'
import { generateHistory } from '../helpers/memory-history.ts'
import { startRunner } from '../helpers/runner.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`
/** CI runs a few cycles; `npm run reliability -- kill-9` runs 50 (see scripts/reliability.ts). */
const CYCLES = Number(process.env.SFM_KILL_CYCLES ?? 3)

describe('memory topology under kill -9', { skip }, () => {
  test(`kill -9 the runner ${CYCLES}× during load: 0 lost, 0 regressed, 0 duplicate effects`, {
    timeout: 900_000
  }, async (t) => {
    const prefix = `${uniqueName('k')}.`
    const env = {
      SFM_TOPIC_PREFIX: prefix,
      SFM_MEMORY_TABLE: `mem_${randomBytes(5).toString('hex')}`,
      SFM_MEMORY_GROUP: uniqueName('memory'),
      SFM_KV_BATCH: '200',
      // This test is about the KV path; the vector branch has its own tests (memory-vectors.test.ts).
      SFM_VECTORS: 'off'
    }
    await createTopics(
      t,
      ['memory.events', 'memory.latest', 'memory.audit', 'memory.dlq'].map((n) => prefix + n),
      3
    )
    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
    t.after(async () => {
      await pool
        .query(`DROP TABLE IF EXISTS "${env.SFM_MEMORY_TABLE}", "${env.SFM_MEMORY_TABLE}_events_processed" CASCADE`)
        .catch(() => {})
      await pool.end()
    })
    const history = generateHistory({ ids: 3_000, eventsPerId: 8, idPrefix: 'kill-', seed: 5, payloadBytes: 800 })
    const events = history.map((e) => ({ topic: `${prefix}memory.events`, key: e.id, value: JSON.stringify(e) }))
    await produce(events)

    const committedTotal = async () =>
      [...(await committedOffsets(env.SFM_MEMORY_GROUP, `${prefix}memory.events`)).values()].reduce(
        (a, b) => a + (b > 0n ? b : 0n),
        0n
      )
    let midStream = 0
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const runner = startRunner('topologies/memory.ts', env, ['--status-interval=0'])
      await waitFor(() => /assigned [1-9]/.test(runner.stderr()), 90_000, 'the runner to get partitions')
      // Kill once this runner has made progress (its commits moved), at a random point after that. A runner that
      // already committed everything has nothing left to interrupt: then the cycles end early.
      const before = await committedTotal()
      const total = BigInt(events.length)
      await waitFor(
        async () => {
          const now = await committedTotal()
          return now > before || now >= total
        },
        120_000,
        'the runner to commit progress'
      )
      await new Promise((r) => setTimeout(r, Math.random() * 800))
      const exited = once(runner.child, 'exit')
      runner.child.kill('SIGKILL')
      await exited
      if ((await committedTotal()) >= total) break
      midStream++
    }
    const final = startRunner('topologies/memory.ts', env, ['--status-interval=0', '--until-idle=3'])
    const [code] = await once(final.child, 'exit')
    assert.equal(code, 0, final.stderr())

    const expected = fold(history)
    const actual = await readMemories(pool, `"${env.SFM_MEMORY_TABLE}"`, 'kill-')
    let lost = 0
    let regressed = 0
    for (const [id, row] of expected) {
      const got = actual.get(id)
      if (!got) lost++
      else if (got.eventId !== row.eventId) regressed++
      else assert.deepEqual(got, row)
    }
    assert.equal(actual.size, expected.size)
    // Effects: every distinct event was recorded exactly once as processed (the table's primary key makes a second
    // application impossible), and nothing else was.
    const processed = await pool.query<{ event_id: string }>(
      `SELECT event_id::text FROM "${env.SFM_MEMORY_TABLE}_events_processed"`
    )
    const unique = new Set(history.map((e) => e.event_id))
    const processedIds = new Set(processed.rows.map((r) => r.event_id))
    const duplicateEffects = processed.rows.length - processedIds.size
    const missingEvents = [...unique].filter((id) => !processedIds.has(id)).length
    // The audit topic is at-least-once (a produce retried after a lost acknowledgement repeats records): reported only.
    const audit = await readTopic(`${prefix}memory.audit`, Number.MAX_SAFE_INTEGER, 5_000)
    t.diagnostic(
      `cycles ${CYCLES} (mid-stream ${midStream}), events ${history.length} (${unique.size} distinct), lost ${lost}, regressed ${regressed}, duplicate effects ${duplicateEffects}, audit records ${audit.length}`
    )
    assert.equal(lost, 0)
    assert.equal(regressed, 0)
    assert.equal(duplicateEffects, 0)
    assert.equal(missingEvents, 0, 'every distinct event was processed')
    assert.equal(processedIds.size, unique.size)
    assert.ok(midStream > 0, 'at least one kill landed mid-stream')
  })
})
