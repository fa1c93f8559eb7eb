import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { ErrorCodes, kindOf } from '../../../src/errors.ts'
import type { MemoryEvent } from '../../../src/memory/event.ts'
import { memoriesSink as postgresSink } from '../../../src/memory/memories.ts'
import type { OutcomeCounts } from '../../../src/sinks/postgres/index.ts'
import {
  DatabaseProxy,
  databaseUrl,
  envelopes,
  lockRow,
  memoryEvent,
  readMemories,
  recordingHost,
  testSchema,
  waitForLockWait
} from './helpers.ts'

function upsert(id: string, version: number, fields: Partial<MemoryEvent> = {}): MemoryEvent {
  return memoryEvent({ id, version, payload: { text: `${id} v${version}` }, ...fields })
}

function remove(id: string, version: number, timestamp = '2025-01-01T00:00:00Z'): MemoryEvent {
  return memoryEvent({ id, version, op: 'delete', type: undefined, payload: undefined, timestamp })
}

async function count(pool: import('pg').Pool, table: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)
  return Number(rows[0]!.n)
}

test('same id several times in one batch: one statement, the fence winner stays', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const sink = postgresSink({ connectionString: databaseUrl(), table })
  t.after(() => sink.close())
  const v3 = upsert('a', 3)
  const batch = [
    upsert('a', 1),
    v3,
    upsert('b', 0),
    upsert('a', 2, { timestamp: '2030-01-01T00:00:00Z' }),
    v3,
    remove('b', 0, '2025-01-01T00:00:01Z'),
    upsert('a', 3, { timestamp: '2025-01-01T01:00:00+01:00' })
  ]
  const host = recordingHost()
  const result = await sink.write(envelopes(batch, host))
  assert.deepEqual(result.failures, [])
  assert.deepEqual(result.outcomes, ['fenced', 'applied', 'fenced', 'fenced', 'duplicate', 'applied', 'duplicate'])
  assert.deepEqual(result.counts, { applied: 2, fenced: 3, duplicate: 2, failed: 0 })
  const rows = await readMemories(pool, table)
  assert.equal(rows.get('a')!.eventId, v3.event_id)
  assert.deepEqual(rows.get('a')!.payload, { text: 'a v3' })
  assert.equal(rows.get('b')!.deletedAt, '2025-01-01T00:00:01.000000Z')
  assert.equal(rows.get('b')!.payload, null)
  assert.deepEqual(host.calls, [], 'the sink neither settles nor dead-letters envelopes')
})

test('redelivery is a duplicate; a stale event is fenced; a tombstone blocks resurrection', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const seen: OutcomeCounts[] = []
  const sink = postgresSink({
    connectionString: databaseUrl(),
    table,
    onOutcomes: (_outcomes, counts) => seen.push(counts)
  })
  t.after(() => sink.close())
  const first = [upsert('a', 1), upsert('b', 1)]
  assert.deepEqual((await sink.write(envelopes(first))).outcomes, ['applied', 'applied'])
  assert.deepEqual((await sink.write(envelopes(first))).outcomes, ['duplicate', 'duplicate'])
  // Same (version, timestamp) as stored, other event id: a duplicate too, and the stored event stays.
  assert.deepEqual((await sink.write(envelopes([upsert('a', 1)]))).outcomes, ['duplicate'])
  assert.equal((await readMemories(pool, table)).get('a')!.eventId, first[0]!.event_id)

  assert.deepEqual((await sink.write(envelopes([remove('a', 2)]))).outcomes, ['applied'])
  assert.deepEqual((await sink.write(envelopes([upsert('a', 1, { timestamp: '2031-01-01T00:00:00Z' })]))).outcomes, [
    'fenced'
  ])
  let row = (await readMemories(pool, table)).get('a')!
  assert.notEqual(row.deletedAt, null)
  assert.equal(row.payload, null)
  // A delete of an unknown id leaves a tombstone too, so the late create it follows cannot appear.
  assert.deepEqual((await sink.write(envelopes([remove('c', 5)]))).outcomes, ['applied'])
  assert.deepEqual((await sink.write(envelopes([upsert('c', 4)]))).outcomes, ['fenced'])
  // Re-create with a newer version.
  assert.deepEqual((await sink.write(envelopes([upsert('a', 3)]))).outcomes, ['applied'])
  row = (await readMemories(pool, table)).get('a')!
  assert.equal(row.deletedAt, null)
  assert.deepEqual(row.payload, { text: 'a v3' })

  assert.deepEqual(sink.counts, { applied: 5, fenced: 2, duplicate: 3, failed: 0 })
  assert.equal(seen.length, 8)
  assert.deepEqual(seen[1], { applied: 0, fenced: 0, duplicate: 2, failed: 0 })
})

