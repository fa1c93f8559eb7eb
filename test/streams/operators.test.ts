import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { from, lastValueFrom, Subject, toArray } from 'rxjs'
import { PoisonError } from '../../src/errors.ts'
import { loadSchema } from '../../src/schemas.ts'
import type { Envelope } from '../../src/streams/envelope.ts'
import { batch } from '../../src/streams/operators/batch.ts'
import { decodeJson, jsonDepthExceeds } from '../../src/streams/operators/decode-json.ts'
import { dedupe } from '../../src/streams/operators/dedupe.ts'
import { keep } from '../../src/streams/operators/keep.ts'
import { compileSchema, validate } from '../../src/streams/operators/validate.ts'
import { envelopeOf, RecordingHost } from '../helpers/envelopes.ts'

describe('decodeJson', () => {
  test('decodes JSON and dead-letters what is not JSON, too large, too deep or not UTF-8', async () => {
    const host = new RecordingHost()
    const inputs = [
      envelopeOf(host, '{"a":1}'),
      envelopeOf(host, 'not json'),
      envelopeOf(host, `"${'x'.repeat(200)}"`),
      envelopeOf(host, `${'['.repeat(40)}${']'.repeat(40)}`),
      envelopeOf(host, Buffer.from([0x22, 0xff, 0xfe, 0x22])),
      envelopeOf(host, '["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]')
    ]
    const out = await lastValueFrom(from(inputs).pipe(decodeJson({ maxBytes: 100, maxDepth: 32 }), toArray()))
    assert.deepEqual(
      out.map((e) => e.value),
      [{ a: 1 }, ['[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[']]
    )
    const reasons = host.dead.map((d) => (d.error as Error).message)
    assert.equal(host.dead.length, 4)
    assert.match(reasons[0]!, /not JSON/)
    assert.match(reasons[1]!, /larger than the 100 bytes/)
    assert.match(reasons[2]!, /deeper than the 32 levels/)
    assert.match(reasons[3]!, /not valid UTF-8/)
    assert.ok(host.dead.every((d) => d.stage === 'decode' && d.error instanceof PoisonError))
  })

  test('depth scan ignores brackets in strings and escaped quotes', () => {
    assert.equal(jsonDepthExceeds(Buffer.from('{"a":"[[[[\\"[[["}'), 1), false)
    assert.equal(jsonDepthExceeds(Buffer.from('{"a":{"b":1}}'), 1), true)
    assert.equal(jsonDepthExceeds(Buffer.from('['.repeat(1000)), 999), true)
  })
})

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

describe('dedupe and keep', () => {
  test('drops repeated keys (acked as duplicates) and keeps the first of each', async () => {
    const host = new RecordingHost()
    const ids = ['a', 'b', 'a', 'c', 'b', 'a']
    const envelopes = ids.map((id) => envelopeOf(host, id).withValue(id))
    const out = await lastValueFrom(from(envelopes).pipe(dedupe({ key: (e) => e.value }), toArray()))
    assert.deepEqual(
      out.map((e) => e.value),
      ['a', 'b', 'c']
    )
    assert.equal(host.drops.length, 3)
    assert.ok(host.drops.every((d) => d.reason === 'duplicate'))
    // Dropped deliveries are done (their offsets can be committed).
    assert.equal(host.done_.length, 3)
  })

  test('the in-memory window forgets the oldest keys', async () => {
    const host = new RecordingHost()
    const ids = ['a', 'b', 'c', 'a']
    const envelopes = ids.map((id) => envelopeOf(host, id).withValue(id))
    const out = await lastValueFrom(from(envelopes).pipe(dedupe({ key: (e) => e.value, windowSize: 2 }), toArray()))
    assert.equal(out.length, 4)
  })

  test('a durable store is consulted on a miss and told only once a delivery is done', async () => {
    const host = new RecordingHost()
    const remembered: string[] = []
    const store = {
      seen: async (keys: readonly string[]) => new Set(keys.filter((k) => k === 'old')),
      remember: async (keys: readonly string[]) => {
        remembered.push(...keys)
      }
    }
    const envelopes = ['old', 'new'].map((id) => envelopeOf(host, id).withValue(id))
    const out = await lastValueFrom(from(envelopes).pipe(dedupe({ key: (e) => e.value, store }), toArray()))
    assert.deepEqual(
      out.map((e) => e.value),
      ['new']
    )
    assert.deepEqual(remembered, [])
    out[0]!.ack()
    await new Promise((r) => setImmediate(r))
    assert.deepEqual(remembered, ['new'])
  })

  test('keep drops (acks) what the predicate refuses', async () => {
    const host = new RecordingHost()
    const envelopes = [1, 2, 3, 4].map((n) => envelopeOf(host, String(n)).withValue(n))
    const out = await lastValueFrom(
      from(envelopes).pipe(
        keep((e) => e.value % 2 === 0),
        toArray()
      )
    )
    assert.deepEqual(
      out.map((e) => e.value),
      [2, 4]
    )
    assert.deepEqual(
      host.drops.map((d) => d.reason),
      ['filtered', 'filtered']
    )
  })
})

describe('batch', () => {
  test('flushes on count, per partition, never empty, and the rest on completion', async () => {
    const host = new RecordingHost()
    const input = new Subject<Envelope<Buffer>>()
    const batches: Envelope<Buffer>[][] = []
    const done = new Promise<void>((resolve) =>
      input
        .pipe(batch({ maxCount: 3, maxWaitMs: 60_000 }))
        .subscribe({ next: (b) => batches.push(b), complete: resolve })
    )
    for (let i = 0; i < 7; i++) input.next(envelopeOf(host, 'x', { partition: i % 2 }))
    // Partition 0 got 4 messages, partition 1 got 3: one full batch each so far.
    assert.deepEqual(
      batches.map((b) => b.length),
      [3, 3]
    )
    assert.ok(batches[0]!.every((e) => e.origin.partition === 0))
    assert.ok(batches[1]!.every((e) => e.origin.partition === 1))
    input.complete()
    await done
    assert.deepEqual(batches.map((b) => b.length).sort(), [1, 3, 3])
    for (const b of batches) assert.equal(new Set(b.map((e) => e.origin.partition)).size, 1)
  })

  test('flushes on bytes', async () => {
    const host = new RecordingHost()
    const input = new Subject<Envelope<Buffer>>()
    const batches: number[] = []
    input.pipe(batch({ maxCount: 1000, maxBytes: 250, maxWaitMs: 60_000 })).subscribe((b) => batches.push(b.length))
    for (let i = 0; i < 5; i++) input.next(envelopeOf(host, 'y'.repeat(100)))
    assert.deepEqual(batches, [3])
    input.complete()
    assert.deepEqual(batches, [3, 2])
  })

  test('flushes on time, and emits nothing when nothing arrives', async () => {
    const host = new RecordingHost()
    const input = new Subject<Envelope<Buffer>>()
    const batches: number[] = []
    input.pipe(batch({ maxCount: 1000, maxWaitMs: 20 })).subscribe((b) => batches.push(b.length))
    await new Promise((r) => setTimeout(r, 60))
    assert.deepEqual(batches, [])
    input.next(envelopeOf(host, 'z'))
    input.next(envelopeOf(host, 'z'))
    await new Promise((r) => setTimeout(r, 60))
    assert.deepEqual(batches, [2])
  })

  test('refuses bad settings', () => {
    assert.throws(() => batch({ maxCount: 0 }), /maxCount/)
    assert.throws(() => batch({ maxBytes: -1 }), /maxBytes/)
  })
})
