import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type InputLine, produceLines, readLines } from '../../src/kafka/produce.ts'
import { brokers, createTopics, NO_KAFKA, readTopic, uniqueName } from '../helpers/kafka.ts'

const skip = brokers() ? false : NO_KAFKA

async function collect(
  chunks: (string | Buffer)[],
  max: number
): Promise<Array<{ line: number; text?: string; tooLong?: number }>> {
  async function* source() {
    yield* chunks
  }
  const out: Array<{ line: number; text?: string; tooLong?: number }> = []
  for await (const item of readLines(source(), max) as AsyncGenerator<InputLine>) {
    out.push(
      'tooLong' in item ? { line: item.line, tooLong: item.tooLong } : { line: item.line, text: item.bytes.toString() }
    )
  }
  return out
}

describe('readLines', () => {
  test('splits across chunks, drops \\r before \\n, keeps a last line without newline, numbers every line', async () => {
    const lines = await collect(['{"a":', '1}\r\n\n{"b"', ':2}\n', '{"c":3}'], 100)
    assert.deepEqual(lines, [
      { line: 1, text: '{"a":1}' },
      { line: 2, text: '' },
      { line: 3, text: '{"b":2}' },
      { line: 4, text: '{"c":3}' }
    ])
    assert.deepEqual(await collect(['x\n'], 100), [{ line: 1, text: 'x' }])
    assert.deepEqual(await collect([], 100), [])
  })

  test('an over-long line is counted, not kept, even when it spans chunks; the next line is intact', async () => {
    const big = 'y'.repeat(40)
    const lines = await collect(
      ['ok\n', big.slice(0, 15), big.slice(15, 30), `${big.slice(30)}\nafter\n`, 'z'.repeat(11)],
      10
    )
    assert.deepEqual(lines, [
      { line: 1, text: 'ok' },
      { line: 2, tooLong: 40 },
      { line: 3, text: 'after' },
      { line: 4, tooLong: 11 }
    ])
    // Exactly at the limit is fine, also with a \r after it.
    assert.deepEqual(await collect(['0123456789\r\n0123456789'], 10), [
      { line: 1, text: '0123456789' },
      { line: 2, text: '0123456789' }
    ])
  })
})

describe('produceLines on a real broker', { skip }, () => {
  test('many sends in flight keep per-key order and send every line once', { timeout: 60_000 }, async (t) => {
    const topic = uniqueName('t.produce-lib')
    await createTopics(t, [topic], 3)
    const keys = 7
    const total = 2_000
    const lines = Array.from({ length: total }, (_, i) => JSON.stringify({ id: `k${i % keys}`, seq: i }))
    const rejected: number[] = []
    const report = await produceLines(lines, {
      topic,
      keyField: 'id',
      brokers: brokers()!,
      batchSize: 37,
      maxInFlight: 4,
      onReject: (r) => rejected.push(r.line)
    })
    assert.deepEqual(rejected, [])
    assert.equal(report.sent, total)
    assert.equal(report.sends, Math.ceil(total / 37))

    const messages = await readTopic(topic, total)
    assert.equal(messages.length, total)
    const byKey = new Map<string, number[]>()
    for (const m of messages) {
      const list = byKey.get(m.key!) ?? []
      list.push(JSON.parse(m.value!).seq)
      byKey.set(m.key!, list)
    }
    assert.equal(byKey.size, keys)
    for (const [key, seqs] of byKey) {
      assert.deepEqual(
        seqs,
        seqs.toSorted((a, b) => a - b),
        `${key} out of order`
      )
    }
    assert.equal(new Set(messages.map((m) => JSON.parse(m.value!).seq)).size, total, 'no duplicates')
  })

  test('a batch is closed at batchBytes, so large lines do not make one oversized request', {
    timeout: 60_000
  }, async (t) => {
    const topic = uniqueName('t.produce-lib')
    await createTopics(t, [topic], 1)
    const line = JSON.stringify({ text: 'z'.repeat(300 * 1024) })
    const report = await produceLines([line, line, line, line, 'not json'], {
      topic,
      brokers: brokers()!,
      batchBytes: 700 * 1024
    })
    assert.equal(report.sent, 4)
    assert.equal(report.rejected, 1)
    assert.deepEqual(report.rejections, [{ line: 5, reason: 'not valid JSON' }])
    assert.equal(report.sends, 2, 'two lines per request')
  })
  test('a line too large for the topic is rejected with the Kafka error; the lines around it are sent', {
    timeout: 60_000
  }, async (t) => {
    const topic = uniqueName('t.produce-limit')
    await createTopics(t, [topic], 1, { 'max.message.bytes': String(16 * 1024) })
    const big = JSON.stringify({ id: 'big', text: 'z'.repeat(20 * 1024) })
    const report = await produceLines(['{"id":"a"}', big, '{"id":"b"}'], { topic, brokers: brokers()!, keyField: 'id' })
    assert.equal(report.sent, 2)
    assert.equal(report.rejected, 1)
    assert.equal(report.rejections[0]!.line, 2)
    assert.match(report.rejections[0]!.reason, /MESSAGE_TOO_LARGE \(Kafka error 10\)/)
    assert.deepEqual(
      (await readTopic(topic, 2)).map((m) => m.key),
      ['a', 'b']
    )
  })
})
