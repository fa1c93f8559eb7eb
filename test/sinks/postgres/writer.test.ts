import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { type TestContext, test } from 'node:test'
import type pg from 'pg'
import type { MemoryEvent } from '../../../src/memory/event.ts'
import { fold } from '../../../src/memory/fold.ts'
import { memoriesSink as postgresSink } from '../../../src/memory/memories.ts'
import { databaseUrl, envelopes, memoryEvent, readMemories, serverAndPglite, testSchema } from './helpers.ts'

// After a few clean batches the writer claims event ids with a plain INSERT (dialect.ts, ClaimModes); a batch that
// holds an event processed before must then be run again skipping duplicates, with the same outcomes and table as
// the statement that always skips them.

/**
 * The memories sink on `table`, and a write that adds the batch to `history`, asserts it failed nothing and gives
 * its outcomes.
 */
function recordingWriter(t: TestContext, pool: pg.Pool, table: string, name: string) {
  const sink = postgresSink({ pool, table })
  t.after(() => sink.close())
  const history: MemoryEvent[] = []
  const write = async (batch: MemoryEvent[]) => {
    history.push(...batch)
    const result = await sink.write(envelopes(batch))
    assert.equal(result.failures?.length ?? 0, 0, name)
    return result.outcomes
  }
  return { history, write }
}

function fresh(prefix: string, n: number, version = 1): MemoryEvent[] {
  return Array.from({ length: n }, (_, i) => memoryEvent({ id: `${prefix}${i}`, version }))
}

async function preparedClaims(pool: pg.Pool): Promise<{ plain: number; skipping: number }> {
  const { rows } = await pool.query<{ statement: string }>(
    `SELECT statement FROM pg_prepared_statements WHERE name LIKE 'sfm_pg_write_%'`
  )
  const skipping = rows.filter((r) => r.statement.includes('ON CONFLICT (event_id) DO NOTHING')).length
  return { plain: rows.length - skipping, skipping }
}

