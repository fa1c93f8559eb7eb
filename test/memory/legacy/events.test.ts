import assert from 'node:assert/strict'
import { test } from 'node:test'
import { from, lastValueFrom, toArray } from 'rxjs'
import {
  isLegacyEvent,
  LegacyEventModes,
  legacyEventModeFromEnv,
  legacyEvents,
  normalizeLegacyTimestamp,
  upcastLegacyEvent
} from '../../../src/memory/legacy/events.ts'
import type { Envelope } from '../../../src/streams/envelope.ts'
import { envelopeOf, RecordingHost } from '../../helpers/envelopes.ts'

const legacy = {
  event_id: '5d3c7a1e-8a5e-4c1a-9d7e-2f1b3c4d5e6f',
  id: '0b6f7a5e-1c2d-4e3f-8a9b-0c1d2e3f4a5b',
  namespace: 'default',
  type: 'created',
  timestamp: '2025-10-13T10:00:00.123456+00:00',
  payload: { text: 'hi', memory_type: 'episodic', coordinate: [1, -0, 1e-5], timestamp: 1760349600.5 }
}

test('SFM_LEGACY_EVENTS: reject by default, upcast, anything else a configuration error naming it', () => {
  assert.equal(legacyEventModeFromEnv({}), LegacyEventModes.REJECT)
  assert.equal(legacyEventModeFromEnv({ SFM_LEGACY_EVENTS: 'upcast' }), LegacyEventModes.UPCAST)
  assert.throws(() => legacyEventModeFromEnv({ SFM_LEGACY_EVENTS: 'drop' }), {
    kind: 'fatal',
    message: /SFM_LEGACY_EVENTS must be "upcast" or "reject", got "drop"/
  })
})

test('isLegacyEvent: type "created" without op/version and only legacy fields', () => {
  assert.ok(isLegacyEvent(legacy))
  assert.ok(isLegacyEvent({ ...legacy, timestamp: 1760349600.25, importance: 3 }))
  assert.ok(!isLegacyEvent({ ...legacy, op: 'upsert' }))
  assert.ok(!isLegacyEvent({ ...legacy, version: 0 }))
  assert.ok(!isLegacyEvent({ ...legacy, type: 'episodic' }))
  assert.ok(!isLegacyEvent({ ...legacy, trace: 'x' }))
  assert.ok(!isLegacyEvent([legacy]))
  assert.ok(!isLegacyEvent(null))
})

test('upcastLegacyEvent: the memory id from namespace + coordinate, upsert at version 0, type, UTC timestamp', () => {
  const event = upcastLegacyEvent({ ...legacy, importance: 2 })
  assert.deepEqual(event, {
    event_id: legacy.event_id,
    id: 'default:(1.0, -0.0, 1e-05)',
    namespace: 'default',
    op: 'upsert',
    type: 'episodic',
    timestamp: '2025-10-13T10:00:00.123456Z',
    version: 0,
    payload: legacy.payload,
    importance: 2
  })
  assert.equal(normalizeLegacyTimestamp(1760349600.25), '2025-10-13T10:00:00.250000Z')
  assert.equal(normalizeLegacyTimestamp('2025-10-13T12:00:00+02:00'), '2025-10-13T10:00:00.000000Z')
  assert.throws(() => normalizeLegacyTimestamp('2025-10-13T10:00:00'), /with an offset/)
  assert.throws(() => upcastLegacyEvent({ ...legacy, payload: { memory_type: 'x' } }), /payload.coordinate/)
  assert.throws(() => upcastLegacyEvent({ ...legacy, payload: { coordinate: [1] } }), /payload.memory_type/)
  assert.throws(
    () => upcastLegacyEvent({ ...legacy, payload: { memory_type: 'x', coordinate: [1, 'a'] } }),
    /payload.coordinate: coordinate\[1\] must be a number/
  )
})

async function through(mode: 'upcast' | 'reject', values: unknown[]) {
  const host = new RecordingHost()
  const inputs = values.map((v) => envelopeOf(host, JSON.stringify(v)).withValue<unknown>(v))
  const out: Envelope<unknown>[] = await lastValueFrom(from(inputs).pipe(legacyEvents({ mode }), toArray()))
  return { host, out: out.map((e) => e.value) }
}

test('legacyEvents: reject dead-letters legacy events naming SFM_LEGACY_EVENTS and passes the rest untouched', async () => {
  const current = { ...legacy, type: 'episodic', id: 'm-1', version: 3 }
  const { host, out } = await through('reject', [legacy, current, 'not an object'])
  assert.deepEqual(out, [current, 'not an object'])
  assert.equal(host.dead.length, 1)
  assert.equal(host.dead[0]!.stage, 'legacy-events')
  assert.match(String(host.dead[0]!.error), /legacy SomaFractalMemory event.*set SFM_LEGACY_EVENTS=upcast/)
  assert.equal(host.drops.length, 0)
})

test('legacyEvents: upcast passes the v1 event on, dead-letters what cannot be upcast, drops nothing', async () => {
  const broken = { ...legacy, payload: { text: 'no coordinate', memory_type: 'semantic' } }
  const { host, out } = await through('upcast', [legacy, broken])
  assert.equal(out.length, 1)
  assert.equal((out[0] as { id: string }).id, 'default:(1.0, -0.0, 1e-05)')
  assert.equal(host.dead.length, 1)
  assert.match(String(host.dead[0]!.error), /without payload.coordinate/)
  assert.equal(host.drops.length, 0)
})