test('a record the database refuses is isolated by bisection; the rest of the batch is written', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const sink = postgresSink({ connectionString: databaseUrl(), table })
  t.after(() => sink.close())
  const batch = Array.from({ length: 10 }, (_, i) => upsert(`m${i}`, 1))
  batch[6] = upsert('m6', 1, { payload: { text: 'nul \u0000 inside' } })
  const result = await sink.write(envelopes(batch))
  assert.deepEqual(
    result.failures?.map((f) => f.index),
    [6]
  )
  const error = result.failures![0]!.error as { kind: string; code: string; details: Record<string, unknown> }
  assert.equal(kindOf(error), 'poison')
  assert.equal(error.code, ErrorCodes.SINK_REJECTED)
  assert.equal(error.details.sqlstate, '22P05')
  assert.equal(error.details.index, 6)
  assert.equal(result.outcomes[6], undefined)
  assert.equal(result.outcomes.filter((o) => o === 'applied').length, 9)
  const rows = await readMemories(pool, table)
  assert.equal(rows.size, 9)
  assert.equal(rows.has('m6'), false)
  // The refused event is not marked processed: fixed and re-sent, it is written.
  const processed = await pool.query(`SELECT 1 FROM ${schema}.memory_events_processed WHERE event_id = $1`, [
    batch[6]!.event_id
  ])
  assert.equal(processed.rowCount, 0)
})

test('several refused records of different kinds, and one the sink refuses before the database', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const sink = postgresSink({ connectionString: databaseUrl(), table })
  t.after(() => sink.close())
  const batch = Array.from({ length: 23 }, (_, i) => upsert(`m${i}`, 1))
  batch[0] = { ...upsert('m0', 1), event_id: 'not-a-uuid' }
  batch[11] = upsert('m11', 1, { namespace: 'nul\u0000' })
  batch[17] = upsert('m17', 1, { timestamp: 'yesterday' })
  batch[22] = upsert('m22', 1, { payload: { text: '\ud800' } })
  const result = await sink.write(envelopes(batch))
  assert.deepEqual(
    result.failures?.map((f) => [f.index, kindOf(f.error), (f.error as { code: string }).code]),
    [
      [0, 'poison', ErrorCodes.SINK_REJECTED],
      [11, 'poison', ErrorCodes.SINK_REJECTED],
      [17, 'poison', ErrorCodes.VALIDATION],
      [22, 'poison', ErrorCodes.SINK_REJECTED]
    ]
  )
  assert.equal((await readMemories(pool, table)).size, 19)
})

test('database unreachable: open and write throw RetriableError', async (t) => {
  const proxy = new DatabaseProxy(databaseUrl())
  await proxy.start()
  const url = proxy.url(databaseUrl())
  await proxy.stop()
  const sink = postgresSink({ connectionString: url, table: 'never_created', connectionTimeoutMs: 2_000 })
  t.after(() => sink.close())
  await assert.rejects(sink.open(), (error: unknown) => kindOf(error) === 'retriable')
  await assert.rejects(sink.write(envelopes([upsert('a', 1)])), (error: unknown) => {
    assert.equal(kindOf(error), 'retriable')
    assert.equal((error as { code: string }).code, ErrorCodes.UNAVAILABLE)
    return true
  })
})

test('database goes away after open: RetriableError, nothing written; the retry succeeds', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const proxy = new DatabaseProxy(databaseUrl())
  await proxy.start()
  t.after(() => proxy.stop())
  const sink = postgresSink({ connectionString: proxy.url(databaseUrl()), table, connectionTimeoutMs: 2_000 })
  t.after(() => sink.close())
  await sink.open()
  await sink.write(envelopes([upsert('warm', 1)]))
  await proxy.stop()
  const batch = envelopes([upsert('a', 1), upsert('b', 1)])
  await assert.rejects(sink.write(batch), (error: unknown) => kindOf(error) === 'retriable')
  await assert.rejects(sink.write(batch), (error: unknown) => kindOf(error) === 'retriable')
  assert.equal(await count(pool, table), 1)
  await proxy.start()
  const result = await sink.write(batch)
  assert.deepEqual(result.outcomes, ['applied', 'applied'])
  assert.equal(await count(pool, table), 3)
})