test('plain claim after clean batches; a redelivered event runs the batch again: duplicate, the rest applied', async (t) => {
  const { schema } = await testSchema(t)
  // One server connection, so that pg_prepared_statements shows what the sink prepared on it.
  for (const { name, pool, prefix } of await serverAndPglite(t, schema)) {
    const table = `${prefix}memories`
    const { history, write } = recordingWriter(t, pool, table, name)
    for (let b = 0; b < 3; b++) await write(fresh(`c${b}-`, 20))
    assert.deepEqual(await write(fresh('p-', 5)), Array(5).fill('applied'), name)
    if (name === 'server') assert.deepEqual(await preparedClaims(pool), { plain: 1, skipping: 1 })
    // A redelivery (same event_id), a new memory and an update, in plain mode.
    const redelivered = history[3]!
    const update = memoryEvent({ id: 'c0-5', version: 2 })
    assert.deepEqual(
      await write([memoryEvent({ id: 'n-1', version: 1 }), redelivered, update]),
      ['applied', 'duplicate', 'applied'],
      name
    )
    // Back to skipping duplicates: the same event again is a duplicate, new ones are applied.
    assert.deepEqual(await write([redelivered, memoryEvent({ id: 'n-2', version: 1 })]), ['duplicate', 'applied'], name)
    assert.deepEqual(await readMemories(pool, table), fold(history), name)
    const { rows } = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM ${table.replace('memories', 'memory_events_processed')}`
    )
    assert.equal(Number(rows[0]!.n), new Set(history.map((e) => e.event_id)).size, name)
  }
})

test('two writers in plain mode write the same events at once: each applied once, the other reports duplicates', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const sinks = [0, 1].map(() => postgresSink({ connectionString: databaseUrl(), table, poolSize: 2 }))
  t.after(() => Promise.all(sinks.map((s) => s.close())))
  const history: MemoryEvent[] = []
  for (const [i, sink] of sinks.entries()) {
    for (let b = 0; b < 3; b++) {
      const batch = fresh(`w${i}-${b}-`, 10)
      history.push(...batch)
      await sink.write(envelopes(batch))
    }
  }
  for (let round = 0; round < 5; round++) {
    const shared = [...fresh(`s${round}-`, 40), memoryEvent({ id: 'w0-0-1', version: 2 + round })]
    history.push(...shared)
    const results = await Promise.all(sinks.map((sink) => sink.write(envelopes(shared))))
    for (const result of results) assert.equal(result.failures?.length ?? 0, 0)
    for (let k = 0; k < shared.length; k++) {
      const outcomes = results.map((r) => r.outcomes[k]).sort()
      assert.deepEqual(outcomes, ['applied', 'duplicate'], `round ${round}, event ${k}`)
    }
  }
  assert.deepEqual(await readMemories(pool, table), fold(history))
})

/** Executions of the sink's prepared write statements on the pool's one connection, by kind. */
async function executions(pool: pg.Pool): Promise<{ rowsInsert: number; rowsUpsert: number }> {
  const { rows } = await pool.query<{ statement: string; runs: string }>(
    `SELECT statement, generic_plans + custom_plans AS runs FROM pg_prepared_statements
      WHERE name LIKE 'sfm_pg_write_%'`
  )
  let rowsInsert = 0
  let rowsUpsert = 0
  for (const row of rows) {
    if (/ON CONFLICT \(id\) DO UPDATE/.test(row.statement)) rowsUpsert += Number(row.runs)
    else rowsInsert += Number(row.runs)
  }
  return { rowsInsert, rowsUpsert }
}

test('plain rows insert after clean batches; a stored key runs the batch again upserting: fence outcomes, then upserts for a while', async (t) => {
  const { schema } = await testSchema(t)
  // One server connection, so that pg_prepared_statements shows what the sink prepared on it.
  for (const { name, pool, prefix } of await serverAndPglite(t, schema)) {
    const table = `${prefix}memories`
    const { history, write } = recordingWriter(t, pool, table, name)
    for (let b = 0; b < 3; b++) await write(fresh(`c${b}-`, 20))
    // Plain claim, rows inserted: new memories, a delete of a new one (a tombstone), all applied.
    assert.deepEqual(
      await write([...fresh('p-', 4), memoryEvent({ id: 'p-d', version: 3, op: 'delete' })]),
      Array(5).fill('applied'),
      name
    )
    const before = name === 'server' ? await executions(pool) : undefined
    if (before !== undefined) assert.deepEqual(before, { rowsInsert: 1, rowsUpsert: 3 }, name)
    // Stored keys in plain mode: the insert fails, the batch is upserted under the fence with the exact outcomes.
    const stored = history[5]!
    const outcomes = await write([
      memoryEvent({ id: 'n-1', version: 1 }),
      memoryEvent({ id: 'c0-7', version: 2 }),
      memoryEvent({ id: 'c1-2', version: 0 }),
      { ...stored, event_id: randomUUID() },
      memoryEvent({ id: 'c2-3', version: 2, op: 'delete' }),
      memoryEvent({ id: 'p-d', version: 2 })
    ])
    assert.deepEqual(outcomes, ['applied', 'applied', 'fenced', 'duplicate', 'applied', 'fenced'], name)
    // The next clean batches upsert (the claim stays plain): a stream that updates does not pay a failure per batch.
    for (let b = 0; b < 3; b++) {
      assert.deepEqual(await write(fresh(`u${b}-`, 3)), Array(3).fill('applied'), name)
    }
    if (before !== undefined) {
      // The failed insert, the batch again upserting and skipping duplicates, then three upserts.
      assert.deepEqual(await executions(pool), { rowsInsert: 2, rowsUpsert: 7 }, name)
    }
    assert.deepEqual(await readMemories(pool, table), fold(history), name)
  }
})
