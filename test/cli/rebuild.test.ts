import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, test } from 'node:test'
import type { OutgoingMessage } from '../../src/kafka/messages.ts'
import { migrate, tableNames } from '../../src/memory/memories.ts'
import type { RebuildKvReport } from '../../src/memory/rebuild.ts'
import { linesAfterStackChoice, runCli } from '../helpers/dlq.ts'
import { brokers, createTopics, NO_KAFKA, produce, uniqueName } from '../helpers/kafka.ts'
import { testSchema } from '../sinks/postgres/helpers.ts'

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA} (and DATABASE_URL)`
const rebuild = (args: string[]) => runCli('src/cli/rebuild.ts', args, { ...process.env })

const state = (id: string, version: number, eventId = randomUUID()) => ({
  id,
  namespace: 'ns',
  type: 'note',
  importance: 0.5,
  version,
  event_id: eventId,
  timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, version)).toISOString(),
  payload: { text: `${id} v${version}` }
})

describe('npm run rebuild -- kv', () => {
  test('builds from memory.latest, equal to the fold; refuses an existing table; --swap merges and exchanges', {
    skip,
    timeout: 120_000
  }, async (t) => {
    const { schema, pool } = await testSchema(t, 'sfm_rebuild')
    const topic = uniqueName('latest')
    await createTopics(t, [topic], 3)
    // 30 memories; m0..m9 updated (a second, newer record); m20..m24 deleted (state, then a tombstone).
    const messages: OutgoingMessage[] = []
    const last = new Map<string, ReturnType<typeof state> | null>()
    for (let i = 0; i < 30; i++) {
      const s = state(`m${i}`, 1)
      messages.push({ topic, key: s.id, value: JSON.stringify(s) })
      last.set(s.id, s)
    }
    for (let i = 0; i < 10; i++) {
      const s = state(`m${i}`, 2)
      messages.push({ topic, key: s.id, value: JSON.stringify(s) })
      last.set(s.id, s)
    }
    for (let i = 20; i < 25; i++) {
      messages.push({ topic, key: `m${i}`, value: null })
      last.set(`m${i}`, null)
    }
    await produce(messages)

    // The live table, as the running topology keeps it: the same states, plus what it wrote after the rebuild
    // started (m29 at version 3; updated_at in the future stands for "after the start") and a tombstone of m20.
    const live = `${schema}.memories`
    await migrate(pool, tableNames(live))
    const q = `"${schema}"."memories"`
    for (const s of last.values()) {
      if (s === null) continue
      await pool.query(
        `INSERT INTO ${q} (id, namespace, type, payload, importance, version, event_id, event_ts, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() - interval '1 hour')`,
        [s.id, s.namespace, s.type, JSON.stringify(s.payload), s.importance, s.version, s.event_id, s.timestamp]
      )
    }
    const newer = state('m29', 3)
    await pool.query(
      `UPDATE ${q} SET version = 3, event_id = $1, event_ts = $2, payload = $3, updated_at = now() + interval '1 hour'
       WHERE id = 'm29'`,
      [newer.event_id, newer.timestamp, JSON.stringify(newer.payload)]
    )
    await pool.query(
      `INSERT INTO ${q} (id, namespace, version, event_id, event_ts, deleted_at, updated_at)
       VALUES ('m20', 'ns', 2, $1, $2, $2, now() - interval '1 hour')`,
      [randomUUID(), new Date(Date.UTC(2026, 0, 1, 0, 0, 2)).toISOString()]
    )

    const built = await rebuild(['kv', '--into', `${schema}.rebuilt`, '--table', live, '--topic', topic])
    assert.equal(built.code, 0, built.stderr)
    const report = JSON.parse(built.stdout) as RebuildKvReport
    assert.deepEqual(
      { records: report.records, memories: report.memories, deleted: report.deleted, mismatches: report.mismatches },
      { records: 45, memories: 25, deleted: 5, mismatches: 0 }
    )
    assert.equal(report.swapped, false)
    assert.match(built.stderr, /rebuild: read 45\/45 records/)
    const rows = await pool.query<{ id: string; version: string; event_id: string; payload: { text: string } }>(
      `SELECT id, version::text, event_id::text, payload FROM "${schema}"."rebuilt" ORDER BY id`
    )
    assert.equal(rows.rows.length, 25)
    for (const row of rows.rows) {
      const want = last.get(row.id)!
      assert.equal(Number(row.version), want.version, row.id)
      assert.equal(row.event_id, want.event_id)
      assert.deepEqual(row.payload, want.payload)
    }
    const liveCount = async () => Number((await pool.query(`SELECT count(*) AS n FROM ${q}`)).rows[0].n)
    assert.equal(await liveCount(), 26, 'the live table is untouched')

    const again = await rebuild(['kv', '--into', `${schema}.rebuilt`, '--table', live, '--topic', topic])
    assert.equal(again.code, 1)
    assert.equal(linesAfterStackChoice(again.stderr).length, 2, again.stderr)
    assert.match(again.stderr, /table .*rebuilt exists: choose a new --into/)
    assert.equal(Number((await pool.query(`SELECT count(*) AS n FROM "${schema}"."rebuilt"`)).rows[0].n), 25)

    // Small batches: the scan waits for each write (the same fold, in 12 INSERTs).
    const swapped = await rebuild([
      'kv',
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
    const r = JSON.parse(swapped.stdout) as RebuildKvReport
    assert.equal(r.swapped, true)
    assert.equal(r.mismatches, 0)
    assert.equal(r.records, 45)
    assert.equal(r.merged, 2, 'the newer m29 and the m20 tombstone')
    assert.match(swapped.stderr, /swapped in for the live table/)
    const now = await pool.query<{ id: string; version: string; deleted: boolean }>(
      `SELECT id, version::text, deleted_at IS NOT NULL AS deleted FROM ${q} WHERE id IN ('m29', 'm20', 'm0')
       ORDER BY id`
    )
    assert.deepEqual(
      now.rows.map((row) => [row.id, Number(row.version), row.deleted]),
      [
        ['m0', 2, false],
        ['m20', 2, true],
        ['m29', 3, false]
      ]
    )
    assert.equal(await liveCount(), 26, '25 memories and the tombstone')
    const previous = await pool.query(`SELECT count(*) AS n FROM "${schema}"."fresh"`)
    assert.equal(Number(previous.rows[0].n), 26, 'the previous live table keeps the --into name')
  })

  test('usage and configuration errors', async () => {
    const runs = await Promise.all([
      rebuild(['kv']),
      rebuild(['vectors']),
      rebuild(['kv', 'x']),
      rebuild(['graph', '--into', 'x']),
      rebuild(['kv', '--into', 'x', '--batch-size', '0'])
    ])
    for (const run of runs) {
      assert.equal(run.code, 2, run.stderr)
      assert.match(run.stderr, /--help/)
    }
    assert.match(runs[0]!.stderr, /--into <table> is required/)
    assert.match(runs[1]!.stderr, /--into <table> is required/)
    assert.match(runs[3]!.stderr, /unknown command "graph" \(expected kv or vectors\)/)
    // No running local stack either (npm test's private stack is one: its stack.env would fill DATABASE_URL).
    const env = { ...process.env, DATABASE_URL: '', SFM_STACK_DIR: '/nonexistent/sfm-stack' }
    const noDb = await runCli('src/cli/rebuild.ts', ['kv', '--into', 'x'], env)
    assert.equal(noDb.code, 1)
    assert.match(noDb.stderr, /DATABASE_URL is not set/)
  })
})
