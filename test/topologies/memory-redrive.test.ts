import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import type { RedriveReport } from '../../src/ops/dlq.ts'
import { runCli } from '../helpers/dlq.ts'
import { brokers, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'
import { isolatedMemoryStack, legacyEventRecords, NO_PYTHON, runMemoryUntilIdle } from '../helpers/legacy.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

const skip = (brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`) || (NO_PYTHON ?? false)

describe('redrive with the memory topology', { skip }, () => {
  test('legacy events dead-lettered by the topology, redriven once after SFM_LEGACY_EVENTS=upcast, land as memories', {
    timeout: 180_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const group = uniqueName('memory')
    const records = legacyEventRecords(7, 20, 'default')
    await produce(records.map((r) => ({ topic: stack.topic('memory.events'), value: r.record })))

    // The default rejects them: all 20 in the DLQ, stage legacy-events.
    const rejected = await runMemoryUntilIdle({ group })
    assert.equal(rejected.deadLettered, records.length)

    const env = { ...process.env }
    const dry = await runCli('src/cli/dlq.ts', ['redrive', '--stage', 'legacy-events', '--dry-run', '--json'], env)
    assert.equal(dry.code, 0, dry.stderr)
    assert.equal((JSON.parse(dry.stdout) as RedriveReport).redriven, records.length)

    // The operator switches the topology to upcast and redrives: the same group reads on from where it was.
    const redrive = await runCli('src/cli/dlq.ts', ['redrive', '--stage', 'legacy-events', '--json'], env)
    assert.equal(redrive.code, 0, redrive.stderr)
    const report = JSON.parse(redrive.stdout) as RedriveReport
    assert.equal(report.redriven, records.length)
    assert.deepEqual(report.targets, { [stack.topic('memory.events')]: records.length })
    const upcast = await runMemoryUntilIdle({ legacyEvents: 'upcast', group })
    assert.equal(upcast.deadLettered, 0)
    const rows = await readMemories(stack.pool, `"${stack.table}"`)
    assert.deepEqual([...rows.keys()].sort(), records.map((r) => r.id).sort())

    // Nothing twice: a second redrive sends nothing, memory.events holds the 20 originals and the 20 redriven.
    const again = await runCli('src/cli/dlq.ts', ['redrive', '--json'], env)
    assert.equal(again.code, 0, again.stderr)
    assert.equal((JSON.parse(again.stdout) as RedriveReport).redriven, 0)
    const events = await readTopic(stack.topic('memory.events'), records.length * 2 + 1, 5_000)
    assert.equal(events.length, records.length * 2)
    assert.equal(events.filter((e) => e.headers.get('sfm.redrive.count') === '1').length, records.length)
  })
})
