/**
 * Benchmark `embedded`: the memory topology (topologies/memory.ts) on the embedded stack — no Kafka, no PostgreSQL
 * server, no vector service: the embedded log (SQLite, src/log) as the source and as the target of memory.latest,
 * memory.audit and the DLQ, the memories table in PGlite, and the vector index in a PGlite of its own on a worker
 * thread (src/sinks/pgvector/threaded.ts), the lexical embedder on another. See docs/BENCHMARKS.md.
 *
 * Input: the demo's event history (src/demo/events.ts: creates, updates, deletes, ~7% redeliveries, ~2% invalid),
 * each upsert's text grown to a ~1 KB event, appended once to `memory.events` of a fresh log in a temporary folder
 * with the embedded producer (as `--demo N` feeds it); its first V events (default all) also to
 * `vectors.memory.events` (the vector side's topics have the prefix `vectors.`, SFM_TOPIC_PREFIX).
 *
 * - kv:      `memoryTopology()` with SFM_VECTORS=off: KV (PGlite) + memory.latest + memory.audit (embedded log).
 * - vectors: `memoryTopology()` itself on the V events: the same plus the vector branch as the runner builds it
 *            (lexical embedder on its thread, pgvector in its own PGlite on its thread, exact search).
 * - upsert:  the ceiling of the KV side: the same rows through one bare `INSERT … SELECT FROM unnest(…) ON CONFLICT
 *            DO UPDATE … WHERE <fence>` per batch of 2,000 (one row per id per batch), straight into PGlite: no log,
 *            no decoding, no processed event ids, no memory.latest / memory.audit. The parameters are built
 *            beforehand as the sink builds them (binary arrays, the payloads as jsonb[]): what is timed is
 *            PGlite's own work, through the same pool adapter as the sink.
 * - naive:   one such upsert per event (the old per-message worker's way), on the first --naive-events events.
 * - index:   diagnostic for the vector side: the final state's vectors (embedded beforehand) written with the
 *            pgvector store (batches of 512, HNSW maintained on insert: SFM_VECTOR_INDEX=hnsw) into an empty table,
 *            on this thread: what HNSW costs in PGlite.
 *
 * kv and vectors are timed from the first message consumed to the N-th done (every branch acked, or dead-lettered),
 * and the tables are then checked against `fold` of the history (rows, live vectors, dead letters). Every side
 * reports this process's CPU time per event, which moves much less with the neighbours' load than wall time, and the
 * main thread's share of it: the memories' PGlite (WebAssembly), SQLite and the pipeline all run on that thread, so
 * it bounds the throughput (the vector side's embedder and vector index run on worker threads: in the process's
 * figure, not the main thread's). Each side runs on its own tables and consumer group in the same data folder.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { PGlite } from '@electric-sql/pglite'
import { type DemoHistory, demoHistory } from '../src/demo/events.ts'
import { LexicalEmbedder } from '../src/embedders/lexical.ts'
import { ErrorCodes, FatalError } from '../src/errors.ts'
import { createLogger, type LogLevel } from '../src/logger.ts'
import type { MemoryEvent } from '../src/memory/event.ts'
import { fold } from '../src/memory/fold.ts'
import { migrate, tableNames } from '../src/memory/memories.ts'
import { type PreparedEvent, prepareEvent } from '../src/memory/prepare.ts'
import { embeddingText } from '../src/memory/vectors/text.ts'
import { acquirePglite } from '../src/pglite/shared.ts'
import {
  boolArrayBinary,
  float8ArrayBinary,
  int8ArrayBinary,
  jsonbArrayBinary,
  textArrayBinary,
  timestamptzArrayBinary,
  uuidArrayBinary
} from '../src/postgres/binary-array.ts'
import { quoteQualified } from '../src/postgres/identifiers.ts'
import { createProducer } from '../src/sinks/kafka/index.ts'
import { sharedPgliteDatabase } from '../src/sinks/pgvector/database.ts'
import { embeddedPgvectorStoreOptions, PgvectorIndexes, PgvectorStore } from '../src/sinks/pgvector/store.ts'
import { ThreadedPgvectorStore } from '../src/sinks/pgvector/threaded.ts'
import { textArray } from '../src/sinks/postgres/array-literal.ts'
import { pglitePool } from '../src/sinks/postgres/pglite-pool.ts'
import type { VectorSink } from '../src/sinks/vector/sink.ts'
import { compareFence } from '../src/streams/fence.ts'
import { Runtime } from '../src/streams/runtime.ts'
import { memoryTopology } from '../topologies/memory.ts'
import { parseBenchArgs } from './lib/args.ts'
import { type BenchResult, progress, round } from './lib/benchmark.ts'
import { withEnv } from './lib/scoped.ts'

const BENCH = 'embedded'

export const description = 'memory topology on the embedded stack (log + PGlite + pgvector) vs bare PGlite upserts'
export const requires = [] as const

export const usage = `Usage: npm run bench -- embedded [options]

Appends N demo memory events (~1 KB; creates, updates, deletes, some redeliveries and invalid ones) to a fresh
embedded log in a temporary folder (and the first V of them to topics of their own for the vector side), then runs
topologies/memory.ts on the embedded stack (no servers: KAFKA_BROKERS,
DATABASE_URL, QDRANT_URL and VECTOR_DATABASE_URL are ignored) and compares it with bare PGlite upserts of the same
rows. Everything runs in this process (the memories' PGlite is WebAssembly on the main thread; the vector index's
PGlite and the embedder have a worker thread each).

Sides:
  kv       the memory topology without vectors (SFM_VECTORS=off): KV in PGlite + memory.latest + memory.audit
  vectors  the whole memory topology on V events: kv plus the vector branch (lexical embedder on a worker thread,
           pgvector in its own PGlite on another, exact search: the embedded defaults)
  upsert   the ceiling: one bare UNNEST upsert (fenced) per 2,000 events into PGlite, parameters built beforehand
  naive    one upsert per event (first --naive-events events)
  index    diagnostic: the live vectors after V events (embedded beforehand) into an empty pgvector table with an
           HNSW index (SFM_VECTOR_INDEX=hnsw), 512 a statement: what HNSW costs in PGlite (vectors/s, not events/s)

Options:
  --events N          events of the kv, upsert and naive sides (default 50000)
  --naive-events M    events of the naive side (default min(N, 3000))
  --vector-events V   events of the vectors and index sides: the first V of the same history, on topics of their
                      own (default N; the index side is ~20x slower than the others)
  --rounds R          rounds, alternating the order of the sides; best of each kept (default 1)
  --event-bytes B     size of an upsert event's JSON (default 1024)
  --only LIST         comma list of kv,vectors,upsert,naive,index (default: all)
  -h, --help          show this help

Each side prints wall time, events/s and CPU µs per event: of the whole process (Node, PGlite and SQLite, the worker
threads, V8's GC and WebAssembly compiler threads), and of the main thread alone, which bounds throughput: the
memories' PGlite, SQLite and the pipeline all run on it.

Last stdout line ("ratio" = kv events/s ÷ upsert rows/s: how close the whole KV path gets to PGlite's own ceiling):
  {"bench":"embedded","events":N,"vector_events":V,"kv_events_per_s":…,"vectors_events_per_s":…,
   "upsert_rows_per_s":…,"naive_events_per_s":…,"index_vectors_per_s":…,"ratio":…,"kv_cpu_us_per_event":…,
   "kv_main_thread_cpu_us_per_event":…, …}

Profile (SFM_BENCH_MARKS=1 prints each window on the profile's clock):
  SFM_BENCH_MARKS=1 node --cpu-prof --cpu-prof-dir=/tmp/prof bench/run.ts embedded --only kv
  node bench/lib/summarize-profile.ts /tmp/prof/CPU.*.cpuprofile <from> <to>
`

const Sides = { KV: 'kv', VECTORS: 'vectors', UPSERT: 'upsert', NAIVE: 'naive', INDEX: 'index' } as const
type Side = (typeof Sides)[keyof typeof Sides]
const ALL_SIDES: readonly Side[] = [Sides.KV, Sides.VECTORS, Sides.UPSERT, Sides.NAIVE, Sides.INDEX]

interface Options {
  events: number
  naiveEvents: number
  vectorEvents: number
  rounds: number
  eventBytes: number
  only: readonly Side[]
}

function parseOptions(args: string[]): Options {
  const { values, int } = parseBenchArgs(BENCH, args, [
    'events',
    'naive-events',
    'vector-events',
    'rounds',
    'event-bytes',
    'only'
  ])
  let only: Side[] = [...ALL_SIDES]
  if (typeof values.only === 'string') {
    only = values.only.split(',').map((s) => s.trim()) as Side[]
    const bad = only.filter((s) => !ALL_SIDES.includes(s))
    if (bad.length > 0 || only.length === 0) {
      throw new FatalError(
        `bench ${BENCH}: --only takes a comma list of ${ALL_SIDES.join(', ')}, got "${values.only}"`,
        {
          code: ErrorCodes.CONFIG
        }
      )
    }
  }
  const events = int('events', 50_000, 100, 5_000_000)
  return {
    events,
    naiveEvents: int('naive-events', Math.min(events, 3_000), 1, events),
    vectorEvents: int('vector-events', events, 100, events),
    rounds: int('rounds', 1, 1, 10),
    eventBytes: int('event-bytes', 1024, 256, 512 * 1024),
    only
  }
}

// --- measuring -------------------------------------------------------------------------------------------------------

interface Measurement {
  side: Side
  count: number
  seconds: number
  perS: number
  cpuMicrosPerEvent: number
  /** The main thread's share: what bounds throughput (PGlite, SQLite and the pipeline all run on it). */
  mainCpuMicrosPerEvent: number
  marks: readonly [bigint, bigint]
  detail: string
}