test('connection killed mid-statement (admin shutdown): RetriableError, nothing written', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const applicationName = `sfm-test-${randomBytes(4).toString('hex')}`
  const sink = postgresSink({ connectionString: databaseUrl(), table, applicationName })
  t.after(() => sink.close())
  await sink.write(envelopes([upsert('a', 1)]))
  const unlock = await lockRow(pool, table, 'a')
  const batch = [upsert('z', 1), upsert('a', 2)]
  try {
    // Settled into a value at once: the rejection can arrive while pg_terminate_backend is still answering, and an
    // unobserved rejection for that moment would fail the test on its own.
    const writing = sink.write(envelopes(batch)).then(
      () => undefined,
      (error: unknown) => error
    )
    const pid = await waitForLockWait(pool, applicationName)
    await pool.query('SELECT pg_terminate_backend($1)', [pid])
    const error = await writing
    assert.ok(error !== undefined, 'the write failed')
    assert.equal(kindOf(error), 'retriable')
  } finally {
    await unlock()
  }
  const rows = await readMemories(pool, table)
  assert.deepEqual([...rows.keys()], ['a'])
  assert.equal(rows.get('a')!.version, 1)
  const processed = await pool.query(`SELECT 1 FROM ${schema}.memory_events_processed WHERE event_id = ANY($1)`, [
    batch.map((e) => e.event_id)
  ])
  assert.equal(processed.rowCount, 0)
  // The pool replaces the dead connection. An idle connection may learn of the shutdown only at its next use, which
  // fails retriably once; the runtime retries such a write, and so does this test (a few times at most).
  let retried: Awaited<ReturnType<typeof sink.write>> | undefined
  for (let attempt = 0; attempt < 3 && !retried; attempt++) {
    retried = await sink.write(envelopes(batch)).catch((error: unknown) => {
      if (kindOf(error) !== 'retriable') throw error
      return undefined
    })
  }
  assert.deepEqual(retried?.outcomes, ['applied', 'applied'])
})

test('statement timeout is retriable (SFM_TIMEOUT)', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const sink = postgresSink({ connectionString: databaseUrl(), table, statementTimeoutMs: 300 })
  t.after(() => sink.close())
  await sink.write(envelopes([upsert('a', 1)]))
  // Locks are released in the test body: the schema is dropped in t.after, which would wait for them.
  const unlock = await lockRow(pool, table, 'a')
  try {
    await assert.rejects(sink.write(envelopes([upsert('a', 2)])), (error: unknown) => {
      assert.equal(kindOf(error), 'retriable')
      assert.equal((error as { code: string }).code, ErrorCodes.TIMEOUT)
      return true
    })
  } finally {
    await unlock()
  }
  assert.equal((await readMemories(pool, table)).get('a')!.version, 1)
})

test('abort while blocked: RetriableError (shutdown) at once; after a committed half, the rest fail alone', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const applicationName = `sfm-test-${randomBytes(4).toString('hex')}`
  const sink = postgresSink({ connectionString: databaseUrl(), table, applicationName })
  t.after(() => sink.close())
  await sink.write(envelopes([upsert('z', 1)]))
  const context = (controller: AbortController) => ({ topology: 't', branch: 'b', signal: controller.signal })
  const unlock = await lockRow(pool, table, 'z')
  try {
    // Nothing committed yet: the whole write throws.
    let controller = new AbortController()
    const first = sink.write(envelopes([upsert('z', 2)]), context(controller))
    // The abandoned statement's backend keeps waiting for the lock (PostgreSQL notices the closed socket only
    // when it answers), so the second wait must skip it.
    const orphan = await waitForLockWait(pool, applicationName)
    controller.abort()
    await assert.rejects(first, (error: unknown) => (error as { code?: string }).code === ErrorCodes.SHUTDOWN)

    // [a1] [a2 refused] [z blocked]: bisection commits a1, isolates a2, and z is reported as a retriable failure.
    const batch = [upsert('a1', 1), upsert('a2', 1, { payload: { text: '\u0000' } }), upsert('z', 3)]
    controller = new AbortController()
    const second = sink.write(envelopes(batch), context(controller))
    await waitForLockWait(pool, applicationName, 5_000, [orphan])
    controller.abort()
    const result = await second
    assert.deepEqual(
      result.failures?.map((f) => [f.index, kindOf(f.error)]),
      [
        [1, 'poison'],
        [2, 'retriable']
      ]
    )
    assert.deepEqual(result.outcomes, ['applied', undefined, undefined])
  } finally {
    await unlock()
  }
})

