import assert from 'node:assert/strict'
import { test } from 'node:test'
import { PoisonError } from '../../../src/errors.ts'
import { type PreparedEvent, prepareEvent } from '../../../src/memory/prepare.ts'
import { reduceBatch } from '../../../src/sinks/postgres/buffer.ts'
import { memoryEvent } from './helpers.ts'

function prepared(fields: Parameters<typeof memoryEvent>[0], index: number): PreparedEvent {
  const event = prepareEvent(memoryEvent(fields), index)
  if (event instanceof Error) throw event
  return event
}

test('reduceBatch keeps one winner per id under the fence rule', () => {
  const events = [
    prepared({ id: 'a', version: 1, timestamp: '2025-01-01T00:00:05Z' }, 0),
    prepared({ id: 'a', version: 2, timestamp: '2025-01-01T00:00:00Z' }, 1),
    prepared({ id: 'b', version: 0, timestamp: '2025-01-01T00:00:00Z' }, 2),
    prepared({ id: 'a', version: 2, timestamp: '2025-01-01T00:00:00.000001Z' }, 3),
    prepared({ id: 'b', timestamp: '2025-01-01T00:00:00.000Z' }, 4)
  ]
  const { items, repeats } = reduceBatch(events)
  assert.deepEqual(repeats, [])
  const byIndex = new Map(items.map((i) => [i.event.index, i]))
  assert.equal(byIndex.get(3)!.winner, true, 'greater timestamp wins an equal version')
  assert.equal(byIndex.get(0)!.local, 'fenced', 'a greater version beats a later timestamp')
  assert.equal(byIndex.get(1)!.local, 'fenced')
  assert.equal(byIndex.get(2)!.winner, true, 'on an exact tie the first in batch order stays')
  assert.equal(byIndex.get(4)!.local, 'duplicate', 'same (version, timestamp) as the winner is a duplicate')
  assert.equal(items.filter((i) => i.winner).length, 2)
})

test('reduceBatch drops later copies of an event_id', () => {
  const first = prepared({ id: 'a', version: 1 }, 0)
  const copy = { ...first, index: 1 }
  const other = prepared({ id: 'a', version: 3 }, 2)
  const { items, repeats } = reduceBatch([first, copy, other])
  assert.deepEqual(
    repeats.map((r) => r.index),
    [1]
  )
  assert.deepEqual(
    items.map((i) => [i.event.index, i.winner, i.local]),
    [
      [0, false, 'fenced'],
      [2, true, undefined]
    ]
  )
})

test('prepareEvent: poison for what the fence or the table cannot take', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['version', { version: -1 }],
    ['version', { version: 2 ** 53 }],
    ['version', { version: 1.5 }],
    ['timestamp', { timestamp: '2025-01-01T00:00:00' }],
    ['type', { type: undefined }],
    ['payload', { payload: undefined }],
    ['importance', { importance: Number.NaN }],
    ['op', { op: 'merge' }],
    ['payload', { payload: { big: 1n } }]
  ]
  for (const [what, fields] of cases) {
    const result = prepareEvent({ ...memoryEvent({ id: 'x' }), ...fields } as never, 7)
    assert.ok(result instanceof PoisonError, what)
    assert.match(result.message, new RegExp(what))
    assert.equal(result.details.index, 7)
  }
  const deletion = prepareEvent(memoryEvent({ id: 'x', op: 'delete', type: undefined, payload: undefined }), 0)
  assert.ok(!(deletion instanceof Error))
  assert.equal(deletion.deleted, true)
  assert.equal(deletion.payload, null)
})
