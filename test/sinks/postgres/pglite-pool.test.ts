import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { PGlite } from '@electric-sql/pglite'
import type pg from 'pg'
import { ErrorCodes, kindOf } from '../../../src/errors.ts'
import { fold } from '../../../src/memory/fold.ts'
import { migrate, memoriesSink as postgresSink, tableNames } from '../../../src/memory/memories.ts'
import { acquirePglite } from '../../../src/pglite/shared.ts'
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

/** A trigger that fails every transaction touching `table` at its COMMIT (a deferred constraint trigger). */
async function failCommitsOf(pool: pg.Pool, table: string, sqlstate: string): Promise<void> {
  await pool.query(`
    CREATE FUNCTION fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'refused at commit' USING ERRCODE = '${sqlstate}'; END $$;
    CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT OR UPDATE ON ${table}
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_at_commit();`)
}

test('PGlite: release returns the COMMIT; a failed COMMIT rejects it, also through the client COMMIT', async (t) => {
  const { pool } = await pglite(t)
  await pool.query('CREATE TABLE t (n int)')
  await failCommitsOf(pool, 't', '40001')
  const client = await pool.connect()
  await client.query('INSERT INTO t VALUES ($1)', [1])
  // The statement itself succeeds: the failure comes only with the COMMIT that release starts.
  await assert.rejects(
    client.release() as unknown as Promise<void>,
    (error: { code?: string }) => error.code === '40001'
  )
  const other = await pool.connect()
  await other.query('BEGIN')
  await other.query('INSERT INTO t VALUES ($1)', [2])
  await assert.rejects(other.query('COMMIT'), (error: { code?: string }) => error.code === '40001')
  other.release()
  assert.equal((await pool.query('SELECT n FROM t')).rowCount, 0)
  // A successful lease: its release resolves after the COMMIT, so the row is there as soon as it does.
  await pool.query('DROP TRIGGER fail_at_commit ON t')
  const ok = await pool.connect()
  await ok.query('INSERT INTO t VALUES ($1)', [3])
  await (ok.release() as unknown as Promise<void>)
  assert.equal((await pool.query('SELECT n FROM t')).rowCount, 1)
})

test('PGlite: a batch whose COMMIT fails is not acknowledged: the write fails retriable, nothing is lost', async (t) => {
  const { pool } = await pglite(t)
  const sink = postgresSink({ pool, table: 'memories' })
  t.after(() => sink.close())
  await sink.write(envelopes([memoryEvent({ id: 'before', version: 1 })]))
  await failCommitsOf(pool, 'memories', '40001')
  const batch = Array.from({ length: 20 }, (_, i) => memoryEvent({ id: `c${i}`, version: 1 }))
  await assert.rejects(sink.write(envelopes(batch)), (error: unknown) => {
    assert.equal(kindOf(error), 'retriable')
    assert.match((error as Error).message, /commit failed: refused at commit/)
    return true
  })
  assert.deepEqual([...(await readMemories(pool, 'public.memories')).keys()], ['before'])
  // The retry, once the cause is gone, writes the batch.
  await pool.query('DROP TRIGGER fail_at_commit ON memories')
  const retried = await sink.write(envelopes(batch))
  assert.equal(retried.counts.applied, 20)
  assert.equal((await readMemories(pool, 'public.memories')).size, 21)
})

test('PGlite: kill -9 the moment a batch is acknowledged loses nothing of it (a real process, then reopen)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sfm-ack-kill-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const rounds = 3
  const batches = 3
  for (let round = 0; round < rounds; round++) {
    const child = spawn(process.execPath, ['test/fixtures/pglite-ack-kill.ts', dir, `r${round}`, `${batches}`, '500'], {
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let out = ''
    let err = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
    })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk
    })
    const [, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null]
    assert.equal(signal, 'SIGKILL', err)
    assert.equal(out.trim().split('\n').at(-1), `acked ${batches - 1}`)
    // Reopen the folder as the next run would: every acknowledged event is there.
    const shared = await acquirePglite(dir)
    try {
      const pool = pglitePool(shared.db)
      const rows = await readMemories(pool, 'public.memories')
      for (let b = 0; b < batches; b++) {
        for (let i = 0; i < 500; i++)
          assert.ok(rows.has(`r${round}b${b}-${i}`), `round ${round}: b${b}-${i} acknowledged, lost`)
      }
    } finally {
      await shared.release()
    }
  }
})
