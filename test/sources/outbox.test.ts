/**
 * The outbox source and topologies/outbox-relay.ts on the real PostgreSQL and broker, run through the real runner:
 * rows published keyed by id in row order per id, bad rows to the DLQ with their row id, NOTIFY and the polling
 * fallback, and kill -9 of the relay mid-stream (nothing lost, every row published at least once).
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, type TestContext, test } from 'node:test'
import { Consumer } from '@platformatic/kafka'
import pg from 'pg'
import { REPO_ROOT } from '../../scripts/stack/config.ts'
import { resolveOutboxSourceOptions } from '../../src/sources/outbox/options.ts'
import { brokers, createTopics, NO_KAFKA, readTopic, uniqueName, waitFor } from '../helpers/kafka.ts'
import { isolatedMemoryStack, runMemoryUntilIdle } from '../helpers/legacy.ts'
import { startRunner } from '../helpers/runner.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

const databaseUrl = process.env.DATABASE_URL
const skip = !brokers() ? NO_KAFKA : !databaseUrl ? 'DATABASE_URL is not set: run `npm test`' : false
/** CI runs a few cycles; SFM_KILL_CYCLES=10 for the loop. */
const CYCLES = Number(process.env.SFM_KILL_CYCLES ?? 3)
const DDL = readFileSync(join(REPO_ROOT, 'clients', 'python', 'sfm_events', 'outbox.sql'), 'utf8')
const RELAY = 'topologies/outbox-relay.ts'

interface Setup {
  env: Record<string, string>
  table: string
  db: pg.Client
  topics: { events: string; dlq: string }
}

/** An outbox table in a schema of its own; topics under `prefix` (created here unless a memory stack made them). */
async function setup(t: TestContext, memoryStackPrefix?: string): Promise<Setup> {
  const schema = uniqueName('outbox').replace(/[^a-z0-9_]/gi, '_')
  const prefix = memoryStackPrefix ?? `${uniqueName('ob')}.`
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  await db.query(`CREATE SCHEMA "${schema}"`)
  await db.query(`SET search_path TO "${schema}"`)
  await db.query(DDL)
  const topics = { events: `${prefix}memory.events`, dlq: `${prefix}memory.dlq` }
  if (memoryStackPrefix === undefined) await createTopics(t, [topics.events, topics.dlq], 3)
  t.after(async () => {
    await db.query(`DROP SCHEMA "${schema}" CASCADE`)
    await db.end()
  })
  const env = {
    SFM_OUTBOX_URL: databaseUrl!,
    SFM_OUTBOX_TABLE: `${schema}.sfm_outbox`,
    SFM_TOPIC_PREFIX: prefix,
    KAFKA_BROKERS: brokers()!.join(',')
  }
  return { env, table: `"${schema}".sfm_outbox`, db, topics }
}

function event(seq: number, ids = 37): Record<string, unknown> {
  return {
    event_id: randomUUID(),
    id: `ns:(${seq % ids}.0,)`,
    namespace: 'ns',
    op: 'upsert',
    type: 'semantic',
    timestamp: new Date().toISOString(),
    version: seq,
    payload: { seq, text: 'x'.repeat(100) }
  }
}

/** Inserts rows in one transaction; returns their row ids. */
async function insert(db: pg.Client, table: string, rows: readonly { key: string; event: unknown }[]) {
  const result = await db.query<{ id: string }>(
    `INSERT INTO ${table} (key, event) SELECT k, e::jsonb FROM unnest($1::text[], $2::text[]) AS u(k, e) RETURNING id::text AS id`,
    [rows.map((r) => r.key), rows.map((r) => JSON.stringify(r.event))]
  )
  return result.rows.map((r) => r.id)
}

async function count(db: pg.Client, table: string): Promise<number> {
  return Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n)
}

