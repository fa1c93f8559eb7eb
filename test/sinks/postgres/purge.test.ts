import assert from 'node:assert/strict'
import { test } from 'node:test'
import { memoriesSink as postgresSink } from '../../../src/memory/memories.ts'
import { purgeProcessed, purgeTombstones } from '../../../src/sinks/postgres/index.ts'
import { databaseUrl, envelopes, memoryEvent, readMemories, testSchema } from './helpers.ts'

test('purgeTombstones removes old tombstones only; purgeProcessed removes old event ids', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const sink = postgresSink({ connectionString: databaseUrl(), table })
  t.after(() => sink.close())
  const a = memoryEvent({ id: 'a', version: 1 })
  const b = memoryEvent({ id: 'b', version: 1 })
  const deletes = ['b', 'c', 'd'].map((id) =>
    memoryEvent({ id, version: 2, op: 'delete', type: undefined, payload: undefined })
  )
  await sink.write(envelopes([a, b]))
  await sink.write(envelopes(deletes))

  assert.equal(await purgeTombstones(pool, table, { olderThanMs: 3_600_000 }), 0)
  assert.equal(await purgeTombstones(pool, table, { olderThanMs: 0, chunkSize: 2 }), 3)
  assert.deepEqual([...(await readMemories(pool, table)).keys()], ['a'])

  const processedTable = `${schema}.memory_events_processed`
  assert.equal(await purgeProcessed(pool, processedTable, { olderThanMs: 3_600_000 }), 0)
  assert.equal(await purgeProcessed(pool, processedTable, { olderThanMs: 0 }), 5)
  // Without its event id, a redelivered event is still stopped by the fence while its row exists…
  assert.deepEqual((await sink.write(envelopes([a]))).outcomes, ['duplicate'])
  // …but once both its tombstone and its event id are gone, an old upsert comes back: hence the retention rules.
  assert.deepEqual((await sink.write(envelopes([b]))).outcomes, ['applied'])

  await assert.rejects(purgeTombstones(pool, table, { olderThanMs: -1 }), RangeError)
})
