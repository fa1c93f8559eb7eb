/**
 * Benchmark `backfill`: legacy `kv_store` rows read and produced per second by `backfill` (src/memory/legacy/backfill.ts)
 * into a Kafka topic with the project's idempotent acks=all producer, as `npm run backfill` does.
 *
 * A legacy store is generated in a schema of its own on DATABASE_URL (memory rows `bench:(x, y, z):data` with values
 * of ~350 bytes in the legacy shape, plus `:meta` rows, one per `--meta-every` memories), then:
 * 1. a dry run (read and classify only: the reading side alone);
 * 2. the backfill into a fresh topic of `--partitions` partitions (read + produce, acknowledged);
 * 3. baseline: the producer alone sending as many events of the same size, already built, in the same requests
 *    (2,000 records or 1 MiB, 8 in flight) to a second fresh topic: what this broker and machine take right now.
 * `ratio` = rows/s of (2) ÷ the goal, 50,000 rows/s; `vs_produce_only` = events/s of (2) ÷ (3). The schema and the
 * topics are removed afterwards.
 */
import { randomBytes } from 'node:crypto'
import { loadavg } from 'node:os'
import { Admin } from '@platformatic/kafka'
import pg from 'pg'
import { waitForLeaders } from '../src/kafka/topics.ts'
import { backfill } from '../src/memory/legacy/backfill.ts'
import { openLegacyStore } from '../src/memory/legacy/store.ts'
import { createProducer, type OutgoingMessage } from '../src/sinks/kafka/index.ts'
import { parseBrokers } from '../src/sources/kafka/index.ts'
import { parseBenchArgs } from './lib/args.ts'
import { type BenchResult, progress, Requirements, round } from './lib/benchmark.ts'

const BENCH = 'backfill'
const GOAL_ROWS_PER_S = 50_000

export const description = 'backfill: legacy kv_store rows read and produced to Kafka per second (goal 50,000/s)'
export const requires = [Requirements.KAFKA, Requirements.POSTGRES] as const

export const usage = `Usage: npm run bench -- backfill [options]

Generates a legacy SomaFractalMemory kv_store (memory rows of ~350 bytes plus :meta rows) in a schema of its own
on DATABASE_URL, then runs the backfill's dry run (read only) and the backfill into a fresh Kafka topic.

Options:
  --rows N          memory rows (default 500000)
  --meta-every K    one :meta row per K memory rows (default 4)
  --partitions P    partitions of the target topic (default 6)
  --page-size N     rows per read (default 10000)
  -h, --help        show this help

Last stdout line:
  {"bench":"backfill","rows":…,"dry_run_rows_per_s":…,"rows_per_s":…,"cpu_us_per_row":…,"events_per_s":…,
   "produce_only_events_per_s":…,"vs_produce_only":…,"goal_rows_per_s":50000,"ratio":…}
CPU time is this process's (user + system) over the phase, per legacy row: it moves much less with the machine's
load than the rates do.
`

function withSearchPath(url: string, schema: string): string {
  const u = new URL(url)
  u.searchParams.set('options', `-c search_path=${schema}`)
  return u.toString()
}

const cpuMicros = (usage: NodeJS.CpuUsage): number => usage.user + usage.system

/** The producer alone: `count` prebuilt events of `bytes` each, 2,000 a request, 8 requests in flight. */
async function produceOnly(brokers: string[], topic: string, count: number, bytes: number): Promise<number> {
  const producer = createProducer({ brokers, clientId: 'sfm-bench-backfill-baseline' })
  const filler = 'x'.repeat(Math.max(0, bytes - 60))
  try {
    const started = performance.now()
    const inFlight = new Set<Promise<void>>()
    for (let from = 0; from < count; from += 2_000) {
      const batch: OutgoingMessage[] = []
      for (let i = from; i < Math.min(count, from + 2_000); i++) {
        const key = `bench:(${i}.0, ${i % 1000}.0, 1.5)`
        batch.push({
          topic,
          key: Buffer.from(key),
          value: Buffer.from(`{"id":${JSON.stringify(key)},"payload":"${filler}"}`)
        })
      }
      while (inFlight.size >= 8) await Promise.race(inFlight)
      const request: Promise<void> = producer.send(batch).then(() => {
        inFlight.delete(request)
      })
      inFlight.add(request)
    }
    await Promise.all(inFlight)
    return count / ((performance.now() - started) / 1000)
  } finally {
    await producer.close()
  }
}