/** Reads `topic` from the start until every id of `wanted` was seen (or the timeout); returns the ids seen. */
async function eventIdsUntil(topic: string, wanted: ReadonlySet<string>, timeoutMs: number): Promise<Set<string>> {
  const consumer = new Consumer({
    clientId: 'sfm-test-reader',
    groupId: uniqueName('reader'),
    bootstrapBrokers: brokers()!,
    autocommit: false,
    maxWaitTime: 200
  })
  const seen = new Set<string>()
  let covered = 0
  try {
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false })
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs)
      stream.on('data', (m) => {
        const id = (JSON.parse(m.value?.toString() ?? '{}') as { event_id?: string }).event_id
        if (id === undefined || seen.has(id)) return
        seen.add(id)
        if (wanted.has(id) && ++covered === wanted.size) {
          clearTimeout(timer)
          resolve()
        }
      })
    })
    await stream.close()
  } finally {
    await consumer.close(true)
  }
  return seen
}

async function runUntilIdle(env: Record<string, string>): Promise<string> {
  // 5 s: the first claim after many kills scans the index entries of deleted rows, which can take seconds on a
  // loaded machine, and --until-idle counts from the last message.
  const runner = startRunner(RELAY, env, ['--until-idle=5', '--status-interval=0'])
  const [code] = await once(runner.child, 'exit')
  assert.equal(code, 0, runner.stderr())
  return runner.stderr()
}

test('outbox source options: a missing URL or a table that is not an identifier stop at once (exit 2 cases)', () => {
  assert.throws(() => resolveOutboxSourceOptions({}, {}), /set SFM_OUTBOX_URL=postgres/)
  assert.throws(() => resolveOutboxSourceOptions({}, { SFM_OUTBOX_URL: 'mysql://x' }), /must be a postgres/)
  assert.throws(
    () => resolveOutboxSourceOptions({ table: 'a"; drop table x; --' }, { SFM_OUTBOX_URL: 'postgres://h/db' }),
    /table must be name or schema.name/
  )
  assert.throws(
    () => resolveOutboxSourceOptions({ batchSize: 0 }, { SFM_OUTBOX_URL: 'postgres://h/db' }),
    /batchSize must be a positive integer/
  )
  assert.equal(resolveOutboxSourceOptions({ table: 's.t' }, { SFM_OUTBOX_URL: 'postgres://h/db' }).tableSql, '"s"."t"')
})

