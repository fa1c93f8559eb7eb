/**
 * Benchmark `outbox`: the transactional outbox relay (topologies/outbox-relay.ts, run by the real runner as a child
 * process) on the dev stack's PostgreSQL and Kafka.
 *
 * 1. Throughput: `--rows` outbox rows written up front, then the relay started; rows/s from its first claim to the
 *    table being empty (every row published and deleted).
 * 2. Latency: the relay running idle, then `--rate` app transactions per second for `--seconds`, each inserting one
 *    row and committing. The topic stamps each record with the broker's append time (LogAppendTime), so the latency
 *    is that time − the app's commit returning: commit → event on Kafka, what the goal is about. A consumer reads the
 *    records back; arrival − commit (the consumer's fetch wait included, an upper bound) is reported beside it.
 *
 * `ratio` is rows/s ÷ the goal (20,000 rows/s).
 */
import { spawn } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Admin, Consumer } from '@platformatic/kafka'
import pg from 'pg'
import { parseBrokers } from '../src/sources/kafka/options.ts'
import { parseBenchArgs } from './lib/args.ts'
import { type BenchResult, progress, round } from './lib/benchmark.ts'

const BENCH = 'outbox'
const GOAL_ROWS_PER_S = 20_000

export const description = 'outbox relay: rows/s to Kafka, commit → Kafka latency p50/p99 at a steady write rate'
export const requires = ['KAFKA_BROKERS', 'DATABASE_URL'] as const

export const usage = `Usage: npm run bench -- outbox [options]

Runs topologies/outbox-relay.ts on a fresh outbox table (a schema of its own in DATABASE_URL) and fresh topics.

Options:
  --rows N       rows written up front for the throughput pass (default 200000)
  --rate R       app transactions per second in the latency pass (default 1000)
  --seconds S    length of the latency pass (default 15)
  --partitions P partitions of memory.events (default 3)
  -h, --help     show this help

Last stdout line:
  {"bench":"outbox","rows":N,"rows_per_s":…,"rate":R,"events":…,"latency_p50_ms":…,"latency_p99_ms":…,"latency_max_ms":…,"ratio":…}
`

const REPO_ROOT = join(import.meta.dirname, '..')
const DDL = readFileSync(join(REPO_ROOT, 'clients', 'python', 'sfm_events', 'outbox.sql'), 'utf8')

const now = (): number => performance.timeOrigin + performance.now()

function eventSql(table: string): string {
  return `INSERT INTO ${table} (key, event)
    SELECT 'bench:(' || i || '.0,)', jsonb_build_object(
      'event_id', gen_random_uuid(), 'id', 'bench:(' || i || '.0,)', 'namespace', 'bench', 'op', 'upsert',
      'type', 'episodic', 'timestamp', '2026-12-01T00:00:00.000Z', 'version', i,
      'payload', jsonb_build_object('text', 'memory number ' || i || ' about the cache and what Ada said',
                                    'memory_type', 'episodic', 'coordinate', jsonb_build_array(i, 1.5)))
    FROM generate_series($1::int, $2::int) AS i`
}

