/**
 * The producing side matches the JDBC sink: the memory topology with SFM_AUDIT_FORMAT=connect on the real broker and
 * PostgreSQL writes memory.audit, and the repository's Debezium JDBC sink (deploy/connect/) turns every audit
 * record into one row with the right outcome and the record as jsonb. Needs CONNECT_URL, KAFKA_BROKERS and
 * DATABASE_URL (`npm run stack -- up --connect`).
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { type TestContext, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import type { AuditRecord } from '../../src/connect/audit-envelope.ts'
import { AUDIT_FORMAT_VARIABLE, AuditFormats } from '../../src/memory/audit-format.ts'
import type { MemoryEvent } from '../../src/memory/event.ts'
import { loadSchema } from '../../src/schemas.ts'
import { compileSchema, describeSchemaErrors } from '../../src/streams/operators/validate.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { memoryTopology } from '../../topologies/memory.ts'
import { connectUrl, NO_CONNECT } from '../helpers/connect.ts'
import { type AuditRow, startSink, waitForRows } from '../helpers/jdbc-sink.ts'
import { brokers, createTopics, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'
import { memoryEvent } from '../sinks/postgres/helpers.ts'

const skip =
  connectUrl() === undefined
    ? NO_CONNECT
    : brokers() === undefined
      ? NO_KAFKA
      : process.env.DATABASE_URL
        ? undefined
        : 'DATABASE_URL is not set'

const TOPICS = ['memory.events', 'memory.latest', 'memory.audit', 'memory.dlq'] as const

/** The memory topology's environment for this test alone (prefixed topics, own table and group), restored after. */
async function isolatedMemory(t: TestContext) {
  const prefix = `${uniqueName('ma')}.`
  const table = `mem_${randomBytes(5).toString('hex')}`
  await createTopics(
    t,
    TOPICS.map((name) => prefix + name),
    2
  )
  const saved = { ...process.env }
  Object.assign(process.env, {
    SFM_TOPIC_PREFIX: prefix,
    SFM_MEMORY_TABLE: table,
    SFM_MEMORY_GROUP: uniqueName('memory'),
    // The audit trail is what this test is about; the vector branch would only add an embedded store.
    SFM_VECTORS: 'off',
    [AUDIT_FORMAT_VARIABLE]: AuditFormats.CONNECT
  })
  const db = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await db.connect()
  t.after(async () => {
    process.env = saved
    await db
      .query(`DROP TABLE IF EXISTS "${table}", "${table}_events_processed", schema_migrations_${table} CASCADE`)
      .catch(() => {})
    await db.end()
  })
  return { topic: (name: (typeof TOPICS)[number]) => prefix + name }
}

/**
 * Runs the topology until it has consumed `count` more events, each run ending after 2 s without messages (offsets
 * committed, so the next run continues). A run whose group join outlasted the idle time is simply run again.
 */
async function consume(count: number) {
  let consumed = 0
  let deadLettered = 0
  for (let run = 0; consumed < count; run++) {
    assert.ok(run < 5, `the topology consumed ${consumed} of ${count} events in ${run} runs`)
    const summary = await new Runtime(await memoryTopology(), { untilIdleMs: 2_000 }).run()
    consumed += summary.consumed
    deadLettered += summary.deadLettered
  }
  assert.equal(consumed, count)
  assert.equal(deadLettered, 0)
}

const validateAudit = compileSchema<AuditRecord>((await loadSchema('memory.audit', 1)).schema)

test('memory topology (SFM_AUDIT_FORMAT=connect) → memory.audit → JDBC sink: one row per event, outcome and jsonb', {
  skip,
  timeout: 240_000
}, async (t) => {
  const memory = await isolatedMemory(t)
  const auditTopic = memory.topic('memory.audit')
  const sink = await startSink(t, { topic: auditTopic })

  const at = (second: number) => `2026-02-01T10:00:${String(second).padStart(2, '0')}.000Z`
  const a1 = memoryEvent({ id: 'a', version: 1, timestamp: at(1) })
  const b1 = memoryEvent({ id: 'b', version: 1, timestamp: at(2) })
  const c1 = memoryEvent({ id: 'c', version: 1, timestamp: at(3) })
  const a3 = memoryEvent({ id: 'a', version: 3, timestamp: at(4) })
  const cDelete: MemoryEvent = {
    event_id: randomUUID(),
    id: 'c',
    namespace: 'ns',
    op: 'delete',
    version: 2,
    timestamp: at(5)
  }
  const bStale = memoryEvent({ id: 'b', version: 0, timestamp: at(6) })
  const send = (events: readonly MemoryEvent[]) =>
    produce(events.map((e) => ({ topic: memory.topic('memory.events'), key: e.id, value: JSON.stringify(e) })))

  // Two rounds: the second one's topology has a fresh dedupe window, so the redelivered a1 reaches PostgreSQL, which
  // recognises its event_id (duplicate); b's stale version 0 arrives after version 1 is stored (fenced).
  await send([a1, b1, c1])
  await consume(3)
  await send([a3, cDelete, bStale, a1])
  await consume(4)
  const expected = [
    [a1.event_id, 'upsert', 'applied'],
    [b1.event_id, 'upsert', 'applied'],
    [c1.event_id, 'upsert', 'applied'],
    [a3.event_id, 'upsert', 'applied'],
    [cDelete.event_id, 'delete', 'applied'],
    [bStale.event_id, 'upsert', 'fenced'],
    [a1.event_id, 'upsert', 'duplicate']
  ].sort()

  const rows = await waitForRows(sink, expected.length, 90_000)
  // Nothing more arrives: the sink wrote one row per audit record, and the topology one record per event.
  await sleep(1_500)
  const { rows: final } = await sink.db.query<AuditRow>(`SELECT * FROM "${sink.table}"`)
  assert.equal(final.length, rows.length)
  assert.deepEqual(
    final.map((row) => [row.event_id, row.op, row.outcome]).sort(),
    expected,
    'one row per processed event, with its outcome'
  )

  // Each row's jsonb is the audit record the topology wrote at that Kafka position, and that record is memory.audit v1.
  const written = await readTopic(auditTopic, expected.length, 30_000)
  assert.equal(written.length, expected.length)
  const byPosition = new Map(written.map((m) => [`${m.partition}:${m.offset}`, m.value ?? '']))
  for (const row of final) {
    assert.equal(row.__connect_topic, auditTopic)
    const value = byPosition.get(`${row.__connect_partition}:${row.__connect_offset}`)
    assert.ok(value !== undefined, `no audit record at ${row.__connect_partition}:${row.__connect_offset}`)
    const envelope = JSON.parse(value) as { payload: { record: string } }
    const record: unknown = JSON.parse(envelope.payload.record)
    assert.ok(validateAudit(record), describeSchemaErrors(validateAudit.errors))
    assert.deepEqual(row.record, record, 'the jsonb column is the audit record')
    assert.equal(row.event_id, record.event_id)
    assert.equal(row.memory_id, record.id)
    assert.equal(row.namespace, record.namespace)
    assert.equal(Number(row.version), record.version)
    assert.equal(row.processed_at.toISOString(), record.processed_at)
    assert.equal(record.topology, 'memory')
  }
  // The jsonb can be queried as JSON: the fenced event is found by its record's fields.
  const fenced = await sink.db.query<{ id: string }>(
    `SELECT record->>'id' AS id FROM "${sink.table}" WHERE record->>'outcome' = 'fenced'`
  )
  assert.deepEqual(
    fenced.rows.map((r) => r.id),
    ['b']
  )
})
