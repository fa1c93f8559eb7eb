import assert from 'node:assert/strict'
import { test } from 'node:test'
import { formatHeld, formatHeldFor, HeldSinks } from '../../src/streams/held-sinks.ts'

test('held: the same error past the threshold; a new error restarts the clock, a settled item ends it', () => {
  let now = 0
  const held = new HeldSinks(60_000, () => now)
  held.failed('vectors', 'ENOENT a')
  now = 59_999
  held.failed('vectors', 'ENOENT a')
  assert.deepEqual(held.held(), [])
  now = 130_000
  assert.deepEqual(held.held(), [{ branch: 'vectors', error: 'ENOENT a', seconds: 130 }])
  assert.equal(formatHeld(held.held()), ' held: vectors — ENOENT a for 2m10s')
  // Another error: the clock starts again.
  held.failed('vectors', 'ECONNREFUSED')
  now = 150_000
  assert.deepEqual(held.held(), [])
  assert.deepEqual([...held.seconds()], [['vectors', 20]])
  // A write that settled items: not held any more.
  now = 300_000
  assert.equal(held.held().length, 1)
  held.progressed('vectors')
  assert.deepEqual(held.held(), [])
  assert.equal(held.seconds().size, 0)
})

test('held durations read as a person would write them', () => {
  assert.equal(formatHeldFor(45.9), '45s')
  assert.equal(formatHeldFor(130), '2m10s')
  assert.equal(formatHeldFor(3900), '1h05m')
  assert.match(formatHeld([{ branch: 'kv', error: 'x'.repeat(300), seconds: 61 }]), /^ held: kv — x{119}… for 1m01s$/)
})
