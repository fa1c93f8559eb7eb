import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { type TestContext, test } from 'node:test'
import { PGlite } from '@electric-sql/pglite'
import type pg from 'pg'
import { ErrorCodes, kindOf } from '../../../src/errors.ts'
import { memoriesSink as postgresSink } from '../../../src/memory/memories.ts'
import { pglitePool } from '../../../src/sinks/postgres/pglite-pool.ts'
import { envelopes, memoryEvent, readMemories, testSchema } from './helpers.ts'

// The statement's parameters are binary arrays (binary-array.ts), except the event ids of a batch that holds one not
// in the canonical uuid form: those go as a text literal, so PostgreSQL's uuid_in decides as it always did.

async function targets(t: TestContext): Promise<{ name: string; pool?: pg.Pool; table: string; read: pg.Pool }[]> {
  const { schema, pool } = await testSchema(t)
  const db = await PGlite.create()
  t.after(() => db.close())
  const embedded = pglitePool(db)
  return [
    { name: 'server', table: `${schema}.memories`, read: pool },
    { name: 'pglite', pool: embedded, table: 'public.memories', read: embedded }
  ]
}

test('event ids outside the canonical form: what uuid_in accepts is written, the rest refused alone', async (t) => {
  for (const target of await targets(t)) {
    const sink = postgresSink(
      target.pool === undefined
        ? { connectionString: process.env.DATABASE_URL ?? '', table: target.table }
        : { pool: target.pool, table: target.table }
    )
    t.after(() => sink.close())
    const braces = randomUUID()
    const bare = randomUUID()
    const upper = randomUUID()
    const batch = [
      memoryEvent({ id: 'canonical', version: 1 }),
      memoryEvent({ id: 'braces', version: 1, event_id: `{${braces}}` }),
      memoryEvent({ id: 'bare', version: 1, event_id: bare.replaceAll('-', '') }),
      memoryEvent({ id: 'upper', version: 1, event_id: upper.toUpperCase() }),
      memoryEvent({ id: 'garbage', version: 1, event_id: 'not-a-uuid' })
    ]
    const result = await sink.write(envelopes(batch))
    assert.deepEqual(
      result.failures?.map((f) => [f.index, kindOf(f.error), (f.error as { code: string }).code]),
      [[4, 'poison', ErrorCodes.SINK_REJECTED]],
      target.name
    )
    assert.deepEqual(result.outcomes, ['applied', 'applied', 'applied', 'applied', undefined], target.name)
    const rows = await readMemories(target.read, target.table)
    assert.deepEqual(
      ['canonical', 'braces', 'bare', 'upper'].map((id) => rows.get(id)?.eventId),
      [batch[0]!.event_id, braces, bare, upper],
      target.name
    )
    // The same ids again, now in canonical form (binary): duplicates, as the processed table holds them.
    const again = await sink.write(
      envelopes([
        memoryEvent({ id: 'braces', version: 1, event_id: braces }),
        memoryEvent({ id: 'upper', version: 1, event_id: upper })
      ])
    )
    assert.deepEqual(again.outcomes, ['duplicate', 'duplicate'], target.name)
  }
})
