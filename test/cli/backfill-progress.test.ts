import assert from 'node:assert/strict'
import { test } from 'node:test'
import { progressLine } from '../../src/cli/backfill.ts'

const at = (read: number, seconds: number) => ({
  read,
  produced: Math.floor(read * 0.8),
  skipped: { meta: 0, wal: 0, version: 0, uuid5: 0, other: 0 },
  invalid: {},
  total: 1_000_000,
  seconds,
  lastKey: undefined
})

test('backfill progress: bar, percentage, rows, rate and ETA on a terminal; the same without the bar in a log', () => {
  assert.equal(
    progressLine(at(250_000, 5), true),
    '[########----------------------] 25.0% 250,000/1,000,000 rows, 200,000 memories sent, 50,000 rows/s, ETA 0:15'
  )
  assert.equal(
    progressLine(at(500_000, 3600), false),
    '50.0% 500,000/1,000,000 rows, 400,000 memories sent, 139 rows/s, ETA 1:00:00'
  )
  assert.match(progressLine(at(0, 0), true), /^\[-{30}\] 0\.0% 0\/1,000,000 rows.*ETA --:--$/)
})
