/**
 * memory.latest as the materializer writes it: for an applied event the record is built from the event as the sink
 * wrote it, otherwise from the row read back. Either way it must say what the table holds; this test compares every
 * record with the table (real broker and PostgreSQL; skipped without them).
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, test } from 'node:test'
import { from, lastValueFrom, toArray } from 'rxjs'
import type { MemoryEvent } from '../../src/memory/event.ts'
import { decodeJson } from '../../src/streams/operators/decode-json.ts'
import { envelopeOf, RecordingHost } from '../helpers/envelopes.ts'
import { brokers, NO_KAFKA, readTopic } from '../helpers/kafka.ts'
import { openMaterializer } from '../helpers/materializer.ts'
import { envelopes, memoryEvent } from '../sinks/postgres/helpers.ts'

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`

describe('memory.latest from the materializer (Kafka + PostgreSQL)', { skip }, () => {
  test('records built from applied events equal what the table holds, as the read-back ones do', async (t) => {
    const { schema, pool, sink, context, latestTopic } = await openMaterializer(t, 'sfm_latest')

    const a = memoryEvent({
      id: 'a',
      // PostgreSQL prints uuids in lower case.
      event_id: randomUUID().toUpperCase(),
      version: 2,
      importance: 0.25,
      // An offset and nanoseconds: the row keeps UTC microseconds.
      timestamp: '2025-06-01T12:00:00.1234567+02:00',
      // jsonb reorders keys and prints numbers its own way: equal as JSON all the same.
      payload: { z: 1, text: 'é "quoted" \\ ✓', a: [1.5, 'x', { n: null }], big: 1e21, small: 1.5e-7 }
    })
    const b = memoryEvent({ id: 'b', version: 3, type: 'semantic' })
    const c1 = memoryEvent({ id: 'c', version: 1 })
    const c2: MemoryEvent = {
      event_id: randomUUID(),
      id: 'c',
      namespace: 'ns',
      op: 'delete',
      version: 2,
      timestamp: '2025-01-02T00:00:00Z'
    }
    // A spelling PostgreSQL accepts but prints differently: this one is read back.
    const d = memoryEvent({ id: 'd', event_id: `{${randomUUID()}}` })
    await sink.write(envelopes([a, b, c1, c2, d]), context)
    // Nothing applied: a is fenced (stale), b is a redelivery; both are read back.
    await sink.write(envelopes([memoryEvent({ id: 'a', version: 1 }), b]), context)

    const { rows } = await pool.query<{ id: string; state: string | null }>(
      `SELECT id, CASE WHEN deleted_at IS NULL THEN json_build_object(
          'id', id, 'namespace', namespace, 'type', type, 'importance', importance, 'version', version,
          'event_id', event_id::text,
          'timestamp', to_char(event_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
          'payload', payload)::text END AS state
       FROM "${schema}".memories`
    )
    const table = new Map(rows.map((r) => [r.id, r.state === null ? null : JSON.parse(r.state)]))
    assert.equal(table.size, 4)
    assert.equal(table.get('c'), null)

    const records = await readTopic(latestTopic, 6, 20_000)
    assert.equal(records.length, 6, 'one record per touched id and batch')
    for (const record of records) {
      const expected = table.get(record.key!)
      if (expected === null) {
        assert.equal(record.value, undefined, `tombstone for ${record.key}`)
        continue
      }
      const state = JSON.parse(record.value ?? 'null') as Record<string, unknown>
      assert.deepEqual(state, expected, `latest ${record.key} at offset ${record.offset}`)
      assert.deepEqual(Object.keys(state), Object.keys(expected))
    }
    const first = records.slice(0, 4).map((r) => r.key)
    assert.deepEqual(first.sort(), ['a', 'b', 'c', 'd'])
    assert.deepEqual(
      records
        .slice(4)
        .map((r) => r.key)
        .sort(),
      ['a', 'b']
    )
  })
  test('a payload kept as received (decodeJson rawMember) is stored and published as sent', async (t) => {
    const { schema, pool, sink, context, latestTopic } = await openMaterializer(t, 'sfm_latest_raw')
    // Spaces, a number JSON.stringify would round (2^64 + 1), an escaped quote: as a producer may write them.
    const payloads = {
      a: '{ "n" : 18446744073709551617, "t": "say \\"hi\\"", "l": [ 1.50, true ] }',
      // Not ASCII: the decoder keeps nothing and the sink serialises the decoded payload.
      b: '{"t": "é", "n": 1.50}'
    }
    const texts = Object.entries(payloads).map(
      ([id, payload]) =>
        `{"event_id":"${randomUUID()}","id":"${id}","namespace":"ns","type":"note","version":1,` +
        `"timestamp":"2025-01-01T00:00:00Z","payload":${payload}}`
    )
    const host = new RecordingHost()
    const decoded = await lastValueFrom(
      from(texts.map((text) => envelopeOf(host, text))).pipe(decodeJson({ rawMember: 'payload' }), toArray())
    )
    assert.ok(decoded[0]!.delivery.rawMemberOf(decoded[0]!.value), 'a: kept as received')
    assert.equal(decoded[1]!.delivery.rawMemberOf(decoded[1]!.value), undefined, 'b: serialised')
    await sink.write(decoded as unknown as Parameters<typeof sink.write>[0], context)

    const { rows } = await pool.query<{ id: string; same: boolean; payload: string }>(
      `SELECT id, payload = $1::jsonb AS same, payload::text AS payload FROM "${schema}".memories WHERE id = 'a'
       UNION ALL SELECT id, payload = $2::jsonb, payload::text FROM "${schema}".memories WHERE id = 'b'`,
      [payloads.a, JSON.stringify(JSON.parse(payloads.b))]
    )
    assert.deepEqual(
      rows.map((r) => [r.id, r.same]),
      [
        ['a', true],
        ['b', true]
      ]
    )
    assert.match(rows[0]!.payload, /18446744073709551617/, 'every digit kept')
    const records = await readTopic(latestTopic, 2, 20_000)
    const a = records.find((r) => r.key === 'a')!
    assert.ok(a.value?.endsWith(`"payload":${payloads.a}}`), a.value)
    assert.deepEqual(JSON.parse(a.value!).payload, JSON.parse(payloads.a))
    const b = records.find((r) => r.key === 'b')!
    assert.deepEqual(JSON.parse(b.value!).payload, JSON.parse(payloads.b))
  })
})
