/**
 * The Debezium JDBC sink of deploy/connect/memory-audit-jdbc-sink.json on a real Kafka Connect worker, Kafka and
 * PostgreSQL: audit envelopes become jsonb rows, poison goes to Connect's dead-letter topic with context headers,
 * a replay or a worker crash neither loses nor duplicates a row. Needs CONNECT_URL (`npm run stack -- up --connect`).
 * What the memory topology itself writes reaches the sink in test/connect/memory-audit-sink.test.ts.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { type AuditRecord, auditEnvelope } from '../../src/connect/audit-envelope.ts'
import type { OutgoingMessage } from '../../src/kafka/producer.ts'
import { connectControl, connectUrl, NO_CONNECT, waitForRunning } from '../helpers/connect.ts'
import { type AuditRow, startSink, waitForRows } from '../helpers/jdbc-sink.ts'
import { brokers, NO_KAFKA, produce, readTopic } from '../helpers/kafka.ts'

const databaseUrl = process.env.DATABASE_URL
const skip =
  connectUrl() === undefined
    ? NO_CONNECT
    : brokers() === undefined
      ? NO_KAFKA
      : databaseUrl === undefined
        ? 'DATABASE_URL is not set'
        : undefined

const OUTCOMES = ['applied', 'fenced', 'duplicate'] as const

function auditRecords(count: number, from = 0): AuditRecord[] {
  return Array.from({ length: count }, (_, n) => {
    const i = from + n
    return {
      event_id: randomUUID(),
      id: `mem-${i % 7}`,
      namespace: i % 2 === 0 ? 'default' : 'team "a" \\ ü 🙂',
      op: i % 5 === 0 ? 'delete' : 'upsert',
      version: i,
      timestamp: `2025-03-01T12:00:${String(i % 60).padStart(2, '0')}.123456+02:00`,
      outcome: OUTCOMES[i % 3],
      topology: 'memory',
      processed_at: new Date(Date.UTC(2025, 2, 1, 10, 0, 0, i)).toISOString(),
      // Fields the sink does not map to columns must survive in the jsonb unchanged.
      ...(i % 4 === 0 ? { trace: { hops: [i, 'ü', null, { deep: [true, 1.5] }] } } : {})
    }
  })
}

const toMessage = (topic: string, record: AuditRecord): OutgoingMessage => ({
  topic,
  key: record.id,
  value: auditEnvelope(record)
})

function assertRowsMatch(rows: AuditRow[], records: AuditRecord[], topic: string): void {
  assert.equal(rows.length, records.length, 'one row per record, no duplicates')
  const byEvent = new Map(rows.map((row) => [row.event_id, row]))
  assert.equal(byEvent.size, rows.length, 'event ids are unique')
  for (const record of records) {
    const row = byEvent.get(record.event_id)
    assert.ok(row, `no row for event ${record.event_id}`)
    assert.deepEqual(row.record, JSON.parse(JSON.stringify(record)), 'the jsonb is the audit record')
    assert.equal(row.memory_id, record.id)
    assert.equal(row.namespace, record.namespace)
    assert.equal(row.op, record.op)
    assert.equal(row.outcome, record.outcome)
    assert.equal(Number(row.version), record.version)
    assert.equal(row.processed_at.toISOString(), record.processed_at)
    assert.equal(row.__connect_topic, topic)
  }
}

test('audit envelopes become rows: typed columns, the record as jsonb, keyed by Kafka coordinates', {
  skip
}, async (t) => {
  const sink = await startSink(t, { partitions: 2 })
  const records = auditRecords(40)
  await produce(records.map((r) => toMessage(sink.topic, r)))
  const rows = await waitForRows(sink, records.length)
  assertRowsMatch(rows, records, sink.topic)

  const columns = await sink.db.query<{ column_name: string; data_type: string }>(
    'SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1',
    [sink.table]
  )
  const types = Object.fromEntries(columns.rows.map((c) => [c.column_name, c.data_type]))
  assert.equal(types.record, 'jsonb')
  assert.equal(types.processed_at, 'timestamp with time zone')
  assert.equal(types.version, 'bigint')
  const key = await sink.db.query<{ attname: string }>(
    `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
      WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY a.attname`,
    [`"${sink.table}"`]
  )
  assert.deepEqual(
    key.rows.map((r) => r.attname),
    ['__connect_offset', '__connect_partition', '__connect_topic']
  )
  // The jsonb is queryable as JSON, not a string holding JSON.
  const nested = await sink.db.query(
    `SELECT count(*)::int AS n FROM "${sink.table}" WHERE record->'trace'->'hops'->>1 = 'ü'`
  )
  assert.equal(nested.rows[0].n, records.filter((r) => r.trace !== undefined).length)
})

test('a replay from the first offset upserts the same rows: nothing is duplicated', { skip }, async (t) => {
  const sink = await startSink(t, { partitions: 2 })
  const records = auditRecords(25)
  await produce(records.map((r) => toMessage(sink.topic, r)))
  await waitForRows(sink, records.length)
  // Mark the rows, then make Connect deliver every record again (KIP-875: stop, reset offsets, resume).
  await sink.db.query(`UPDATE "${sink.table}" SET outcome = 'overwritten-by-test'`)
  const base = `${connectUrl()}/connectors/${encodeURIComponent(sink.connector)}`
  assert.equal((await fetch(`${base}/stop`, { method: 'PUT' })).status, 204)
  for (let i = 0; ; i++) {
    const reset = await fetch(`${base}/offsets`, { method: 'DELETE' })
    if (reset.ok) break
    // The stop is asynchronous: resetting is refused until the tasks are gone.
    assert.ok(i < 60, `offset reset refused: ${reset.status} ${await reset.text()}`)
    await sleep(500)
  }
  assert.equal((await fetch(`${base}/resume`, { method: 'PUT' })).status, 202)
  await waitForRunning(sink.connector)
  const deadline = Date.now() + 60_000
  for (;;) {
    const { rows } = await sink.db.query<AuditRow>(`SELECT * FROM "${sink.table}"`)
    if (rows.every((row) => row.outcome !== 'overwritten-by-test')) {
      assertRowsMatch(rows, records, sink.topic)
      break
    }
    assert.ok(Date.now() < deadline, 'the replay did not rewrite every row')
    await sleep(250)
  }
})

test('poison goes to the dead-letter topic with context headers; the good records around it land', {
  skip
}, async (t) => {
  const sink = await startSink(t, { partitions: 1 })
  const [a, b, c] = auditRecords(3)
  const missingField = JSON.parse(auditEnvelope(b!)) as { payload: Record<string, unknown> }
  delete missingField.payload.event_id
  const poison: OutgoingMessage[] = [
    // Plain JSON: JsonConverter with schemas.enable=true needs the {schema, payload} envelope.
    { topic: sink.topic, key: 'p1', value: JSON.stringify(a) },
    // Not JSON at all.
    { topic: sink.topic, key: 'p2', value: Buffer.from([0xff, 0xfe, 0x00, 0x7b]) },
    // An envelope whose payload lacks a required field.
    { topic: sink.topic, key: 'p3', value: JSON.stringify(missingField) }
  ]
  // Offsets 0..5: good, poison, good, poison, poison, good.
  await produce([
    toMessage(sink.topic, a!),
    poison[0]!,
    toMessage(sink.topic, b!),
    poison[1]!,
    poison[2]!,
    toMessage(sink.topic, c!)
  ])
  const rows = await waitForRows(sink, 3)
  assertRowsMatch(rows, [a!, b!, c!], sink.topic)

  const dead = await readTopic(sink.dlq, 3, 60_000)
  assert.equal(dead.length, 3, 'three dead letters')
  const expectedOffsets = ['1', '3', '4']
  dead.forEach((message, i) => {
    const original = poison[i]!
    assert.equal(message.key, original.key)
    assert.equal(Buffer.from(message.value ?? '', 'binary').length > 0, true)
    const h = message.headers
    assert.equal(h.get('__connect.errors.topic'), sink.topic)
    assert.equal(h.get('__connect.errors.partition'), '0')
    assert.equal(h.get('__connect.errors.offset'), expectedOffsets[i])
    assert.equal(h.get('__connect.errors.connector.name'), sink.connector)
    assert.equal(h.get('__connect.errors.task.id'), '0')
    assert.equal(h.get('__connect.errors.stage'), 'VALUE_CONVERTER')
    assert.equal(h.get('__connect.errors.class.name'), 'org.apache.kafka.connect.json.JsonConverter')
    assert.equal(h.get('__connect.errors.exception.class.name'), 'org.apache.kafka.connect.errors.DataException')
    assert.ok((h.get('__connect.errors.exception.message') ?? '').length > 0)
  })
  // The JSON poison keeps its exact bytes, so it can be fixed and redriven.
  assert.equal(dead[0]!.value, poison[0]!.value)
  assert.equal(dead[2]!.value, poison[2]!.value)
  // Poison does not stop the task.
  await waitForRunning(sink.connector, 5000)
})

test('a crash of the Connect worker (kill -9) loses nothing and duplicates nothing', { skip }, async (t) => {
  const control = await connectControl()
  if (typeof control === 'string') {
    t.diagnostic(`skipped: ${control}`)
    t.skip(control)
    return
  }
  // Whatever happens below, leave a running worker for the tests and developers after us.
  t.after(async () => {
    const health = await fetch(`${connectUrl()}/health`).catch(() => undefined)
    if (health?.ok !== true) await control.start()
  })
  const sink = await startSink(t, { partitions: 2 })
  const before = auditRecords(30)
  await produce(before.map((r) => toMessage(sink.topic, r)))
  await waitForRows(sink, before.length)

  const crashed = Date.now()
  await control.stop('SIGKILL')
  // Written while no worker runs: Connect must pick these up from its committed offsets after the restart.
  const during = auditRecords(30, 30)
  await produce(during.map((r) => toMessage(sink.topic, r)))
  await control.start()
  await waitForRunning(sink.connector, 90_000)
  const rows = await waitForRows(sink, before.length + during.length, 90_000)
  t.diagnostic(`worker down → all rows back in ${((Date.now() - crashed) / 1000).toFixed(1)}s`)
  // Records after the last committed offset were delivered twice; the Kafka-coordinate key made that an upsert.
  await sleep(2000)
  const { rows: final } = await sink.db.query<AuditRow>(`SELECT * FROM "${sink.table}"`)
  assert.equal(final.length, rows.length)
  assertRowsMatch(final, [...before, ...during], sink.topic)
})