describe('outbox relay on real PostgreSQL and Kafka', { skip }, () => {
  test('publishes every row keyed by id, in row order per id; bad rows go to the DLQ with their row id; the table ends empty', {
    timeout: 120_000
  }, async (t) => {
    const { env, table, db, topics } = await setup(t)
    const events = Array.from({ length: 600 }, (_, i) => event(i))
    await insert(
      db,
      table,
      events.slice(0, 300).map((e) => ({ key: e.id as string, event: e }))
    )
    const [noPayload, wrongKey] = await insert(db, table, [
      { key: 'ns:(1.0,)', event: { ...event(9999), id: 'ns:(1.0,)', payload: undefined } },
      { key: 'ns:(2.0,)', event: { ...event(9998), id: 'ns:(3.0,)' } }
    ])
    await insert(
      db,
      table,
      events.slice(300).map((e) => ({ key: e.id as string, event: e }))
    )

    const log = await runUntilIdle(env)
    assert.equal(await count(db, table), 0, `every row deleted after its event was published\n${log}`)

    const published = await readTopic(topics.events, events.length, 60_000)
    assert.equal(published.length, events.length)
    const seqsById = new Map<string, number[]>()
    for (const m of published) {
      const value = JSON.parse(m.value!) as { id: string; payload: { seq: number } }
      assert.equal(m.key, value.id, 'keyed by the memory id')
      seqsById.set(value.id, [...(seqsById.get(value.id) ?? []), value.payload.seq])
    }
    for (const [id, seqs] of seqsById) {
      assert.deepEqual(
        seqs,
        [...seqs].sort((a, b) => a - b),
        `${id}: published in row order`
      )
    }
    assert.equal(new Set(published.map((m) => JSON.parse(m.value!).event_id)).size, events.length)

    const letters = await readTopic(topics.dlq, 2, 30_000)
    const byRow = new Map(letters.map((m) => [m.headers.get('sfm.outbox.id'), m]))
    assert.deepEqual([...byRow.keys()].sort(), [noPayload, wrongKey].sort())
    assert.match(byRow.get(noPayload)!.headers.get('sfm.dlq.error.message') ?? '', /payload/)
    assert.equal(byRow.get(wrongKey)!.headers.get('sfm.dlq.stage'), 'outbox-key')
  })

  test('wakes on NOTIFY (polling every minute) and, without notifications, finds rows by polling', {
    timeout: 120_000
  }, async (t) => {
    const { env, table, db, topics } = await setup(t)
    for (const [extra, label] of [
      [{ SFM_OUTBOX_POLL_MS: '60000' }, 'notify'],
      [{ SFM_OUTBOX_POLL_MS: '200', SFM_OUTBOX_CHANNEL: 'nobody_listens_here' }, 'poll']
    ] as const) {
      const runner = startRunner(RELAY, { ...env, ...extra })
      await waitFor(() => /assigned 1 partition/.test(runner.stderr()), 60_000, 'the relay to start')
      await new Promise((r) => setTimeout(r, 300))
      const e = event(label === 'notify' ? 1 : 2)
      await insert(db, table, [{ key: e.id as string, event: e }])
      await waitFor(async () => (await count(db, table)) === 0, 30_000, `the ${label} row to be published`)
      const exited = once(runner.child, 'exit')
      runner.child.kill('SIGTERM')
      assert.equal((await exited)[0], 0, runner.stderr())
    }
    const published = await readTopic(topics.events, 2, 30_000)
    assert.equal(published.length, 2)
  })

  test(`kill -9 of the relay mid-stream ${CYCLES}×: nothing lost, every row published at least once, memories equals the fold`, {
    timeout: 600_000
  }, async (t) => {
    const stack = await isolatedMemoryStack(t, 3)
    const { env, table, db, topics } = await setup(t, stack.prefix)
    const writer = new pg.Client({ connectionString: databaseUrl })
    await writer.connect()
    const sent: string[] = []
    let writing = true
    let seq = 0
    const writing$ = (async () => {
      while (writing) {
        const batch = Array.from({ length: 200 }, () => event(seq++, 101))
        await insert(
          writer,
          table,
          batch.map((e) => ({ key: e.id as string, event: e }))
        )
        for (const e of batch) sent.push(e.event_id as string)
        await new Promise((r) => setTimeout(r, 10))
      }
    })()
    let killedWithRowsLeft = 0
    try {
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const runner = startRunner(RELAY, env, ['--status-interval=0'])
        await waitFor(() => /assigned 1 partition/.test(runner.stderr()), 60_000, 'the relay to start')
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 1200))
        const exited = once(runner.child, 'exit')
        runner.child.kill('SIGKILL')
        assert.equal((await exited)[1], 'SIGKILL')
        if ((await count(db, table)) > 0) killedWithRowsLeft++
      }
    } finally {
      writing = false
      await writing$
      await writer.end()
    }
    assert.ok(killedWithRowsLeft > 0, 'at least one kill left rows in the outbox')
    const log = await runUntilIdle(env)
    assert.equal(await count(db, table), 0, log)
    // Kills publish some rows twice: read until every event id was seen, not until a count.
    const seen = await eventIdsUntil(topics.events, new Set(sent), 180_000)
    const missing = sent.filter((id) => !seen.has(id))
    assert.deepEqual(missing.slice(0, 5), [], `${missing.length} of ${sent.length} rows never published`)
    t.diagnostic(`${sent.length} rows written during ${CYCLES} kills, all published`)

    // The memory topology over what the relay published: the table equals the fold (per id, the highest version).
    const result = await runMemoryUntilIdle()
    assert.equal(result.deadLettered, 0)
    const fold = new Map<string, number>()
    for (let i = 0; i < seq; i++) fold.set(`ns:(${i % 101}.0,)`, i)
    const rows = await readMemories(stack.pool, `"${stack.table}"`)
    assert.equal(rows.size, fold.size)
    for (const [id, version] of fold) {
      const row = rows.get(id)
      assert.ok(row, `a row for ${id}`)
      assert.equal(row.version, version, `${id}: the highest version`)
      assert.equal((row.payload as { seq: number }).seq, version)
    }
    assert.equal((await readTopic(topics.dlq, 0, 0)).length, 0)
  })
})
