/**
 * SFM_AUDIT_FORMAT: `json` keeps memory.audit the plain v1 record; `connect` wraps that same record in the
 * JsonConverter envelope the JDBC sink reads. The last test runs the materializer on the real broker and PostgreSQL
 * (skipped without them); the JDBC sink consuming the topology's envelopes is test/connect/memory-audit-sink.test.ts.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, test } from 'node:test'
import { AUDIT_CONNECT_SCHEMA, type AuditRecord } from '../../src/connect/audit-envelope.ts'
import { ErrorCodes, FatalError } from '../../src/errors.ts'
import {
  AUDIT_FORMAT_VARIABLE,
  type AuditFormat,
  AuditFormats,
  auditEncoder,
  auditFormatFromEnv,
  describeAuditFormat,
  resolveAuditFormat
} from '../../src/memory/audit-format.ts'
import type { MemoryEvent } from '../../src/memory/event.ts'
import { materializeMemories } from '../../src/memory/materialize.ts'
import { loadSchema } from '../../src/schemas.ts'
import { compileSchema, describeSchemaErrors } from '../../src/streams/operators/validate.ts'
import { brokers, NO_KAFKA, readTopic } from '../helpers/kafka.ts'
import { openMaterializer } from '../helpers/materializer.ts'
import { envelopes, memoryEvent } from '../sinks/postgres/helpers.ts'

const auditSchema = (await loadSchema('memory.audit', 1)).schema
const validateAudit = compileSchema<AuditRecord>(auditSchema)
/** The v1 record's fields, in schema order: what format=json writes, nothing more. */
const V1_FIELDS = auditSchema.required as string[]

function assertValidV1(value: unknown, what: string): asserts value is AuditRecord {
  assert.ok(validateAudit(value), `${what}: ${describeSchemaErrors(validateAudit.errors)}`)
}

interface Envelope {
  schema: unknown
  payload: Record<string, unknown> & { record: string }
}

/** Parses a `connect` value: the envelope, and the audit record its payload carries (validated against v1). */
function openEnvelope(text: string): { envelope: Envelope; record: AuditRecord } {
  const envelope = JSON.parse(text) as Envelope
  assert.deepEqual(Object.keys(envelope), ['schema', 'payload'], 'JsonConverter takes exactly {schema, payload}')
  assert.deepEqual(envelope.schema, JSON.parse(JSON.stringify(AUDIT_CONNECT_SCHEMA)))
  assert.equal(typeof envelope.payload.record, 'string', 'the jsonb column carries JSON text')
  const record: unknown = JSON.parse(envelope.payload.record)
  assert.ok(typeof record === 'object' && record !== null && !Array.isArray(record), 'payload.record is an object')
  assertValidV1(record, 'payload.record')
  // The typed columns repeat the record's own values.
  assert.equal(envelope.payload.event_id, record.event_id)
  assert.equal(envelope.payload.memory_id, record.id)
  assert.equal(envelope.payload.namespace, record.namespace)
  assert.equal(envelope.payload.op, record.op)
  assert.equal(envelope.payload.outcome, record.outcome)
  assert.equal(envelope.payload.version, record.version)
  assert.equal(envelope.payload.processed_at, record.processed_at)
  return { envelope, record }
}

const sample: AuditRecord = {
  event_id: randomUUID(),
  id: 'mem "1" ü 🙂',
  namespace: 'team \\ a',
  op: 'upsert',
  version: 9007199254740991,
  timestamp: '2025-03-01T12:00:00.123456+02:00',
  outcome: 'fenced',
  topology: 'memory',
  processed_at: new Date().toISOString()
}

