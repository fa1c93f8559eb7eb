/**
 * The peers benchmark (bench/peers.ts) at CI size, so that its harness cannot rot: every side the stack has runs on a
 * few thousand events. Ours (the KV branch alone and the whole memory topology) must end with exactly the fold of the
 * history — nothing lost, stale or resurrected, every poison record in memory.dlq; each side must get every row of a
 * history of distinct memories. The peers' correctness counts on the adversarial history are reported, not asserted
 * (they have no fence and no dedupe). No figure of speed is asserted: that is the benchmark's job.
 *
 * The Connect side needs CONNECT_URL (`npm run stack -- up --connect`; .ci/run's `npm test` starts a worker with
 * SFM_TEST_CONNECT=1), the Quix side .venv-peers (`npm run python-setup -- --peers`); each skips with the reason.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { compareWithFold, type PeerSide, parseOptions, runSides } from '../../bench/peers.ts'
import { fold } from '../../src/memory/fold.ts'

const skip =
  process.env.KAFKA_BROKERS && process.env.DATABASE_URL ? undefined : 'KAFKA_BROKERS and DATABASE_URL are not set'

const OURS: readonly PeerSide[] = ['ours', 'ours_all']

test('the fold comparison counts lost, stale and resurrected rows', () => {
  const ts = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString()
  const expected = fold([
    { event_id: 'e1', id: 'a', namespace: 'ns', type: 't', timestamp: ts(1), version: 1, payload: { text: 'a1' } },
    { event_id: 'e2', id: 'a', namespace: 'ns', type: 't', timestamp: ts(2), version: 2, payload: { text: 'a2' } },
    { event_id: 'e3', id: 'b', namespace: 'ns', type: 't', timestamp: ts(1), version: 1, payload: { text: 'b1' } },
    { event_id: 'e4', id: 'b', namespace: 'ns', op: 'delete', timestamp: ts(2), version: 2 },
    { event_id: 'e5', id: 'c', namespace: 'ns', type: 't', timestamp: ts(1), version: 1, payload: { text: 'c1' } },
    { event_id: 'e6', id: 'd', namespace: 'ns', type: 't', timestamp: ts(1), version: 1, payload: { text: 'd1' } }
  ])
  const exact = new Map([
    ['a', { eventId: 'e2', deleted: false }],
    ['b', { eventId: 'e4', deleted: true }],
    ['c', { eventId: 'e5', deleted: false }],
    ['d', { eventId: 'e6', deleted: false }]
  ])
  assert.deepEqual(compareWithFold(expected, exact), { rows: 3, lost: 0, stale: 0, resurrected: 0 })
  const wrong = new Map([
    ['a', { eventId: 'e1', deleted: false }], // stale: an older version won
    ['b', { eventId: 'e3', deleted: false }], // resurrected: a stale upsert after the delete
    ['c', { eventId: 'e5', deleted: true }] // lost (soft-deleted); d lost (missing)
  ])
  assert.deepEqual(compareWithFold(expected, wrong), { rows: 0, lost: 2, stale: 1, resurrected: 1 })
})

test('every side materializes every row of a history of distinct memories', { skip, timeout: 600_000 }, async (t) => {
  const options = parseOptions(['--events', '2000', '--connect-configs', '1x500'])
  const { results, skipped } = await runSides(options)
  for (const [side, why] of skipped) t.diagnostic(`${side} skipped: ${why}`)
  for (const side of OURS) assert.ok(results.has(side), `${side} ran`)
  for (const [side, r] of results) {
    t.diagnostic(`${r.side}: ${Math.round(r.perS)} events/s, CPU s/1000 events ${r.cpuTotalSPer1000}, rows ${r.rows}`)
    assert.equal(r.note, '', `${side}: ${r.note}`)
    assert.equal(r.rows, 2000, `${side}: every row`)
    assert.deepEqual([r.lost, r.stale, r.resurrected], [0, 0, 0], side)
    assert.ok(r.perS > 0 && Number.isFinite(r.perS), `${side}: a rate`)
    // A few thousand events can fit in one clock tick of /proc's CPU times: only that it was read.
    assert.ok(Number.isFinite(r.cpuTotalSPer1000) && r.cpuTotalSPer1000 >= 0, `${side}: CPU read`)
    assert.ok(r.bytesPerMessage >= 1000, `${side}: ~1 KB messages`)
  }
})

test('on the adversarial history ours is exactly the fold with every poison record in memory.dlq', {
  skip,
  timeout: 600_000
}, async (t) => {
  const options = parseOptions([
    '--events',
    '2000',
    '--history',
    'adversarial',
    '--poison',
    '6',
    '--connect-configs',
    '1x500'
  ])
  const { results, skipped } = await runSides(options)
  for (const [side, why] of skipped) t.diagnostic(`${side} skipped: ${why}`)
  for (const side of OURS) {
    const r = results.get(side)
    assert.ok(r, `${side} ran`)
    assert.equal(r.note, '', `${side}: ${r.note}`)
    assert.deepEqual(
      { lost: r.lost, stale: r.stale, resurrected: r.resurrected },
      { lost: 0, stale: 0, resurrected: 0 }
    )
    assert.ok(r.rows > 0, `${side}: rows`)
    assert.equal(r.poison, 'dlq 6/6', side)
  }
  // The peers as they come out: reported, not asserted.
  for (const side of ['connect', 'quix'] as const) {
    const r = results.get(side)
    if (r) {
      t.diagnostic(
        `${r.side}: rows ${r.rows}, lost ${r.lost}, stale ${r.stale}, resurrected ${r.resurrected}, poison ${r.poison}` +
          (r.note ? ` [${r.note}]` : '')
      )
    }
  }
})
