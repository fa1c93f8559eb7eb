import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { test } from 'node:test'
import { AUDIT_CONNECT_SCHEMA, type AuditRecord, auditEnvelope } from '../../src/connect/audit-envelope.ts'
import {
  type ConnectSchema,
  DEBEZIUM_COLUMN_TYPE_PARAMETER,
  DebeziumSemanticTypes
} from '../../src/connect/json-envelope.ts'

const record: AuditRecord = {
  event_id: randomUUID(),
  id: 'mem-1',
  namespace: 'default',
  op: 'upsert',
  version: 9007199254740991,
  timestamp: '2025-03-01T12:00:00.123456+02:00',
  outcome: 'applied',
  topology: 'memory',
  processed_at: new Date().toISOString()
}

test('the envelope is {schema, payload} and every payload value matches its field schema', () => {
  const envelope = JSON.parse(auditEnvelope(record)) as {
    schema: ConnectSchema
    payload: Record<string, unknown>
  }
  assert.deepEqual(Object.keys(envelope).sort(), ['payload', 'schema'], 'JsonConverter refuses any other top-level key')
  assert.deepEqual(envelope.schema, JSON.parse(JSON.stringify(AUDIT_CONNECT_SCHEMA)))
  const fields = envelope.schema.fields ?? []
  assert.deepEqual(
    Object.keys(envelope.payload).sort(),
    fields.map((f) => f.field).sort(),
    'payload keys must be exactly the schema fields'
  )
  for (const field of fields) {
    const value = envelope.payload[field.field]
    if (value === null) {
      assert.equal(field.optional, true, `${field.field} is required but null`)
      continue
    }
    if (field.type === 'string') assert.equal(typeof value, 'string', field.field)
    if (field.type === 'int64') assert.ok(Number.isSafeInteger(value), `${field.field}: ${value}`)
  }
  // The jsonb column holds the audit record itself, as JSON text (JsonConverter passes strings through).
  const jsonb = fields.find((f) => f.name === DebeziumSemanticTypes.JSON)
  assert.ok(jsonb)
  assert.equal(jsonb.parameters?.[DEBEZIUM_COLUMN_TYPE_PARAMETER], 'JSONB')
  assert.deepEqual(JSON.parse(envelope.payload[jsonb.field] as string), record)
  // The timestamptz column must parse as ISO-8601 with an offset (Debezium's ZonedTimestamp).
  const zoned = fields.find((f) => f.name === DebeziumSemanticTypes.ZONED_TIMESTAMP)!
  assert.match(envelope.payload[zoned.field] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/)
})

test('a missing outcome becomes null (the column is optional); extra record fields reach the jsonb only', () => {
  const extra = { ...record, outcome: undefined, trace: { hops: [1, 'ü', null] } }
  const { payload } = JSON.parse(auditEnvelope(extra)) as { payload: Record<string, unknown> }
  assert.equal(payload.outcome, null)
  assert.equal(payload.trace, undefined)
  assert.deepEqual(JSON.parse(payload.record as string).trace, { hops: [1, 'ü', null] })
})
