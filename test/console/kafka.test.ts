/**
 * The console on Kafka: the real runner (`npm start -- topologies/memory.ts --console 0 --console-allow-writes`) on
 * the broker and PostgreSQL of the test stack, with poison in its input. The dead-letter view reads memory.dlq and a
 * memory's history reads memory.audit on the broker (no 501), bounded by their windows.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, test } from 'node:test'
import { listDeadLetters, logTopicReader, lookupMemory } from '../../src/console/data.ts'
import type { ConsoleStats } from '../../src/console/recorder.ts'
import { partitionForKey } from '../../src/log/partitioner.ts'
import { RedriveHeaders } from '../../src/ops/dlq.ts'
import { openLogAccess } from '../../src/ops/log.ts'
import { DeadLetterHeaders } from '../../src/streams/dead-letter.ts'
import { consoleInput, waitFor } from '../helpers/console.ts'
import { spawnNode } from '../helpers/embedded-log.ts'
import { brokers, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'
import { isolatedMemoryStack } from '../helpers/legacy.ts'

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`

describe('the console on Kafka', { skip }, () => {
  test('DLQ list / open / filter and redrive, and a memory history, read from the broker while the runner runs', {
    timeout: 240_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t)
    const records = consoleInput(stack.topic('memory.events'))
    await produce(records)
    const env = { ...process.env, SFM_MEMORY_GROUP: uniqueName('console'), LOG_LEVEL: 'info' }
    const runner = spawnNode(
      [
        'src/cli/start.ts',
        'topologies/memory.ts',
        '--console',
        '0',
        '--console-allow-writes',
        '--status-interval',
        '0'
      ],
      env
    )
    t.after(async () => {
      runner.child.kill('SIGTERM')
      await runner.exited
    })
    const url = await waitFor('the console URL in the log', 60_000, async () => {
      return /console: (http:\/\/127\.0\.0\.1:\d+\/) \(writes allowed\)/.exec(runner.stderr())?.[1]
    })
    const get = async (path: string, init?: RequestInit) => {
      const res = await fetch(new URL(path, url), init)
      return { status: res.status, body: (await res.json()) as Record<string, unknown> }
    }
    const stats = await waitFor('the runner to process the input', 120_000, async () => {
      const s = (await get('/api/stats')).body as unknown as ConsoleStats
      return s.runtime.done === records.length && s.runtime.deadLettered === 2 ? s : undefined
    })

    // The DLQ view: the count from memory.dlq's offsets equals the runtime's, by stage and class.
    const dlq = await get('/api/dlq')
    assert.equal(dlq.status, 200, JSON.stringify(dlq.body))
    assert.equal(dlq.body.topic, stack.topic('memory.dlq'))
    assert.equal(dlq.body.total, stats.runtime.deadLettered)
    assert.deepEqual(dlq.body.byStage, { decode: { PoisonError: 1 }, validate: { PoisonError: 1 } })
    assert.deepEqual(dlq.body.window, { read: 2, perPartition: 20_000, cut: false })
    const letters = dlq.body.letters as Array<{ partition: number; offset: string; stage: string; source: string }>
    assert.deepEqual(letters.map((l) => l.stage).sort(), ['decode', 'validate'])

    // Filtered, then one letter opened: its key, value and sfm.dlq.* headers.
    const decodeOnly = await get(`/api/dlq?filter=${encodeURIComponent('stage:decode class:PoisonError')}`)
    assert.equal(decodeOnly.body.matching, 1)
    const decode = (decodeOnly.body.letters as typeof letters)[0]!
    const opened = await get(`/api/dlq/letter?partition=${decode.partition}&offset=${decode.offset}`)
    assert.equal(opened.status, 200, JSON.stringify(opened.body))
    const headers = opened.body.headers as Record<string, string>
    assert.equal(headers[DeadLetterHeaders.STAGE], 'decode')
    assert.equal(headers[DeadLetterHeaders.ERROR_CLASS], 'PoisonError')
    assert.equal(headers[DeadLetterHeaders.SOURCE_TOPIC], stack.topic('memory.events'))
    assert.equal(headers[DeadLetterHeaders.TOPOLOGY], 'memory')
    assert.match(headers[DeadLetterHeaders.ERROR_MESSAGE] ?? '', /not JSON/)
    assert.deepEqual(opened.body.key, { text: 'poison-1', encoding: 'utf8' })
    assert.deepEqual(opened.body.value, { text: 'not json {', encoding: 'utf8' })
    const missing = await get(`/api/dlq/letter?partition=${decode.partition}&offset=99`)
    assert.equal(missing.status, 404)
    assert.match(String(missing.body.error), /no letter at offset 99/)
    const noPartition = await get('/api/dlq/letter?partition=7&offset=0')
    assert.equal(noPartition.status, 404)

    // A memory: its row, and its history from memory.audit on the partition its id hashes to.
    const memory = await get('/api/memory?id=m-3')
    assert.equal(memory.status, 200, JSON.stringify(memory.body))
    assert.equal((memory.body.row as { version: string }).version, '1')
    const audit = memory.body.audit as Array<{ version: number; outcome: string; op: string }>
    assert.deepEqual(audit.map((a) => a.version).sort(), [0, 1], JSON.stringify(audit))
    for (const a of audit) assert.ok(['applied', 'fenced', 'duplicate'].includes(a.outcome), JSON.stringify(a))
    const window = memory.body.auditWindow as { topic: string; partition: number; cut: boolean }
    assert.equal(window.topic, stack.topic('memory.audit'))
    assert.equal(window.partition, partitionForKey(Buffer.from('m-3'), 2))
    assert.equal(window.cut, false)
    const unknown = await get('/api/memory?id=no-such-memory')
    assert.equal(unknown.status, 404)
    assert.match(String(unknown.body.error), /no memory with id "no-such-memory"/)

    // A redrive of the decode letter: back on memory.events with sfm.redrive.* headers; the runner dead-letters it
    // again (still not JSON), and the DLQ view counts 3.
    const redrive = await get('/api/dlq/redrive', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-sfm-console': '1' },
      body: JSON.stringify({ partition: decode.partition, offset: decode.offset })
    })
    assert.equal(redrive.status, 200, JSON.stringify(redrive.body))
    assert.deepEqual(redrive.body.selection, { stage: 'decode', errorCode: headers[DeadLetterHeaders.ERROR_CODE] })
    assert.equal(redrive.body.redriven, 1)
    const back = (await readTopic(stack.topic('memory.events'), records.length + 1, 20_000)).filter((m) =>
      m.headers.has(RedriveHeaders.COUNT)
    )
    assert.equal(back.length, 1)
    assert.equal(back[0]!.key, 'poison-1')
    assert.equal(back[0]!.value, 'not json {')
    await waitFor('the redriven letter dead-lettered again', 60_000, async () => {
      const s = (await get('/api/stats')).body as unknown as ConsoleStats
      return s.runtime.deadLettered === 3 ? s : undefined
    })
    const after = await get('/api/dlq?filter=stage:decode')
    assert.equal(after.body.total, 3)
    assert.equal(after.body.matching, 2)
    const again = (after.body.letters as typeof letters).find(
      (l) => l.offset !== decode.offset || l.partition !== decode.partition
    )!
    const reopened = await get(`/api/dlq/letter?partition=${again.partition}&offset=${again.offset}`)
    assert.equal((reopened.body.headers as Record<string, string>)[RedriveHeaders.COUNT], '1')
  })

  test('bounded reads: a DLQ window and an audit window smaller than the topic say they were cut', {
    timeout: 120_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t, 1)
    const dlqTopic = stack.topic('memory.dlq')
    const auditTopic = stack.topic('memory.audit')
    const letter = (n: number) => ({
      topic: dlqTopic,
      key: Buffer.from(`k${n}`),
      value: Buffer.from(`{"n":${n}}`),
      headers: new Map([
        [DeadLetterHeaders.STAGE, Buffer.from(n % 2 === 0 ? 'decode' : 'validate')],
        [DeadLetterHeaders.ERROR_CLASS, Buffer.from('PoisonError')],
        [DeadLetterHeaders.FAILED_AT, Buffer.from(new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString())]
      ])
    })
    const auditRecord = (id: string, version: number) => ({
      topic: auditTopic,
      key: Buffer.from(id),
      value: Buffer.from(
        JSON.stringify({
          event_id: randomUUID(),
          id,
          op: 'upsert',
          version,
          timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, version)).toISOString(),
          outcome: 'applied',
          processed_at: new Date().toISOString()
        })
      )
    })
    await produce([...Array.from({ length: 10 }, (_, n) => letter(n))])
    await produce([auditRecord('a', 0), auditRecord('b', 0), auditRecord('a', 1), auditRecord('a', 2)])
    const reader = logTopicReader(openLogAccess({ target: 'kafka', stallTimeoutMs: 10_000 }))
    t.after(() => reader.close())

    const list = await listDeadLetters(reader, dlqTopic, {}, 3, 4)
    // The total from the offsets; counts and list over the newest 4 letters; at most 3 listed, newest first.
    assert.equal(list.total, 10)
    assert.deepEqual(list.window, { read: 4, perPartition: 4, cut: true })
    assert.deepEqual(list.byStage, { decode: { PoisonError: 2 }, validate: { PoisonError: 2 } })
    assert.equal(list.matching, 4)
    assert.deepEqual(
      list.letters.map((l) => l.offset),
      ['9', '8', '7']
    )

    const whole = await lookupMemory({ reader, auditTopic }, 'a')
    assert.deepEqual(
      whole.audit?.map((a) => a.version),
      [0, 1, 2]
    )
    assert.equal(whole.auditWindow?.cut, false)
    assert.deepEqual(
      whole.notes.filter((n) => n.startsWith('history cut')),
      []
    )
    const cut = await lookupMemory({ reader, auditTopic, auditWindow: 2 }, 'a')
    // Offsets 2 and 3: a's versions 1 and 2; version 0 (offset 0) is before the window.
    assert.deepEqual(
      cut.audit?.map((a) => a.version),
      [1, 2]
    )
    assert.deepEqual(cut.auditWindow, { topic: auditTopic, partition: 0, from: '2', to: '4', stored: '4', cut: true })
    assert.ok(
      cut.notes.some(
        (n) =>
          n ===
          `history cut: read the newest 2 of 4 records of ${auditTopic}[0] (offsets 2..3); older events of this memory are not shown`
      ),
      JSON.stringify(cut.notes)
    )
    // A topic that does not exist: a 404 saying what to do, not a crash.
    await assert.rejects(listDeadLetters(reader, `${dlqTopic}-missing`, {}), (error: Error & { status?: number }) => {
      assert.equal(error.status, 404)
      assert.match(error.message, /does not exist/)
      return true
    })
  })
})
