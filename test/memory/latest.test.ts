import assert from 'node:assert/strict'
import { test } from 'node:test'
import { from, lastValueFrom, toArray } from 'rxjs'
import { decodeLatest, type LatestRecord } from '../../src/memory/latest.ts'
import type { Envelope } from '../../src/streams/envelope.ts'
import { envelopeOf, RecordingHost } from '../helpers/envelopes.ts'

test('decodeLatest: states and tombstones pass; keyless, non-object, oversized and too deep values are dead-lettered', async () => {
  const host = new RecordingHost()
  const state = {
    id: 'm-1',
    namespace: 'ns',
    version: 2,
    timestamp: '2026-01-01T00:00:00.000001Z',
    payload: { text: 'x' }
  }
  const inputs = [
    envelopeOf(host, JSON.stringify(state), { key: 'm-1' }),
    envelopeOf(host, Buffer.alloc(0), { key: 'm-2' }),
    envelopeOf(host, JSON.stringify(state)),
    envelopeOf(host, '[1,2]', { key: 'm-3' }),
    envelopeOf(host, '{"not json', { key: 'm-4' }),
    envelopeOf(host, `{"a":"${'x'.repeat(300)}"}`, { key: 'm-5' }),
    envelopeOf(host, `${'['.repeat(20)}${']'.repeat(20)}`, { key: 'm-6' })
  ]
  const out: Envelope<LatestRecord>[] = await lastValueFrom(
    from(inputs).pipe(decodeLatest({ maxBytes: 200, maxDepth: 8 }), toArray())
  )
  assert.deepEqual(
    out.map((e) => e.value),
    [
      { id: 'm-1', state },
      { id: 'm-2', state: null }
    ]
  )
  assert.equal(host.dead.length, 5)
  assert.ok(host.dead.every((d) => d.stage === 'decode-latest'))
  assert.match(String(host.dead[0]!.error), /without a key/)
  assert.match(String(host.dead[1]!.error), /not a JSON object/)
})
