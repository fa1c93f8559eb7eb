import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
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
import { kafkaControl } from '../helpers/stack-control.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

/**
 * How long the broker stays down in each cycle, ms. CI runs two cycles (5 s, and 15 s: longer than the group's
 * session timeout); `npm run reliability -- broker-restart` runs 5 cycles of 5 s and 5 of 60 s.
 */
const DOWNS = (process.env.SFM_BROKER_DOWN_MS ?? '5000,15000').split(',').map(Number)
/** Memory ids in the history (each ~24 events with the duplicates); the events are produced in DOWNS.length + 1 parts. */
const IDS = Number(process.env.SFM_BROKER_IDS ?? 4_000)

const control = brokers() && process.env.DATABASE_URL ? await kafkaControl() : `${NO_KAFKA}; DATABASE_URL too`
const skip = typeof control === 'string' ? control : false

describe('memory topology while the Kafka broker restarts', { skip }, () => {
  test(`broker kill -9 ${DOWNS.length}× under load (down ${DOWNS.map((ms) => `${ms / 1000} s`).join(', ')}): the runner holds and reconnects, never exits; table = fold, DLQ empty`, {
    timeout: 600_000 + DOWNS.reduce((a, b) => a + b + 120_000, 0)
  }, async (t) => {
    if (typeof control === 'string') return
    const prefix = `${uniqueName('b')}.`
    const env = {
      SFM_TOPIC_PREFIX: prefix,
      SFM_MEMORY_TABLE: `mem_${randomBytes(5).toString('hex')}`,
      SFM_MEMORY_GROUP: uniqueName('memory'),
      // This test is about the source and the Kafka producers; the vector branch has its own tests.
      SFM_VECTORS: 'off'
    }
    const topic = `${prefix}memory.events`
    await createTopics(
      t,
      ['memory.events', 'memory.latest', 'memory.audit', 'memory.dlq'].map((n) => prefix + n),
      3
    )
    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
    let runner: ReturnType<typeof startRunner> | undefined
    t.after(async () => {
      if (runner && runner.child.exitCode === null) runner.child.kill('SIGKILL')
      await control.start()
      await pool
        .query(`DROP TABLE IF EXISTS "${env.SFM_MEMORY_TABLE}", "${env.SFM_MEMORY_TABLE}_events_processed" CASCADE`)
        .catch(() => {})
      await pool.end()
    })

    const history = generateHistory({ ids: IDS, eventsPerId: 8, idPrefix: 'brk-', seed: 31, payloadBytes: 800 })
    const events = history.map((e) => ({ topic, key: e.id, value: JSON.stringify(e) }))
    const parts = DOWNS.length + 1
    const part = (i: number) =>
      events.slice(Math.floor((i * events.length) / parts), Math.floor(((i + 1) * events.length) / parts))
    const committedTotal = async () =>
      [...(await committedOffsets(env.SFM_MEMORY_GROUP, topic)).values()].reduce((a, b) => a + (b > 0n ? b : 0n), 0n)

    await produce(part(0))
    runner = startRunner('topologies/memory.ts', env, ['--status-interval=1'])
    const log = runner.stderr
    const alive = (when: string) =>
      assert.equal(runner?.child.exitCode, null, `the runner exited ${when}:\n${log().slice(-3000)}`)
    await waitFor(() => /assigned [1-9]/.test(log()) || runner?.child.exitCode !== null, 90_000, 'partitions')
    alive('before the first outage')

    for (const [cycle, downMs] of DOWNS.entries()) {
      // Load for this cycle, then the kill once the runner is working through it (its commits moved).
      await produce(part(cycle + 1))
      const before = await committedTotal()
      await waitFor(async () => (await committedTotal()) > before, 120_000, 'the runner to commit progress')
      await sleep(Math.random() * 500)
      await control.kill()
      const killedAt = Date.now()
      await sleep(downMs)
      alive(`while the broker was down (cycle ${cycle + 1})`)
      await control.start()
      t.diagnostic(`cycle ${cycle + 1}: broker down ${downMs} ms, answering again after ${Date.now() - killedAt} ms`)
      alive(`as the broker came back (cycle ${cycle + 1})`)
    }

    const total = BigInt(events.length)
    await waitFor(
      async () => (await committedTotal().catch(() => 0n)) >= total,
      300_000,
      'every event to be committed after the last restart'
    )
    alive('after the last restart')
    const exited = once(runner.child, 'exit')
    runner.child.kill('SIGTERM')
    const [code] = await exited
    assert.equal(code, 0, log().slice(-3000))

    const reconnects = log().match(/source: reconnected after/g)?.length ?? 0
    const held = /source HELD/.test(log())
    assert.ok(reconnects > 0, 'the source lost the broker and reconnected at least once')
    assert.ok(held, 'the status line showed the source held')
    assert.doesNotMatch(log(), /fatal|stopped on/i)
    assert.match(log(), /stopped \(signal\): .* dlq 0 /)

    const expected = fold(history)
    const actual = await readMemories(pool, `"${env.SFM_MEMORY_TABLE}"`, 'brk-')
    let lost = 0
    let regressed = 0
    for (const [id, row] of expected) {
      const got = actual.get(id)
      if (!got) lost++
      else if (got.eventId !== row.eventId) regressed++
      else assert.deepEqual(got, row)
    }
    const processed = await pool.query<{ event_id: string }>(
      `SELECT event_id::text FROM "${env.SFM_MEMORY_TABLE}_events_processed"`
    )
    const processedIds = new Set(processed.rows.map((r) => r.event_id))
    const duplicateEffects = processed.rows.length - processedIds.size
    const unique = new Set(history.map((e) => e.event_id))
    const dlq = await readTopic(`${prefix}memory.dlq`, 1, 3_000)
    t.diagnostic(
      `cycles ${DOWNS.length} (down ${DOWNS.join(', ')} ms), events ${events.length} (${unique.size} distinct), ` +
        `reconnects ${reconnects}, lost ${lost}, regressed ${regressed}, duplicate effects ${duplicateEffects}, ` +
        `dead letters ${dlq.length}`
    )
    assert.equal(lost, 0)
    assert.equal(regressed, 0)
    assert.equal(actual.size, expected.size)
    assert.equal(duplicateEffects, 0)
    assert.equal(processedIds.size, unique.size, 'every distinct event was processed')
    assert.equal(dlq.length, 0, 'nothing was dead-lettered')
  })
})
