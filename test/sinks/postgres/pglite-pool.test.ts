import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PGlite } from '@electric-sql/pglite'
import type pg from 'pg'
import { ErrorCodes, kindOf } from '../../../src/errors.ts'
import { fold, migrate, postgresSink, tableNames } from '../../../src/sinks/postgres/index.ts'
import { pglitePool } from '../../../src/sinks/postgres/pglite-pool.ts'
import { generateHistory } from '../../helpers/memory-history.ts'
import { envelopes, memoryEvent, readMemories } from './helpers.ts'

/** An in-memory PGlite behind the pool adapter, closed after the test. */
async function pglite(t: import('node:test').TestContext): Promise<{ db: PGlite; pool: pg.Pool }> {
  const db = await PGlite.create()
  t.after(() => db.close())
  return { db, pool: pglitePool(db) }
}

test('PGlite: the same migrations and statement give the fold of a history with duplicates and reorders', async (t) => {
  const { pool } = await pglite(t)
  const sink = postgresSink({ pool, table: 'memories' })
  t.after(() => sink.close())
  const history = generateHistory({ ids: 60, eventsPerId: 6, idPrefix: 'p', seed: 7 })
  for (let i = 0; i < history.length; i += 97) await sink.write(envelopes(history.slice(i, i + 97)))
  // Redelivering all of it changes nothing.
  const again = await sink.write(envelopes(history))
  assert.equal(again.counts.applied, 0)
  assert.deepEqual(await readMemories(pool, 'public.memories'), fold(history))
  // Migrating again is a no-op (the ledger says 0001 is applied, checksum unchanged).
  assert.deepEqual((await migrate(pool, tableNames('memories'))).applied, [])
})

test('PGlite: a refused record is isolated by bisection with the server SQLSTATE; the rest is written', async (t) => {
  const { pool } = await pglite(t)
  const sink = postgresSink({ pool, table: 'memories' })
  t.after(() => sink.close())
  const batch = Array.from({ length: 10 }, (_, i) => memoryEvent({ id: `m${i}`, version: 1 }))
  batch[6] = memoryEvent({ id: 'm6', version: 1, payload: { text: 'nul \u0000 inside' } })
  const result = await sink.write(envelopes(batch))
  assert.deepEqual(
    result.failures?.map((f) => f.index),
    [6]
  )
  const error = result.failures![0]!.error as { code: string; details: Record<string, unknown> }
  assert.equal(kindOf(error), 'poison')
  assert.equal(error.code, ErrorCodes.SINK_REJECTED)
  assert.equal(error.details.sqlstate, '22P05')
  const rows = await readMemories(pool, 'public.memories')
  assert.equal(rows.size, 9)
  // The failed statements left no transaction open: a later batch is written.
  const next = await sink.write(envelopes([memoryEvent({ id: 'm6', version: 2 })]))
  assert.equal(next.counts.applied, 1)
})

test('PGlite: a checked-out client is exclusive; ROLLBACK and release(true) undo its work', async (t) => {
  const { db, pool } = await pglite(t)
  await pool.query('CREATE TABLE t (n int)')
  const client = await pool.connect()
  await client.query('BEGIN')
  await client.query('INSERT INTO t VALUES ($1)', [1])
  // Another user of the same PGlite (the vector store) waits until the client is released.
  let outside = false
  const other = db.query('INSERT INTO t VALUES (2)').then(() => {
    outside = true
  })
  await new Promise((resolve) => setTimeout(resolve, 50))
  assert.equal(outside, false)
  await client.query('ROLLBACK')
  client.release()
  await other
  const { rows } = await pool.query<{ n: number }>('SELECT n FROM t ORDER BY n')
  assert.deepEqual(
    rows.map((r) => r.n),
    [2]
  )
  const broken = await pool.connect()
  await broken.query('INSERT INTO t VALUES ($1)', [3])
  broken.release(true)
  assert.equal((await pool.query('SELECT 1 FROM t WHERE n = $1', [3])).rowCount, 0)
  // rowCount as pg reports it: rows returned by a SELECT, rows changed by an UPDATE.
  assert.equal((await pool.query('SELECT 1 FROM t WHERE n = $1', [2])).rowCount, 1)
  assert.equal((await pool.query('UPDATE t SET n = n + $1', [1])).rowCount, 1)
})

test('PGlite: jsonb parameters (sent in binary) arrive as JSON text would: non-ASCII, objects, bigints, errors', async (t) => {
  const { pool } = await pglite(t)
  const text = '{"text":"café ☕ 𝄞 \\"quoted\\" \\\\ back","n":[1,2.5,null]}'
  const { rows } = await pool.query<{ v: unknown; t: string }>('SELECT $1::jsonb AS v, $1::jsonb::text AS t', [text])
  assert.deepEqual(rows[0]!.v, JSON.parse(text))
  assert.equal(rows[0]!.t, '{"n": [1, 2.5, null], "text": "café ☕ 𝄞 \\"quoted\\" \\\\ back"}')
  const object = await pool.query<{ v: unknown }>('SELECT $1::jsonb AS v', [{ a: 1n, b: ['x'] }])
  assert.deepEqual(object.rows[0]!.v, { a: '1', b: ['x'] })
  // Invalid JSON is refused by PostgreSQL with its own SQLSTATE, as in the text format.
  await assert.rejects(pool.query('SELECT $1::jsonb', ['{"a":']), (error: { code?: string }) => error.code === '22P02')
  await assert.rejects(
    pool.query('SELECT $1::jsonb', ['"\\u0000"']),
    (error: { code?: string }) => error.code === '22P05'
  )
})
