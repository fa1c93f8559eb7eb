import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Consumer } from '@platformatic/kafka'
import { ErrorCodes, SfmError } from '../../src/errors.ts'
import { commitOffsets, committedOffsets, joinGroup, leaveGroup } from '../../src/log/groups.ts'
import { rewindGroup } from '../../src/sources/rewind.ts'
import { openLog, tempDataDir } from '../helpers/embedded-log.ts'
import {
  brokers,
  createTopics,
  committedOffsets as kafkaCommitted,
  NO_KAFKA,
  produce,
  uniqueName,
  waitFor
} from '../helpers/kafka.ts'

const refusedAsConfig = (error: unknown) =>
  error instanceof SfmError && error.code === ErrorCodes.CONFIG && /another|held|live member/.test(error.message)

describe('rewindGroup on the embedded log', () => {
  test('sets the group to each partition start, returns the spans, refuses a group a live member holds', async (t) => {
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    log.createTopic({ name: 'latest', partitions: 2 })
    log.append(Array.from({ length: 10 }, (_, i) => ({ topic: 'latest', key: Buffer.from(`k${i}`), value: null })))
    const member = joinGroup(log, 'g', 10_000)
    commitOffsets(
      log,
      member,
      log.partitions('latest').map((p) => ({ topic: 'latest', partition: p.partition, offset: p.end }))
    )

    await assert.rejects(rewindGroup({ groupId: 'g', topics: ['latest'], target: 'embedded', dataDir: dir }), (e) =>
      refusedAsConfig(e)
    )
    leaveGroup(log, member)

    const spans = await rewindGroup({ groupId: 'g', topics: ['latest'], target: 'embedded', dataDir: dir })
    assert.equal(spans.length, 2)
    assert.equal(
      spans.reduce((n, s) => n + Number(s.end - s.start), 0),
      10
    )
    const committed = committedOffsets(log, 'g', ['latest']).get('latest')!
    for (const s of spans) assert.equal(committed.get(s.partition), s.start, 'back at the start')
  })
})

describe('rewindGroup on Kafka', { skip: brokers() ? false : NO_KAFKA }, () => {
  test('deletes the group (first run: no group is fine), returns the spans, refuses a live group', async (t) => {
    const topic = uniqueName('rewind')
    await createTopics(t, [topic], 3)
    await produce(Array.from({ length: 30 }, (_, i) => ({ topic, key: `k${i}`, value: `v${i}` })))
    const groupId = uniqueName('rewind-group')

    const fresh = await rewindGroup({ groupId, topics: [topic], brokers: brokers()! })
    assert.deepEqual(
      fresh.map((s) => s.partition),
      [0, 1, 2]
    )
    assert.equal(
      fresh.reduce((n, s) => n + Number(s.end - s.start), 0),
      30
    )

    // A member reads and commits everything, and is still in the group.
    const consumer = new Consumer({ clientId: 'rewind-test', groupId, bootstrapBrokers: brokers()!, autocommit: false })
    t.after(() => consumer.close(true))
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false })
    let read = 0
    stream.on('data', (m) => {
      read++
      void m.commit()
    })
    await waitFor(
      async () => read === 30 && [...(await kafkaCommitted(groupId, topic)).values()].length === 3,
      20_000,
      'commits'
    )
    await assert.rejects(rewindGroup({ groupId, topics: [topic], brokers: brokers()! }), (e) => refusedAsConfig(e))

    await stream.close()
    await consumer.close(true)
    const spans = await rewindGroup({ groupId, topics: [topic], brokers: brokers()! })
    assert.deepEqual(spans, fresh)
    const after = await kafkaCommitted(groupId, topic)
    assert.ok(
      [...after.values()].every((o) => o < 0n),
      `no committed offsets left: ${[...after.values()]}`
    )
  })
})
