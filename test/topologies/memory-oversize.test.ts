/**
 * The memory topology when what it produces reaches the topics' record-size limit (issue 15, item 1): full KV
 * batches of large memories, whose memory.latest records together are several times `max.message.bytes`, and one
 * memory whose record is over the limit on its own. Real broker and PostgreSQL; skipped without them.
 */
import assert from 'node:assert/strict'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import pg from 'pg'
import { DeadLetterHeaders } from '../../src/streams/dead-letter.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { memoryTopology } from '../../topologies/memory.ts'
import { brokers, createTopics, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'

const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`

/** The limit `npm run topics -- apply` gives the memory topics. */
const TOPIC_LIMIT = 2 * 1024 * 1024

/** Prefixed one-partition memory topics (memory.latest with its own limit), a table and a group of this test. */
async function isolated(t: TestContext, latestLimit: number, env: Record<string, string>) {
  const prefix = `${uniqueName('mo')}.`
  const table = `mem_${randomBytes(5).toString('hex')}`
  const topic = (name: string) => prefix + name
  await createTopics(t, [topic('memory.events'), topic('memory.audit'), topic('memory.dlq')], 1, {
    'max.message.bytes': String(TOPIC_LIMIT)
  })
  await createTopics(t, [topic('memory.latest')], 1, { 'max.message.bytes': String(latestLimit) })
  const saved = { ...process.env }
  const dataDir = await mkdtemp(join(tmpdir(), 'sfm-memory-oversize-'))
  Object.assign(process.env, {
    SFM_DATA_DIR: dataDir,
    SFM_TOPIC_PREFIX: prefix,
    SFM_MEMORY_TABLE: table,
    SFM_MEMORY_GROUP: uniqueName('memory'),
    SFM_VECTORS: 'off',
    ...env
  })
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 })
  t.after(async () => {
    process.env = saved
    await pool
      .query(`DROP TABLE IF EXISTS "${table}", "${table}_events_processed", schema_migrations_${table} CASCADE`)
      .catch(() => {})
    await pool.end()
    await rm(dataDir, { recursive: true, force: true })
  })
  return { table, pool, topic }
}

function memory(id: string, text: string) {
  return {
    event_id: randomUUID(),
    id,
    namespace: 'ns',
    type: 'episodic',
    version: 1,
    timestamp: '2026-12-01T00:00:00Z',
    payload: { text }
  }
}

async function run() {
  let largestKvBatch = 0
  const summary = await new Runtime(await memoryTopology(), {
    untilIdleMs: 2_000,
    observer: {
      batchWritten(branch, count) {
        if (branch === 'kv') largestKvBatch = Math.max(largestKvBatch, count)
      }
    }
  }).run()
  return { summary, largestKvBatch }
}

describe('memory topology: records at the topics’ size limit', { skip }, () => {
  test('full batches of 1.6 KB memories (limits flush, 3 s wait) end with every row and memory.latest record', {
    timeout: 240_000
  }, async (t) => {
    const count = 5_000
    const stack = await isolated(t, TOPIC_LIMIT, {
      SFM_KV_BATCH_FLUSH: 'limits',
      SFM_KV_BATCH_WAIT_MS: '3000',
      SFM_KV_BATCH: String(count)
    })
    const events = Array.from({ length: count }, (_, i) =>
      memory(`big-${i}`, `${i} ${randomBytes(800).toString('hex')}`)
    )
    await produce(events.map((e) => ({ topic: stack.topic('memory.events'), key: e.id, value: JSON.stringify(e) })))
    const { summary, largestKvBatch } = await run()
    // The batches were full: one batch's memory.latest records alone were over the topic's limit.
    const latestBytesPerRecord = 1_700
    t.diagnostic(`largest KV batch ${largestKvBatch} events, ~${(largestKvBatch * latestBytesPerRecord) >> 20} MiB`)
    assert.ok(largestKvBatch * latestBytesPerRecord > 2 * TOPIC_LIMIT, `largest KV batch only ${largestKvBatch}`)
    assert.equal(summary.deadLettered, 0)
    assert.equal(summary.done, count)

    const { rows } = await stack.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${stack.table}"`)
    assert.equal(Number(rows[0]!.n), count)
    const latest = await readTopic(stack.topic('memory.latest'), count, 60_000)
    assert.equal(new Set(latest.map((m) => m.key)).size, count)
    for (const m of latest.slice(0, 50)) {
      const state = JSON.parse(m.value!) as { id: string; payload: { text: string } }
      assert.equal(state.id, m.key)
      assert.equal(state.payload.text, events[Number(m.key!.slice(4))]!.payload.text)
    }
    assert.equal((await readTopic(stack.topic('memory.audit'), count, 60_000)).length, count)
    assert.equal((await readTopic(stack.topic('memory.dlq'), 1, 2_000)).length, 0)
  })

  test('a memory whose memory.latest record is over the limit goes to memory.dlq with the reason; the partition moves on', {
    timeout: 120_000
  }, async (t) => {
    const latestLimit = 64 * 1024
    const stack = await isolated(t, latestLimit, {})
    const before = Array.from({ length: 20 }, (_, i) => memory(`m-${i}`, `before ${i}`))
    const huge = memory('huge', 'h'.repeat(latestLimit + 1_000))
    const after = Array.from({ length: 20 }, (_, i) => memory(`n-${i}`, `after ${i}`))
    const events = [...before, huge, ...after]
    await produce(events.map((e) => ({ topic: stack.topic('memory.events'), key: e.id, value: JSON.stringify(e) })))
    const { summary } = await run()
    assert.equal(summary.deadLettered, 1)
    assert.equal(summary.done, events.length)
    // Everything after it was done and committed: the run only goes idle once all offsets are committed.
    assert.equal(summary.committedOffsets.get(`${stack.topic('memory.events')}:0`), BigInt(events.length))

    const dlq = await readTopic(stack.topic('memory.dlq'), 1, 10_000)
    assert.equal(dlq.length, 1)
    assert.equal(dlq[0]!.key, 'huge')
    assert.equal(JSON.parse(dlq[0]!.value!).event_id, huge.event_id)
    assert.match(dlq[0]!.headers.get(DeadLetterHeaders.ERROR_MESSAGE)!, /MESSAGE_TOO_LARGE \(Kafka error 10\)/)
    assert.match(dlq[0]!.headers.get(DeadLetterHeaders.ERROR_MESSAGE)!, /max\.message\.bytes 65536/)
    assert.equal(dlq[0]!.headers.get(DeadLetterHeaders.ERROR_KIND), 'poison')

    const latest = await readTopic(stack.topic('memory.latest'), 40, 20_000)
    assert.deepEqual(new Set(latest.map((m) => m.key)), new Set([...before, ...after].map((e) => e.id)))
    const { rows } = await stack.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "${stack.table}"`)
    assert.equal(Number(rows[0]!.n), events.length)
  })
})