describe('SFM_AUDIT_FORMAT', () => {
  test('json is the default; connect is the other choice; anything else is a config error naming the variable', () => {
    assert.equal(auditFormatFromEnv({}), AuditFormats.JSON)
    assert.equal(auditFormatFromEnv({ [AUDIT_FORMAT_VARIABLE]: '' }), AuditFormats.JSON)
    assert.equal(auditFormatFromEnv({ [AUDIT_FORMAT_VARIABLE]: 'json' }), AuditFormats.JSON)
    assert.equal(auditFormatFromEnv({ [AUDIT_FORMAT_VARIABLE]: ' connect ' }), AuditFormats.CONNECT)
    for (const bad of ['Connect', 'avro', 'jsonschema', 'true']) {
      assert.throws(
        () => auditFormatFromEnv({ [AUDIT_FORMAT_VARIABLE]: bad }),
        (error: unknown) =>
          error instanceof FatalError &&
          error.code === ErrorCodes.CONFIG &&
          error.message.startsWith(`${AUDIT_FORMAT_VARIABLE} must be "json" or "connect"`) &&
          error.message.includes(JSON.stringify(bad)) &&
          error.details.variable === AUDIT_FORMAT_VARIABLE
      )
    }
    // In code, the error names the option, and the materializer refuses it before opening anything.
    assert.throws(() => resolveAuditFormat('xml', 'auditFormat'), /^FatalError: auditFormat must be/)
    assert.throws(
      () => materializeMemories({ latestTopic: 'l', auditTopic: 'a', auditFormat: 'xml' as AuditFormat }),
      /auditFormat must be "json" or "connect", got "xml"/
    )
  })

  test('the start banner says the format, and that a configured registry is not used for memory.audit', () => {
    assert.match(describeAuditFormat(AuditFormats.JSON, {}), /^memory\.audit as plain JSON \(the memory\.audit v1/)
    assert.doesNotMatch(describeAuditFormat(AuditFormats.JSON, {}), /SCHEMA_REGISTRY_URL/)
    assert.match(describeAuditFormat(AuditFormats.CONNECT, {}), /JsonConverter envelopes \(schemas\.enable=true/)
    const registry = { SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1/apis/ccompat/v7' }
    assert.match(describeAuditFormat(AuditFormats.CONNECT, registry), /SCHEMA_REGISTRY_URL is set but not used for it/)
    assert.match(describeAuditFormat(AuditFormats.JSON, registry), /not registry-framed/)
  })

  test('json writes exactly the v1 record', () => {
    const text = auditEncoder(AuditFormats.JSON)(sample)
    assert.equal(text, JSON.stringify(sample))
    const parsed: unknown = JSON.parse(text)
    assertValidV1(parsed, 'json')
    assert.deepEqual(Object.keys(parsed), V1_FIELDS)
    assert.deepEqual(parsed, sample)
  })

  test("connect's envelope carries the v1 record as payload.record; the schema is serialised once, same text", () => {
    const encode = auditEncoder(AuditFormats.CONNECT)
    const text = encode(sample)
    const { record } = openEnvelope(text)
    assert.deepEqual(record, sample)
    assert.deepEqual(Object.keys(record), V1_FIELDS)
    // The precomputed schema prefix gives what JSON.stringify({schema, payload}) gives.
    const { payload } = JSON.parse(text) as Envelope
    assert.equal(text, JSON.stringify({ schema: AUDIT_CONNECT_SCHEMA, payload }))
    // Not registry-framed: the value starts with JSON, not the magic byte 0 and a schema id.
    assert.equal(text[0], '{')
  })
})

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`

describe('what the materializer writes to memory.audit (Kafka + PostgreSQL)', { skip }, () => {
  for (const format of [AuditFormats.JSON, AuditFormats.CONNECT]) {
    const shape = format === AuditFormats.JSON ? 'exactly the v1 record' : 'the v1 record inside the envelope'
    test(`format=${format}: one record per event with its outcome, ${shape}`, async (t) => {
      const { sink, context, auditTopic } = await openMaterializer(
        t,
        'sfm_audit_fmt',
        format === AuditFormats.JSON ? undefined : format
      )
      const a2 = memoryEvent({ id: 'a', version: 2 })
      const first = [a2, memoryEvent({ id: 'b', version: 1 })]
      const second: MemoryEvent[] = [
        memoryEvent({ id: 'a', version: 1 }), // stale: a is at version 2
        {
          event_id: randomUUID(),
          id: 'b',
          namespace: 'ns',
          op: 'delete',
          version: 2,
          timestamp: '2025-01-02T00:00:00Z'
        },
        a2 // redelivered
      ]
      await sink.write(envelopes(first), context)
      await sink.write(envelopes(second), context)
      const expected = [
        [first[0]!.event_id, 'upsert', 'applied'],
        [first[1]!.event_id, 'upsert', 'applied'],
        [second[0]!.event_id, 'upsert', 'fenced'],
        [second[1]!.event_id, 'delete', 'applied'],
        [a2.event_id, 'upsert', 'duplicate']
      ]

      const messages = await readTopic(auditTopic, expected.length, 20_000)
      assert.equal(messages.length, expected.length)
      const records = messages.map((m, i) => {
        const text = m.value ?? ''
        if (format === AuditFormats.CONNECT) return openEnvelope(text).record
        const parsed: unknown = JSON.parse(text)
        assertValidV1(parsed, `record ${i}`)
        assert.deepEqual(Object.keys(parsed), V1_FIELDS, 'json: the v1 record, no envelope, no extra fields')
        return parsed
      })
      assert.deepEqual(
        records.map((r) => [r.event_id, r.op, r.outcome]),
        expected
      )
      for (const [i, m] of messages.entries()) assert.equal(m.key, records[i]!.id, 'keyed by memory id')
      assert.ok(records.every((r) => r.topology === 'memory'))
    })
  }
})