/** A measured window: wall time, this process's CPU time, and monotonic marks (to cut a --cpu-prof profile). */
class Window {
  #started = 0
  #cpu: NodeJS.CpuUsage | undefined
  #thread: NodeJS.CpuUsage | undefined
  #from = 0n
  #to = 0n
  #seconds = 0
  #cpuMicros = 0
  #threadMicros = 0

  get started(): boolean {
    return this.#started !== 0
  }

  start(): void {
    this.#started = performance.now()
    this.#cpu = process.cpuUsage()
    this.#thread = process.threadCpuUsage()
    this.#from = process.hrtime.bigint() / 1000n
  }

  stop(): void {
    this.#seconds = (performance.now() - this.#started) / 1000
    const cpu = process.cpuUsage(this.#cpu)
    this.#cpuMicros = cpu.user + cpu.system
    const thread = process.threadCpuUsage(this.#thread)
    this.#threadMicros = thread.user + thread.system
    this.#to = process.hrtime.bigint() / 1000n
  }

  measurement(side: Side, count: number, detail: string): Measurement {
    return {
      side,
      count,
      seconds: this.#seconds,
      perS: count / this.#seconds,
      cpuMicrosPerEvent: this.#cpuMicros / count,
      mainCpuMicrosPerEvent: this.#threadMicros / count,
      marks: [this.#from, this.#to],
      detail
    }
  }
}

const logLevel = (): LogLevel => (process.env.LOG_LEVEL as LogLevel | undefined) ?? 'warn'

/** Variables that would point the topology at servers: unset for the run, so it uses the embedded stack. */
const SERVER_VARIABLES = [
  'KAFKA_BROKERS',
  'DATABASE_URL',
  'QDRANT_URL',
  'VECTOR_DATABASE_URL',
  'SFM_EMBEDDING_URL',
  'SFM_EMBEDDER',
  'SFM_EMBEDDING_MODE',
  'SFM_TOPIC_PREFIX'
] as const

/** A history in the log under a topic prefix, and what the tables must hold once it is all processed. */
interface Workload {
  history: DemoHistory
  /** `SFM_TOPIC_PREFIX` of its topics (memory.events, memory.latest, memory.audit, memory.dlq). */
  prefix: string
  /** Rows of the memories table after all of it (the fold of the history). */
  expectedRows: number
  /** Memories alive at the end (vectors indexed). */
  expectedVectors: number
}

interface Context {
  dir: string
  /** N events: the kv, upsert and naive sides. */
  main: Workload
  /** The first M of them (a prefix of the same history), under their own topics: the vectors and index sides. */
  vectors: Workload
  naiveEvents: number
}

function workload(events: number, eventBytes: number, prefix: string): Workload {
  const history = demoHistory(events, 42, { eventBytes })
  const folded = fold(history.events)
  return {
    history,
    prefix,
    expectedRows: folded.size,
    expectedVectors: [...folded.values()].filter((row) => row.deletedAt === null).length
  }
}

async function withPglite<R>(ctx: Context, fn: (db: PGlite) => Promise<R>): Promise<R> {
  const shared = await acquirePglite(ctx.dir)
  try {
    return await fn(shared.db)
  } finally {
    await shared.release()
  }
}

async function countRows(ctx: Context, sql: string): Promise<number> {
  return withPglite(ctx, async (db) => {
    const { rows } = await db.query<{ n: number }>(sql)
    return Number(rows[0]?.n)
  })
}

/** The memory topology on the embedded stack, from the first message consumed to the N-th done. */
async function measureTopology(ctx: Context, side: 'kv' | 'vectors', r: number): Promise<Measurement> {
  const work = side === Sides.VECTORS ? ctx.vectors : ctx.main
  const n = work.history.messages.length
  const table = `bench_${side}_${r}`
  const vectorTable = `bench_vectors_${side}_${r}`
  const env = {
    SFM_DATA_DIR: ctx.dir,
    SFM_TOPIC_PREFIX: work.prefix,
    SFM_MEMORY_TABLE: table,
    SFM_MEMORY_GROUP: `bench-${side}-${r}`,
    SFM_VECTORS: side === Sides.VECTORS ? 'on' : 'off',
    SFM_VECTOR_TABLE: vectorTable,
    DRAIN_OLD_EVENTS: 'true'
  }
  const window = new Window()
  const batches = new Map<string, { count: number; rows: number; seconds: number }>()
  let deadLettered = 0
  // The vector side's worker threads (embedder, vector index): their CPU over the window, read at its ends.
  let workerCpu: Promise<[WorkerCpu, WorkerCpu]> | undefined
  let workers = ''
  await withEnv(env, async () => {
    const topology = await memoryTopology()
    const vectorSink = topology.branches.vectors?.sink as VectorSink<MemoryEvent> | undefined
    const readWorkers = () => Promise.all([threadCpu(vectorSink?.embedder), threadCpu(vectorSink?.store)])
    let done = 0
    let timedOut = false
    const runtime: Runtime = new Runtime(topology, {
      logger: createLogger(`bench-${BENCH}`, logLevel()),
      observer: {
        consumed() {
          if (!window.started) {
            window.start()
            workerCpu = readWorkers()
          }
        },
        processed() {
          if (++done === n) {
            window.stop()
            const before = workerCpu
            // Read before stopping: closing the sinks stops the workers.
            workerCpu = readWorkers().then(async (after) => {
              const [embedder, store] = (await before) ?? [undefined, undefined]
              return [minus(after[0], embedder), minus(after[1], store)]
            })
            workerCpu.finally(() => runtime.stop()).catch(() => {})
          }
        },
        deadLettered() {
          deadLettered++
        },
        batchWritten(branch, count, _bytes, seconds) {
          const b = batches.get(branch) ?? { count: 0, rows: 0, seconds: 0 }
          b.count++
          b.rows += count
          b.seconds += seconds
          batches.set(branch, b)
        }
      }
    })
    const limitMs = 120_000 + n * (side === Sides.VECTORS ? 10 : 2)
    const timer = setTimeout(() => {
      timedOut = true
      runtime.stop()
    }, limitMs)
    try {
      await runtime.run()
    } finally {
      clearTimeout(timer)
    }
    if (timedOut) throw new Error(`${side}: ${done}/${n} events done after ${limitMs} ms`)
    const [embedder, store] = (await workerCpu) ?? [undefined, undefined]
    if (embedder !== undefined || store !== undefined) {
      const per = (micros: WorkerCpu) => (micros === undefined ? '–' : round(micros / n))
      workers = `; worker threads: embedder ${per(embedder)}, vector index ${per(store)} µs CPU/event`
    }
  })
  const rows = await countRows(ctx, `SELECT count(*)::int AS n FROM ${quoteQualified(tableNames(table).memories)}`)
  if (rows !== work.expectedRows) throw new Error(`${side}: ${rows} rows in ${table}, expected ${work.expectedRows}`)
  if (deadLettered !== work.history.invalid) {
    throw new Error(`${side}: ${deadLettered} dead-lettered, expected the ${work.history.invalid} invalid events`)
  }
  let vectors = ''
  if (side === Sides.VECTORS) {
    // The embedded vector index has a PGlite of its own (<dir>/vectors), opened by a worker: ask through the store.
    const store = new ThreadedPgvectorStore({ dataDir: ctx.dir, store: { table: vectorTable } })
    let indexed: number
    try {
      await store.open(384)
      indexed = await store.count()
    } finally {
      await store.close()
    }
    if (indexed !== work.expectedVectors) {
      throw new Error(`${side}: ${indexed} vectors in ${vectorTable}, expected ${work.expectedVectors}`)
    }
    vectors = `, ${indexed} vectors`
  }
  const perBranch = [...batches]
    .map(
      ([branch, b]) =>
        `${branch} ${b.count} batches of ${round(b.rows / b.count)}, ${round((1000 * b.seconds) / b.count)} ms each`
    )
    .join('; ')
  return window.measurement(side, n, `${rows} rows${vectors}, ${deadLettered} to the DLQ; ${perBranch}${workers}`)
}

type WorkerCpu = number | undefined

/** A worker thread's CPU so far, when the embedder or store runs on one (ThreadedEmbedder, ThreadedPgvectorStore). */
async function threadCpu(part: unknown): Promise<WorkerCpu> {
  const reader = part as { threadCpuMicros?: () => Promise<number | undefined> } | undefined
  return reader?.threadCpuMicros ? reader.threadCpuMicros() : undefined
}

function minus(after: WorkerCpu, before: WorkerCpu): WorkerCpu {
  return after === undefined ? undefined : after - (before ?? 0)
}

/** The valid events in log order, prepared (JSON text, exact timestamps) as the sink would: outside the clock. */
function preparedEvents(ctx: Context, limit = Number.POSITIVE_INFINITY): PreparedEvent[] {
  const out: PreparedEvent[] = []
  for (const event of ctx.main.history.events) {
    if (out.length >= limit) break
    const prepared = prepareEvent(event, out.length)
    if (prepared instanceof Error) throw prepared
    out.push(prepared)
  }
  return out
}

/** A migrated, empty memories table (the sink's own migration: same layout and indexes as the topology's). */
async function freshTable(db: PGlite, table: string): Promise<string> {
  const names = tableNames(table)
  await migrate(pglitePool(db), names)
  return quoteQualified(names.memories)
}

const UPSERT_COLUMNS = '(id, namespace, type, payload, importance, version, event_id, event_ts, deleted_at, updated_at)'
const UPSERT_CONFLICT = `ON CONFLICT (id) DO UPDATE SET
  namespace = EXCLUDED.namespace, type = EXCLUDED.type, payload = EXCLUDED.payload,
  importance = EXCLUDED.importance, version = EXCLUDED.version, event_id = EXCLUDED.event_id,
  event_ts = EXCLUDED.event_ts, deleted_at = EXCLUDED.deleted_at, updated_at = EXCLUDED.updated_at
WHERE (m.version, m.event_ts) < (EXCLUDED.version, EXCLUDED.event_ts)`

/** The ceiling: one bare, fenced UNNEST upsert per batch of 2,000 events (reduced to one row per id). */
async function measureUpsert(ctx: Context, r: number): Promise<Measurement> {
  const events = preparedEvents(ctx)
  // Parameters as the sink passes them (binary-array.ts: binary arrays, the payloads as jsonb[], the event ids as
  // text only if one is not a canonical uuid), built before the clock.
  const batches: (Buffer | string)[][] = []
  for (let from = 0; from < events.length; from += 2000) {
    const winners = new Map<string, PreparedEvent>()
    for (const e of events.slice(from, from + 2000)) {
      const current = winners.get(e.id)
      if (current === undefined || compareFence(e, current) > 0) winners.set(e.id, e)
    }
    const rows = [...winners.values()]
    const eventIds = rows.map((e) => e.eventId)
    batches.push([
      textArrayBinary(rows.map((e) => e.id)),
      textArrayBinary(rows.map((e) => e.namespace)),
      textArrayBinary(rows.map((e) => e.type)),
      jsonbArrayBinary(rows.map((e) => e.payload)),
      float8ArrayBinary(rows.map((e) => e.importance)),
      int8ArrayBinary(rows.map((e) => e.version)),
      uuidArrayBinary(eventIds) ?? textArray(eventIds),
      timestamptzArrayBinary(rows.map((e) => e.micros)),
      boolArrayBinary(rows.map((e) => e.deleted))
    ])
  }
  return withPglite(ctx, async (db) => {
    const target = await freshTable(db, `bench_upsert_${r}`)
    const sql = `INSERT INTO ${target} AS m ${UPSERT_COLUMNS}
SELECT i.id, i.namespace, i.type, CASE WHEN NOT i.deleted THEN i.payload END, i.importance, i.version, i.event_id,
  i.event_ts, CASE WHEN i.deleted THEN i.event_ts END, now()
FROM ROWS FROM (unnest($1::text[]), unnest($2::text[]), unnest($3::text[]), unnest($4::jsonb[]),
  unnest($5::float8[]), unnest($6::int8[]), unnest($7::uuid[]), unnest($8::timestamptz[]), unnest($9::bool[]))
  AS i(id, namespace, type, payload, importance, version, event_id, event_ts, deleted)
${UPSERT_CONFLICT}`
    const window = new Window()
    window.start()
    const pool = pglitePool(db)
    for (const params of batches) await pool.query(sql, params)
    window.stop()
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${target}`)
    const count = Number(rows[0]?.n)
    if (count !== ctx.main.expectedRows) throw new Error(`upsert: ${count} rows, expected ${ctx.main.expectedRows}`)
    // Per event of the history, as the topology sides: the same work (every event, in batches) in less code.
    const n = ctx.main.history.messages.length
    return window.measurement(Sides.UPSERT, n, `${count} rows, ${batches.length} statements`)
  })
}

/** One fenced upsert per event, in log order. */
async function measureNaive(ctx: Context, r: number): Promise<Measurement> {
  const events = preparedEvents(ctx, ctx.naiveEvents)
  return withPglite(ctx, async (db) => {
    const target = await freshTable(db, `bench_naive_${r}`)
    const sql = `INSERT INTO ${target} AS m ${UPSERT_COLUMNS}
VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, CASE WHEN $9::bool THEN $8::timestamptz END, now())
${UPSERT_CONFLICT}`
    const window = new Window()
    window.start()
    for (const e of events) {
      await db.query(sql, [
        e.id,
        e.namespace,
        e.type,
        e.payload,
        e.importance,
        e.version,
        e.eventId,
        e.timestamp,
        e.deleted
      ])
    }
    window.stop()
    return window.measurement(Sides.NAIVE, events.length, `${events.length} statements`)
  })
}

/**
 * Diagnostic: the final state's vectors into an empty pgvector table with the embedded store's HNSW settings
 * (SFM_VECTOR_INDEX=hnsw), on this thread: what maintaining HNSW in PGlite costs per vector.
 */
async function measureIndex(ctx: Context, r: number): Promise<Measurement> {
  const { history } = ctx.vectors
  const alive = [...fold(history.events).values()].filter((row) => row.deletedAt === null)
  const byId = new Map<string, MemoryEvent>()
  for (const e of history.events) byId.set(`${e.id}\u0000${e.event_id}`, e)
  const texts = alive.map((row) => embeddingText(byId.get(`${row.id}\u0000${row.eventId}`)!) ?? '')
  const embedder = new LexicalEmbedder({ dimensions: 384 })
  const vectors = await embedder.embed(texts)
  const store = new PgvectorStore(await sharedPgliteDatabase(ctx.dir), {
    ...embeddedPgvectorStoreOptions,
    index: PgvectorIndexes.HNSW,
    table: `bench_index_${r}`
  })
  try {
    await store.open(embedder.dimensions)
    const records = alive.map((row, i) => ({
      id: row.id,
      namespace: row.namespace,
      type: row.type,
      importance: row.importance,
      version: row.version,
      micros: 0n,
      timestamp: row.eventTs,
      modelRevision: embedder.revision,
      vector: vectors[i]!,
      excerpt: texts[i]!.slice(0, 200)
    }))
    const window = new Window()
    window.start()
    for (let i = 0; i < records.length; i += 512) await store.write(records.slice(i, i + 512), [])
    window.stop()
    const count = await store.count()
    if (count !== records.length) throw new Error(`index: ${count} vectors, expected ${records.length}`)
    return window.measurement(Sides.INDEX, records.length, `${count} vectors (rows/s, not events/s)`)
  } finally {
    await store.close()
  }
}

// --- run -------------------------------------------------------------------------------------------------------------

function machineLoad(): string {
  const [one, five] = loadavg()
  return `machine: ${cpus().length} cores, load average ${one?.toFixed(2)} (1 min) ${five?.toFixed(2)} (5 min)`
}

export async function run(args: string[]): Promise<BenchResult> {
  const o = parseOptions(args)
  const dir = mkdtempSync(join(tmpdir(), 'sfm-bench-embedded-'))
  const cleared = Object.fromEntries(SERVER_VARIABLES.map((k) => [k, undefined]))
  progress(BENCH, machineLoad())
  try {
    return await withEnv(cleared, async () => {
      const ctx: Context = {
        dir,
        main: workload(o.events, o.eventBytes, ''),
        vectors: workload(o.vectorEvents, o.eventBytes, 'vectors.'),
        naiveEvents: o.naiveEvents
      }
      const { history } = ctx.main
      const bytes = history.messages.reduce((sum, m) => sum + m.key.length + m.value.length, 0)
      const producer = createProducer({ target: 'embedded', dataDir: dir })
      const started = performance.now()
      for (const work of [ctx.main, ctx.vectors]) {
        const topic = `${work.prefix}memory.events`
        const { messages } = work.history
        for (let i = 0; i < messages.length; i += 1000) {
          await producer.send(messages.slice(i, i + 1000).map((m) => ({ topic, key: m.key, value: m.value })))
        }
      }
      const appendSeconds = (performance.now() - started) / 1000
      const appended = o.events + o.vectorEvents
      await producer.close()
      progress(
        BENCH,
        `appended ${o.events} + ${o.vectorEvents} events (${round(bytes / o.events)} B each with the key; ` +
          `${history.duplicates} redeliveries, ${history.invalid} invalid of ${o.events}) in ` +
          `${round(appendSeconds, 2)} s: ${round(appended / appendSeconds)}/s; ${ctx.main.expectedRows} memories at ` +
          `the end (${ctx.vectors.expectedRows} of which ${ctx.vectors.expectedVectors} alive after ${o.vectorEvents})`
      )

      const best = new Map<Side, Measurement>()
      const leastCpu = new Map<Side, number>()
      const leastMainCpu = new Map<Side, number>()
      for (let r = 0; r < o.rounds; r++) {
        const order = r % 2 === 0 ? [...ALL_SIDES] : [...ALL_SIDES].reverse()
        for (const side of order.filter((s) => o.only.includes(s))) {
          const m =
            side === Sides.KV || side === Sides.VECTORS
              ? await measureTopology(ctx, side, r)
              : side === Sides.UPSERT
                ? await measureUpsert(ctx, r)
                : side === Sides.NAIVE
                  ? await measureNaive(ctx, r)
                  : await measureIndex(ctx, r)
          progress(
            BENCH,
            `round ${r + 1}/${o.rounds} ${side.padEnd(7)}: ${m.count} in ${round(m.seconds, 2)} s = ${round(m.perS)}/s, ` +
              `${round(m.cpuMicrosPerEvent, 1)} µs CPU/event, ${round(m.mainCpuMicrosPerEvent, 1)} of it on the main ` +
              `thread (${m.detail}); ${machineLoad()}` +
              (process.env.SFM_BENCH_MARKS ? ` [monotonic µs ${m.marks[0]}..${m.marks[1]}]` : '')
          )
          const previous = best.get(side)
          if (!previous || m.perS > previous.perS) best.set(side, m)
          // CPU per event moves much less with the neighbours' load than wall time: keep the lowest of each.
          leastCpu.set(side, Math.min(leastCpu.get(side) ?? Number.POSITIVE_INFINITY, m.cpuMicrosPerEvent))
          leastMainCpu.set(side, Math.min(leastMainCpu.get(side) ?? Number.POSITIVE_INFINITY, m.mainCpuMicrosPerEvent))
        }
      }

      const rate = (side: Side) => {
        const m = best.get(side)
        return m === undefined ? null : round(m.perS)
      }
      const cpu = (side: Side, of = leastCpu) => {
        const us = of.get(side)
        return us === undefined ? null : round(us, 1)
      }
      const kv = rate(Sides.KV)
      const upsert = rate(Sides.UPSERT)
      const [one] = loadavg()
      return {
        bench: BENCH,
        events: o.events,
        vector_events: o.vectorEvents,
        event_bytes: round(bytes / o.events),
        append_per_s: round(appended / appendSeconds),
        kv_events_per_s: kv,
        vectors_events_per_s: rate(Sides.VECTORS),
        upsert_rows_per_s: upsert,
        naive_events_per_s: rate(Sides.NAIVE),
        index_vectors_per_s: rate(Sides.INDEX),
        ratio: kv === null || upsert === null ? null : round(kv / upsert, 3),
        kv_cpu_us_per_event: cpu(Sides.KV),
        kv_main_thread_cpu_us_per_event: cpu(Sides.KV, leastMainCpu),
        vectors_cpu_us_per_event: cpu(Sides.VECTORS),
        vectors_main_thread_cpu_us_per_event: cpu(Sides.VECTORS, leastMainCpu),
        upsert_cpu_us_per_event: cpu(Sides.UPSERT),
        naive_cpu_us_per_event: cpu(Sides.NAIVE),
        index_cpu_us_per_vector: cpu(Sides.INDEX),
        load_1m: round(one ?? 0, 2),
        rounds: o.rounds
      }
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