function startRelay(env: Record<string, string>) {
  const child = spawn(
    process.execPath,
    ['--max-semi-space-size=128', 'src/cli/start.ts', 'topologies/outbox-relay.ts', '--status-interval=0'],
    { cwd: REPO_ROOT, env: { ...process.env, LOG_LEVEL: 'info', ...env }, stdio: ['ignore', 'ignore', 'pipe'] }
  )
  let log = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => {
    log += chunk
  })
  return { child, log: () => log }
}

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`bench ${BENCH}: timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN
}

export async function run(args: string[]): Promise<BenchResult> {
  const a = parseBenchArgs(BENCH, args, ['rows', 'rate', 'seconds', 'partitions'])
  const rows = a.int('rows', 200_000, 1, 10_000_000)
  const rate = a.int('rate', 1000, 1, 100_000)
  const seconds = a.int('seconds', 15, 1, 3600)
  const partitions = a.int('partitions', 3, 1, 64)
  const databaseUrl = process.env.DATABASE_URL!
  const brokers = parseBrokers(process.env.KAFKA_BROKERS)
  const suffix = randomBytes(4).toString('hex')
  const schema = `bench_outbox_${suffix}`
  const table = `"${schema}".sfm_outbox`
  const prefix = `bench-outbox-${suffix}.`
  const topic = `${prefix}memory.events`
  const db = new pg.Client({ connectionString: databaseUrl })
  await db.connect()
  const admin = new Admin({ clientId: 'sfm-bench-admin', bootstrapBrokers: brokers })
  const env = { SFM_OUTBOX_URL: databaseUrl, SFM_OUTBOX_TABLE: `${schema}.sfm_outbox`, SFM_TOPIC_PREFIX: prefix }
  const count = async () => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n)
  let relay: ReturnType<typeof startRelay> | undefined
  try {
    await db.query(`CREATE SCHEMA "${schema}"`)
    await db.query(`SET search_path TO "${schema}"`)
    await db.query(DDL)
    await admin.createTopics({ topics: [`${prefix}memory.dlq`], partitions, replicas: 1 })
    await admin.createTopics({
      topics: [topic],
      partitions,
      replicas: 1,
      // The broker's clock stamps each record as it appends it: "on Kafka" is measured at the broker.
      configs: [{ name: 'message.timestamp.type', value: 'LogAppendTime' }]
    })

    // 1. Throughput over a backlog.
    progress(BENCH, `writing ${rows} outbox rows`)
    for (let from = 1; from <= rows; from += 50_000) {
      await db.query(eventSql(table), [from, Math.min(rows, from + 49_999)])
    }
    await db.query(`VACUUM ANALYZE ${table}`)
    relay = startRelay(env)
    const started = relay
    await until(() => /assigned 1 partition/.test(started.log()), 60_000, 'the relay to start')
    const t0 = now()
    await until(async () => (await count()) === 0, 600_000, 'the relay to empty the outbox')
    const rowsPerS = rows / ((now() - t0) / 1000)
    progress(BENCH, `throughput: ${rows} rows in ${round((now() - t0) / 1000, 2)} s = ${round(rowsPerS)} rows/s`)

    // 2. Latency at a steady rate: one row per app transaction.
    const commits = new Map<string, number>()
    const arrivals = new Map<string, number>()
    const appended = new Map<string, number>()
    const consumer = new Consumer({
      clientId: 'sfm-bench-outbox',
      groupId: `bench-outbox-${suffix}`,
      bootstrapBrokers: brokers,
      autocommit: false,
      maxWaitTime: 5
    })
    const stream = await consumer.consume({ topics: [topic], mode: 'latest', autocommit: false })
    stream.on('data', (m) => {
      const value = m.value?.toString() ?? ''
      const at = value.indexOf('"event_id":"')
      if (at < 0) return
      const eventId = value.slice(at + 12, at + 48)
      arrivals.set(eventId, now())
      appended.set(eventId, Number(m.timestamp))
    })
    await new Promise((r) => setTimeout(r, 2000))
    // The app: 4 connections, one INSERT (its own transaction) per write.
    const writers = new pg.Pool({ connectionString: databaseUrl, max: 4 })
    const total = rate * seconds
    progress(BENCH, `latency: ${total} transactions at ${rate}/s`)
    const begin = now()
    const pending: Promise<unknown>[] = []
    for (let i = 0; i < total; i++) {
      const due = begin + (i * 1000) / rate
      const wait = due - now()
      if (wait > 1) await new Promise((r) => setTimeout(r, wait))
      const eventId = randomUUID()
      const event = {
        event_id: eventId,
        id: `lat:(${i % 500}.0,)`,
        namespace: 'lat',
        op: 'upsert',
        type: 'episodic',
        timestamp: new Date().toISOString(),
        version: i,
        payload: { text: `memory ${i}`, memory_type: 'episodic' }
      }
      pending.push(
        writers
          .query(`INSERT INTO ${table} (key, event) VALUES ($1, $2::jsonb)`, [event.id, JSON.stringify(event)])
          .then(() => commits.set(eventId, now()))
      )
      if (pending.length >= 256) await Promise.all(pending.splice(0))
    }
    await Promise.all(pending)
    const achieved = total / ((now() - begin) / 1000)
    await until(() => arrivals.size >= total, 120_000, 'every event on Kafka')
    await stream.close()
    await consumer.close(true)
    await writers.end()
    const sorted = (of: Map<string, number>, offset: number) =>
      [...commits].map(([id, at]) => (of.get(id) ?? Number.NaN) - (at + offset)).sort((x, y) => x - y)
    // The broker stamps with its wall clock; `now()` is monotonic from the process start (the two differ by a
    // constant over a run, read once here, to within a millisecond).
    const latencies = sorted(appended, Date.now() - now())
    const fetched = sorted(arrivals, 0)
    const p50 = percentile(latencies, 50)
    const p99 = percentile(latencies, 99)
    progress(
      BENCH,
      `latency: achieved ${round(achieved)} tx/s; commit → appended on Kafka p50 ${round(p50, 1)} ms, p99 ${round(p99, 1)} ms; ` +
        `commit → fetched by a consumer p50 ${round(percentile(fetched, 50), 1)} ms, p99 ${round(percentile(fetched, 99), 1)} ms`
    )
    return {
      bench: BENCH,
      rows,
      rows_per_s: round(rowsPerS),
      rate,
      achieved_rate: round(achieved),
      events: total,
      latency_p50_ms: round(p50, 1),
      latency_p99_ms: round(p99, 1),
      latency_max_ms: round(latencies.at(-1) ?? Number.NaN, 1),
      fetched_p50_ms: round(percentile(fetched, 50), 1),
      fetched_p99_ms: round(percentile(fetched, 99), 1),
      ratio: round(rowsPerS / GOAL_ROWS_PER_S, 2)
    }
  } finally {
    if (relay && relay.child.exitCode === null) {
      const exited = once(relay.child, 'exit')
      relay.child.kill('SIGTERM')
      await exited
    }
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {})
    await db.end()
    await admin.deleteTopics({ topics: [topic, `${prefix}memory.dlq`] }).catch(() => {})
    await admin.close()
  }
}
