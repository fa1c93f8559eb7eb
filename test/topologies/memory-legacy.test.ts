import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { DeadLetterHeaders } from '../../src/streams/dead-letter.ts'
import { brokers, NO_KAFKA, produce, readTopic } from '../helpers/kafka.ts'
import { isolatedMemoryStack, legacyEventRecords, NO_PYTHON, runMemoryUntilIdle } from '../helpers/legacy.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

const skip = (brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`) || (NO_PYTHON ?? false)

describe('legacy SomaFractalMemory events on memory.events', { skip }, () => {
  test('default: every legacy event goes to the DLQ naming SFM_LEGACY_EVENTS; upcast: each lands under its memory id', {
    timeout: 180_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    // Written by real Python as the legacy producer did: no key, uuid4 ids, ISO +00:00 or epoch-float timestamps.
    const records = legacyEventRecords(5, 40, 'default')
    await produce(records.map((r) => ({ topic: stack.topic('memory.events'), value: r.record })))

    const rejected = await runMemoryUntilIdle()
    assert.equal(rejected.deadLettered, records.length)
    assert.equal((await readMemories(stack.pool, `"${stack.table}"`)).size, 0, 'nothing applied')
    const letters = await readTopic(stack.topic('memory.dlq'), records.length)
    assert.equal(letters.length, records.length)
    for (const letter of letters) {
      assert.equal(letter.headers.get(DeadLetterHeaders.STAGE), 'legacy-events')
      assert.match(letter.headers.get(DeadLetterHeaders.ERROR_MESSAGE) ?? '', /SFM_LEGACY_EVENTS=upcast/)
    }
    assert.deepEqual(letters.map((l) => l.value).sort(), records.map((r) => r.record).sort(), 'original bytes kept')

    const upcast = await runMemoryUntilIdle({ legacyEvents: 'upcast' })
    assert.equal(upcast.deadLettered, 0)
    const rows = await readMemories(stack.pool, `"${stack.table}"`)
    assert.equal(rows.size, records.length)
    for (const { id, record } of records) {
      const legacy = JSON.parse(record) as { event_id: string; payload: { memory_type: string }; timestamp: unknown }
      const row = rows.get(id)
      assert.ok(row, `a row under the id Python gives: ${id}`)
      assert.equal(row.eventId, legacy.event_id)
      assert.equal(row.type, legacy.payload.memory_type)
      assert.equal(row.version, 0)
      // JSON.stringify writes -0 as 0, as PostgreSQL's jsonb stores it (its numeric has no negative zero).
      assert.deepEqual(row.payload, JSON.parse(JSON.stringify(JSON.parse(record).payload)))
      const expected =
        typeof legacy.timestamp === 'number'
          ? new Date(Math.round(legacy.timestamp * 1000)).toISOString().slice(0, 19)
          : String(legacy.timestamp).slice(0, 19)
      assert.equal(row.eventTs.slice(0, 19), expected, `timestamp of ${id}`)
    }
    assert.ok(rows.has('default:(1e-05, -0.0, 1e+16)') && rows.has('default:(0.5,)'))
  })
})