export async function run(args: string[]): Promise<BenchResult> {
  const a = parseBenchArgs(BENCH, args, ['rows', 'meta-every', 'partitions', 'page-size'])
  const memories = a.int('rows', 500_000, 1, 50_000_000)
  const metaEvery = a.int('meta-every', 4, 1, 1_000_000)
  const partitions = a.int('partitions', 6, 1, 64)
  const pageSize = a.int('page-size', 10_000, 1, 1_000_000)
  const databaseUrl = process.env.DATABASE_URL!
  const brokers = parseBrokers(process.env.KAFKA_BROKERS)
  const suffix = randomBytes(4).toString('hex')
  const schema = `bench_backfill_${suffix}`
  const topic = `bench-backfill-${suffix}.memory.events`
  const baselineTopic = `bench-backfill-${suffix}.baseline`
  const setup = new pg.Client({ connectionString: databaseUrl })
  await setup.connect()
  const admin = new Admin({ clientId: 'sfm-bench-admin', bootstrapBrokers: brokers })
  try {
    progress(BENCH, `generating ${memories} memory rows (+ ${Math.floor(memories / metaEvery)} meta) in ${schema}`)
    await setup.query(`CREATE SCHEMA "${schema}"`)
    await setup.query(`CREATE TABLE "${schema}".kv_store (key TEXT PRIMARY KEY, value JSONB NOT NULL)`)
    // Coordinates (i/7, i mod 1000, -i/3) as Python would key them; the exact repr does not matter for speed.
    await setup.query(
      `INSERT INTO "${schema}".kv_store (key, value)
       SELECT 'bench:(' || (i / 7.0)::float8 || ', ' || (i % 1000)::float8 || '.0, ' || (-i / 3.0)::float8 || '):data',
              jsonb_build_object(
                'text', 'memory number ' || i || ' about the cache, the queue and what Ada said on Tuesday',
                'task', 'bench', 'memory_type', CASE WHEN i % 3 = 0 THEN 'semantic' ELSE 'episodic' END,
                'coordinate', jsonb_build_array((i / 7.0)::float8, (i % 1000)::float8, (-i / 3.0)::float8),
                'timestamp', 1760000000.0 + i / 1000.0, 'importance_norm', (i % 97) / 97.0,
                'importance', i % 10, 'access_count', i % 13,
                'links', jsonb_build_array(jsonb_build_object('to', jsonb_build_array(1.0, 2.0), 'type', 'related',
                                                              'timestamp', 1760000000.5)))
       FROM generate_series(1, $1::int) AS i`,
      [memories]
    )
    await setup.query(
      `INSERT INTO "${schema}".kv_store (key, value)
       SELECT left(key, -5) || ':meta', jsonb_build_object('creation_timestamp', 1760000000.0)
       FROM "${schema}".kv_store WHERE right(key, 5) = ':data' AND (hashtext(key) % $1::int) = 0`,
      [metaEvery]
    )
    await setup.query(`VACUUM ANALYZE "${schema}".kv_store`)
    await admin.createTopics({ topics: [topic, baselineTopic], partitions, replicas: 1 })
    await waitForLeaders(admin, [topic, baselineTopic])

    const legacy = await openLegacyStore(withSearchPath(databaseUrl, schema))
    try {
      progress(BENCH, 'dry run (read and classify only)')
      const dryCpu = process.cpuUsage()
      const dry = await backfill({ legacy, topic, dryRun: true, pageSize })
      const dryCpuUs = cpuMicros(process.cpuUsage(dryCpu))
      progress(BENCH, `dry run: ${dry.read} rows in ${round(dry.seconds, 2)} s = ${dry.rate} rows/s`)
      const producer = createProducer({ brokers, clientId: 'sfm-bench-backfill' })
      const load = loadavg()[0]!
      let full: Awaited<ReturnType<typeof backfill>>
      let fullCpuUs = 0
      try {
        progress(BENCH, `backfill into ${topic} (${partitions} partitions)`)
        const cpu = process.cpuUsage()
        full = await backfill({ legacy, topic, producer, pageSize })
        fullCpuUs = cpuMicros(process.cpuUsage(cpu))
      } finally {
        await producer.close()
      }
      progress(
        BENCH,
        `backfill: ${full.read} rows (${full.produced} memories) in ${round(full.seconds, 2)} s = ${full.rate} rows/s, load ${round(load, 2)}`
      )
      const eventBytes = (
        await legacy.query<{ n: string }>(
          `SELECT avg(octet_length(value::text))::int + 220 AS n FROM kv_store WHERE right(key, 5) = ':data'`
        )
      ).rows[0]!.n
      const baseline = await produceOnly(brokers, baselineTopic, full.produced, Number(eventBytes))
      progress(
        BENCH,
        `baseline, the producer alone: ${full.produced} events of ~${eventBytes} bytes = ${Math.round(baseline)} events/s`
      )
      const rate = full.read / full.seconds
      return {
        bench: BENCH,
        rows: full.read,
        memories: full.produced,
        partitions,
        page_size: pageSize,
        dry_run_rows_per_s: dry.rate,
        rows_per_s: Math.round(rate),
        dry_run_cpu_us_per_row: round(dryCpuUs / dry.read, 2),
        cpu_us_per_row: round(fullCpuUs / full.read, 2),
        events_per_s: Math.round(full.produced / full.seconds),
        seconds: round(full.seconds, 2),
        load_average: round(load, 2),
        produce_only_events_per_s: Math.round(baseline),
        vs_produce_only: round(full.produced / full.seconds / baseline, 3),
        goal_rows_per_s: GOAL_ROWS_PER_S,
        ratio: round(rate / GOAL_ROWS_PER_S, 3)
      }
    } finally {
      await legacy.end()
    }
  } finally {
    await admin.deleteTopics({ topics: [topic, baselineTopic] }).catch(() => {})
    await admin.close().catch(() => {})
    await setup.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {})
    await setup.end()
  }
}