test('quoted, schema-qualified table names with odd characters', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.Mem"ories; DROP TABLE x`
  const sink = postgresSink({ connectionString: databaseUrl(), table })
  t.after(() => sink.close())
  await sink.write(envelopes([upsert('a', 1)]))
  assert.deepEqual(sink.names?.processed, { schema, name: 'Mem"ories; DROP TABLE x_events_processed' })
  const rows = await readMemories(pool, `"${schema}"."Mem""ories; DROP TABLE x"`)
  assert.equal(rows.get('a')!.version, 1)
})

test('an unqualified table resolves to the current schema at open', async (t) => {
  const { schema, pool } = await testSchema(t)
  const url = new URL(databaseUrl())
  url.searchParams.set('options', `-c search_path=${schema}`)
  const sink = postgresSink({ connectionString: url.toString(), table: 'memories' })
  t.after(() => sink.close())
  await sink.write(envelopes([upsert('a', 1)]))
  assert.deepEqual(sink.names, {
    memories: { schema, name: 'memories' },
    processed: { schema, name: 'memory_events_processed' }
  })
  assert.equal(await count(pool, `${schema}.memories`), 1)
})

test('migrate: false against a missing table is fatal', async (t) => {
  const { schema } = await testSchema(t)
  const sink = postgresSink({ connectionString: databaseUrl(), table: `${schema}.missing`, migrate: false })
  t.after(() => sink.close())
  await sink.open()
  await assert.rejects(sink.write(envelopes([upsert('a', 1)])), (error: unknown) => {
    assert.equal(kindOf(error), 'fatal')
    assert.equal((error as { details: { sqlstate: string } }).details.sqlstate, '42P01')
    return true
  })
})

test('options are validated with clear messages', () => {
  const url = databaseUrl()
  const bad: [Record<string, unknown>, RegExp][] = [
    [{}, /connectionString is required/],
    [{ connectionString: url, poolSize: 0 }, /poolSize must be an integer/],
    [{ connectionString: url, statementTimeoutMs: 1.5 }, /statementTimeoutMs/],
    [{ connectionString: url, statementTimeoutMs: 10_000, queryTimeoutMs: 5_000 }, /queryTimeoutMs must be at least/],
    [{ connectionString: url, table: 'a.b.c' }, /"name" or "schema.name"/],
    [{ connectionString: url, table: 'x'.repeat(64) }, /longer than 63 bytes/],
    [{ connectionString: url, table: 's.t', processedTable: 't' }, /must differ/],
    [{ connectionString: url, migrate: 'yes' }, /migrate must be a boolean/],
    [{ connectionString: url, onOutcomes: 1 }, /onOutcomes must be a function/]
  ]
  for (const [options, message] of bad) {
    assert.throws(
      () => postgresSink(options as never),
      (error: unknown) => {
        assert.equal(kindOf(error), 'fatal')
        assert.match((error as Error).message, message)
        return true
      }
    )
  }
})

test('a large batch of distinct and repeated ids', async (t) => {
  const { schema, pool } = await testSchema(t)
  const table = `${schema}.memories`
  const sink = postgresSink({ connectionString: databaseUrl(), table })
  t.after(() => sink.close())
  const events = Array.from({ length: 2_000 }, (_, i) =>
    upsert(`id${i % 700}`, Math.floor(i / 700), { event_id: randomUUID() })
  )
  const result = await sink.write(envelopes(events))
  assert.deepEqual(result.failures, [])
  assert.equal(result.counts.applied, 700)
  assert.equal(result.counts.fenced, 1_300)
  assert.equal(await count(pool, table), 700)
})
