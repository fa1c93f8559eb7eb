import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { from, lastValueFrom, toArray } from 'rxjs'
import { loadSchema } from '../../../src/schemas.ts'
import { compileSchema, validate } from '../../../src/streams/operators/validate.ts'
import { envelopeOf, RecordingHost } from '../../helpers/envelopes.ts'

describe('validate', () => {
  const schema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    required: ['id', 'at'],
    properties: { id: { type: 'string', minLength: 1 }, at: { type: 'string', format: 'date-time' } }
  }
  test('passes valid values and dead-letters invalid ones with ajv reasons', async () => {
    const host = new RecordingHost()
    const values = [
      { id: 'a', at: '2024-05-01T10:00:00Z' },
      { id: '', at: '2024-05-01T10:00:00Z' },
      { id: 'b', at: 'yesterday' },
      { at: '2024-05-01T10:00:00Z' }
    ]
    const envelopes = values.map((v) => envelopeOf(host, JSON.stringify(v)).withValue<unknown>(v))
    const out = await lastValueFrom(from(envelopes).pipe(validate<{ id: string }>(schema), toArray()))
    assert.deepEqual(
      out.map((e) => e.value.id),
      ['a']
    )
    assert.equal(host.dead.length, 3)
    assert.match((host.dead[0]!.error as Error).message, /\/id: must NOT have fewer than 1 characters/)
    assert.match((host.dead[1]!.error as Error).message, /\/at: must match format "date-time"/)
    assert.match((host.dead[2]!.error as Error).message, /must have required property 'id'/)
  })

  test('stops at the first error: a 1 MiB memory event of 350,000 invalid embedding items gives one error', async () => {
    const { schema } = await loadSchema('memory.event', 1)
    const event = {
      event_id: '0f8fad5b-d9cb-469f-a165-70867728950e',
      id: 'm1',
      namespace: 'n',
      type: 't',
      timestamp: '2026-12-07T10:00:00Z',
      payload: { text: 'x' },
      embedding: Array.from({ length: 350_000 }, () => 'x')
    }
    assert.ok(JSON.stringify(event).length > 1_000_000)
    const check = compileSchema(schema)
    assert.equal(check(event), false)
    assert.equal(check.errors?.length, 1)
    assert.equal(check.errors?.[0]?.instancePath, '/embedding/0')
    // Two invalid fields: still one error, the first in the schema's order.
    assert.equal(check({ ...event, embedding: [1], id: '', namespace: '' }), false)
    assert.equal(check.errors?.length, 1)

    const host = new RecordingHost()
    const envelope = envelopeOf(host, '{}').withValue<unknown>(event)
    const out = await lastValueFrom(from([envelope]).pipe(validate(schema), toArray()))
    assert.equal(out.length, 0)
    assert.equal(host.dead.length, 1)
    assert.equal((host.dead[0]!.error as Error).message, 'schema validation failed: /embedding/0: must be number')
  })
})
