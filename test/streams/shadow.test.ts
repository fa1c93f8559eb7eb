/**
 * Shadow runs on the embedded log (no services): the runtime's side — the derived group, dry sinks, counted dead
 * letters — and the seeding of the shadow group from the real one. test/topologies/memory-shadow.test.ts runs the
 * memory topology through `npm start -- … --shadow` on the real broker and PostgreSQL.
 */
import assert from 'node:assert/strict'
import { describe, type TestContext, test } from 'node:test'
import { pipe } from 'rxjs'
import type { EmbeddedLog } from '../../src/log/embedded-log.ts'
import { commitOffsets, committedOffsets, joinGroup, leaveGroup } from '../../src/log/groups.ts'
import { openLogAccess } from '../../src/ops/log.ts'
import { seedShadowGroup } from '../../src/ops/offsets.ts'
import { kafkaDeadLetter, kafkaSink } from '../../src/sinks/kafka/index.ts'
import type { SinkContext, WriteResult } from '../../src/sinks/types.ts'
import { logSource } from '../../src/sources/log.ts'
import type { DeadLetter } from '../../src/streams/dead-letter.ts'
import type { Envelope } from '../../src/streams/envelope.ts'
import { decodeJson } from '../../src/streams/operators/decode-json.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { branch, defineTopology } from '../../src/streams/topology.ts'
import { openLog, readAll, tempDataDir } from '../helpers/embedded-log.ts'
import { RecordingSink } from '../helpers/sinks.ts'

const GROUP = 'shadow-test'

function setup(t: TestContext): { dir: string; log: EmbeddedLog } {
  const dir = tempDataDir(t, 'sfm-shadow-')
  const log = openLog(t, dir)
  for (const name of ['in', 'out', 'dlq']) log.createTopic({ name, partitions: 1 })
  log.append(
    Array.from({ length: 10 }, (_, i) => ({
      topic: 'in',
      key: Buffer.from(`k${i}`),
      value: Buffer.from(i === 7 ? 'not json' : JSON.stringify({ n: i })),
      headers: new Map()
    }))
  )
  return { dir, log }
}

/** A sink that can run dry: it records the contexts it is given and reports one count per item in a dry run. */
class DrySink {
  readonly kind = 'dry-test'
  readonly dryRun = true
  readonly contexts: (SinkContext | undefined)[] = []
  written = 0
  async open(context?: SinkContext): Promise<void> {
    this.contexts.push(context)
  }
  async write(batch: readonly Envelope<unknown>[], context: SinkContext): Promise<WriteResult> {
    this.contexts.push(context)
    if (context.dryRun) return { dryRun: { would: batch.length } }
    this.written += batch.length
    return {}
  }
}

describe('shadow runs', () => {
  test('the runtime refuses a topology whose sink cannot run dry, naming the branch', (t) => {
    const { dir } = setup(t)
    const topology = defineTopology({
      name: 'refused',
      source: logSource({ topics: ['in'], groupId: GROUP, target: 'embedded', dataDir: dir }),
      branches: { records: branch(new RecordingSink<Buffer>()) },
      deadLetter: kafkaDeadLetter({ topic: 'dlq', target: 'embedded', dataDir: dir })
    })
    assert.throws(
      () => new Runtime(topology, { shadow: true }),
      /--shadow: branch records \(recording sink\) cannot run dry, so a shadow run would write for real/
    )
  })

  test('derived group seeded from the real one; sinks get dryRun and report counts; dead letters counted, not written; the real group untouched', async (t) => {
    const { dir, log } = setup(t)
    // The real group has processed the first 3 records.
    const member = joinGroup(log, GROUP, 10_000)
    commitOffsets(log, member, [{ topic: 'in', partition: 0, offset: 3n }])
    leaveGroup(log, member)

    const sink = new DrySink()
    const out = kafkaSink<unknown>({ topic: 'out', target: 'embedded', dataDir: dir })
    const letters: DeadLetter[] = []
    const topology = defineTopology<unknown>({
      name: 'shadowed',
      source: logSource({ topics: ['in'], groupId: GROUP, target: 'embedded', dataDir: dir, pollIntervalMs: 10 }),
      pipeline: pipe(decodeJson()),
      branches: { dry: branch(sink), out: branch(out) },
      deadLetter: {
        description: 'recording',
        async write(batch) {
          letters.push(...batch)
        }
      },
      settings: { commitIntervalMs: 50 }
    })
    const runtime = new Runtime(topology, { shadow: true, untilIdleMs: 500 })
    const group = runtime.shadowGroup!
    assert.deepEqual(group, { groupId: `${GROUP}.shadow`, realGroupId: GROUP, topics: ['in'], drainOldEvents: true })
    const access = openLogAccess({ dataDir: dir, target: 'embedded' })
    try {
      assert.deepEqual(await seedShadowGroup(access, group), [
        { topic: 'in', partition: 0, offset: 3n, fromRealGroup: true }
      ])
    } finally {
      await access.close()
    }
    const summary = await runtime.run()

    assert.equal(summary.consumed, 7, 'from the real group’s offset 3 to the end')
    assert.ok(sink.contexts.length > 1 && sink.contexts.every((c) => c?.dryRun === true))
    assert.equal(sink.written, 0)
    assert.deepEqual(summary.shadow?.branches, { dry: { would: 6 }, out: { out: 6 } })
    assert.deepEqual(summary.shadow?.deadLetters, { decode: 1 })
    assert.equal(letters.length, 0, 'the real dead-letter target got nothing')
    assert.equal(readAll(log, 'out').length, 0, 'the Kafka sink produced nothing')
    assert.equal(readAll(log, 'dlq').length, 0)
    assert.equal(committedOffsets(log, GROUP, ['in']).get('in')?.get(0), 3n, 'the real group did not move')
    assert.equal(committedOffsets(log, `${GROUP}.shadow`, ['in']).get('in')?.get(0), 10n)
  })
})
