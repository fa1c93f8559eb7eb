/**
 * Benchmark `peers`: the memory topology side by side with what a user would use instead, on the same machine,
 * broker, PostgreSQL and events, in one run. See docs/BENCHMARKS.md ("peers").
 *
 * Sides, each from a fresh topic (6 partitions) and a fresh table, all events produced before the side starts, read
 * from the earliest offset:
 * - ours:     the memory topology's KV branch alone (memory-kv's `kv` side: the Postgres sink with the fence and the
 *             processed-ids claim; bench/peers/kv-topology.ts), run as its own process the way `npm start` runs a
 *             topology (src/cli/start.ts, same Node flags).
 * - ours_all: the whole memory topology (KV + memory.latest + memory.audit; SFM_VECTORS=off): `npm start --
 *             topologies/memory.ts`, likewise.
 * - connect:  Debezium's JDBC sink on the Kafka Connect worker at CONNECT_URL, `insert.mode=upsert` on `id`, the
 *             payload as jsonb, reading the same events as JsonConverter envelopes (schemas enabled). One connector
 *             per configuration tried (`--connect-configs`: tasks.max × batch.size, max.poll.records = batch.size);
 *             the fastest is kept.
 * - quix:     Quix Streams (bench/peers/quix_sink.py in .venv-peers) with its PostgreSQLSink upserting by id.
 *
 * Figures per side: events/s over the steady window — from the moment a fifth of the rows are in to the last row
 * (the distinct history; adversarial: from the first row; a side that wrote most rows at once: from its first row) —
 * and from the side's start (cold: process start, group join, JIT warm-up, connector start, first checkpoint
 * included); CPU seconds per 1,000 events of every process the side needs over the same window (for a side that
 * wrote most rows at once, from the first message it read), from /proc: our runner's process, the Connect JVM, the
 * Python process, and each side's own PostgreSQL backends (found through the local ports of its process's
 * connections); the Kafka broker's CPU apart (shared by every client of the broker); peak RSS; bytes per message.
 *
 * `--history adversarial`: the same seeded history for every side (test/helpers/memory-history.ts: each event 1–5
 * times, the versions of an id shuffled so they arrive out of order across batches, deletes then stale upserts)
 * plus poison records (not JSON; JSON without an id). After a side settles its table is compared with the fold of
 * the history (src/memory/fold.ts): rows lost, stale (not the newest version), resurrected (deleted but present),
 * and where the poison went (DLQ / stopped / skipped). Peers have no delete: they write a delete event as a row with
 * `deleted = true`, read as a soft delete.
 *
 * The end of a side is seen through one sentinel event per partition, produced after the events: once all are in
 * the table, the table is polled until it holds every row (default history) or stops changing (adversarial).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { existsSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Admin } from '@platformatic/kafka'
import pg from 'pg'
import { ConnectTypes, connectJsonEncoder, jsonbField } from '../src/connect/json-envelope.ts'
import { seededRandom } from '../src/demo/random.ts'
import { ErrorCodes, errorMessage, FatalError } from '../src/errors.ts'
import { createProducer, type OutgoingMessage } from '../src/kafka/producer.ts'
import { waitForLeaders } from '../src/kafka/topics.ts'
import { partitionForKey } from '../src/log/partitioner.ts'
import type { MemoryEvent } from '../src/memory/event.ts'
import { fold, type MemoryRow } from '../src/memory/fold.ts'
import { migrate, tableNames } from '../src/memory/memories.ts'
import { quoteQualified } from '../src/sinks/postgres/index.ts'
import { parseBrokers } from '../src/sources/kafka/index.ts'
import { generateHistory } from '../test/helpers/memory-history.ts'
import { parseBenchArgs } from './lib/args.ts'
import { type BenchResult, type Figure, progress, Requirements, round } from './lib/benchmark.ts'
import { clientPorts, cpuSeconds, pidListeningOn, statusBytes } from './lib/proc.ts'
import { withAdmin } from './lib/scoped.ts'

const BENCH = 'peers'
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const QUIX_PYTHON = join(REPO_ROOT, '.venv-peers', 'bin', 'python')
const QUIX_APP = join(REPO_ROOT, 'bench', 'peers', 'quix_sink.py')
const START_CLI = join(REPO_ROOT, 'src', 'cli', 'start.ts')
const MEMORY_TOPOLOGY = join(REPO_ROOT, 'topologies', 'memory.ts')
const KV_TOPOLOGY = join(REPO_ROOT, 'bench', 'peers', 'kv-topology.ts')

export const description = 'memory topology vs Kafka Connect + Debezium JDBC sink and Quix Streams, same events'
export const requires = [Requirements.KAFKA, Requirements.POSTGRES] as const

export const usage = `Usage: npm run bench -- peers [options]

Materializes the same N ~1 KB memory.event records (6 partitions, fresh topic and table per side) with
(ours) the memory topology's KV branch alone, (ours_all) the whole memory topology, (connect) Debezium's JDBC sink
on the Kafka Connect worker at CONNECT_URL (npm run stack -- up --connect), upsert by id, and (quix) a Quix Streams
app with its PostgreSQL sink (npm run python-setup -- --peers). A side whose service is missing is skipped and says
why. Reports events/s (steady: a fifth of the rows in → the last; and from a cold start), CPU s per 1,000
events of every process (runner, JVM, Python, PostgreSQL backends; broker apart), peak RSS, bytes per message, and with
--history adversarial rows lost / stale / resurrected against the fold of the history and where poison went.

Options:
  --events N             events (default 100000; adversarial: about N, duplicates included)
  --history H            distinct (default: N distinct memories, one event each) or adversarial
  --sides LIST           comma list of ours,ours_all,connect,quix (default all four)
  --connect-configs L    tasks.max x batch.size pairs to try, e.g. 1x2000,6x2000 (default), or "all"
                         (1 and 6 tasks x 500, 2000, 4000); the fastest is kept
  --poison P             poison records in the adversarial history (default max(4, N/1000))
  --partitions P         partitions of every topic (default 6)
  --event-bytes B        size of each event's JSON (default 1024)
  --rounds R             rounds of all sides, alternating their order; the fastest of each side is kept, its
                         correctness counts are the worst of its rounds (default 1)
  -h, --help             show this help

Last stdout line:
  {"bench":"peers","ours_events_per_s":…,"ours_all_events_per_s":…,"connect_events_per_s":…,"quix_events_per_s":…,
   "vs_connect":…,"all_vs_connect":…,"vs_quix":…,"ratio":<ours / the faster peer>, cold-start and CPU figures, …}
`

export const SIDES = ['ours', 'ours_all', 'connect', 'quix'] as const
export type PeerSide = (typeof SIDES)[number]
export const Histories = { DISTINCT: 'distinct', ADVERSARIAL: 'adversarial' } as const
export type History = (typeof Histories)[keyof typeof Histories]

interface ConnectConfig {
  tasks: number
  batch: number
}

export interface PeersOptions {
  events: number
  history: History
  sides: readonly PeerSide[]
  connectConfigs: readonly ConnectConfig[]
  poison: number
  partitions: number
  eventBytes: number
  rounds: number
}

function configError(message: string): FatalError {
  return new FatalError(`bench ${BENCH}: ${message}`, { code: ErrorCodes.CONFIG })
}

function parseConnectConfigs(value: string): ConnectConfig[] {
  if (value === 'all') return [1, 6].flatMap((tasks) => [500, 2000, 4000].map((batch) => ({ tasks, batch })))
  return value.split(',').map((item) => {
    const match = /^(\d{1,3})x(\d{1,6})$/.exec(item.trim())
    if (!match || Number(match[1]) < 1 || Number(match[2]) < 1) {
      throw configError(`--connect-configs takes tasks x batch pairs such as 1x2000,6x500 or "all", got "${item}"`)
    }
    return { tasks: Number(match[1]), batch: Number(match[2]) }
  })
}

export function parseOptions(args: string[]): PeersOptions {
  const { values, int } = parseBenchArgs(BENCH, args, [
    'events',
    'history',
    'sides',
    'connect-configs',
    'poison',
    'partitions',
    'event-bytes',
    'rounds'
  ])
  const history = values.history ?? Histories.DISTINCT
  if (history !== Histories.DISTINCT && history !== Histories.ADVERSARIAL) {
    throw configError(`--history must be distinct or adversarial, got "${history}"`)
  }
  let sides: PeerSide[] = [...SIDES]
  if (typeof values.sides === 'string') {
    sides = values.sides.split(',').map((s) => s.trim()) as PeerSide[]
    const bad = sides.filter((s) => !(SIDES as readonly string[]).includes(s))
    if (bad.length > 0 || sides.length === 0) {
      throw configError(`--sides takes a comma list of ${SIDES.join(', ')}, got "${values.sides}"`)
    }
  }
  const events = int('events', 100_000, 10, 10_000_000)
  return {
    events,
    history,
    sides,
    connectConfigs: parseConnectConfigs(
      typeof values['connect-configs'] === 'string' ? values['connect-configs'] : '1x2000,6x2000'
    ),
    poison: int('poison', Math.max(4, Math.floor(events / 1000)), 0, 100_000),
    partitions: int('partitions', 6, 1, 1000),
    eventBytes: int('event-bytes', 1024, 384, 512 * 1024),
    rounds: int('rounds', 1, 1, 10)
  }
}

// --- the workload ---------------------------------------------------------------------------------------------------

const WORDS = 'memory recall context embedding vector fractal soma stream event kafka batch commit episode '
const BASE_TIME = Date.parse('2026-12-01T00:00:00.000Z')
const SENTINEL = '__end-'

/** One record of the workload: a memory event, or poison (raw bytes, or JSON that is no valid event). */
type Item = { kind: 'event'; event: MemoryEvent } | { kind: 'poison'; key: string; value: Buffer | string }

export interface Workload {
  items: Item[]
  /** The valid events, in log order: what the fold is computed from. */
  events: MemoryEvent[]
  expected: Map<string, MemoryRow>
  poison: number
}

function distinctWorkload(n: number, bytes: number): Workload {
  const filler = WORDS.repeat(Math.ceil((bytes * 2) / WORDS.length))
  const events: MemoryEvent[] = []
  for (let i = 0; i < n; i++) {
    const event = {
      event_id: randomUUID(),
      id: `mem-${i}`,
      namespace: `bench-${i % 8}`,
      type: i % 3 === 0 ? 'semantic' : 'episodic',
      timestamp: new Date(BASE_TIME + i).toISOString(),
      version: 0,
      importance: (i % 100) / 100,
      payload: { text: '', tags: ['bench', `t${i % 16}`], source: 'bench/peers' }
    }
    const pad = Math.max(0, bytes - JSON.stringify(event).length)
    event.payload.text = filler.slice(i % WORDS.length, (i % WORDS.length) + pad)
    events.push(event)
  }
  return { items: events.map((event) => ({ kind: 'event', event })), events, expected: fold(events), poison: 0 }
}

/** ~n records: the property tests' history (1–5 copies, shuffled versions, deletes then stale upserts) + poison. */
function adversarialWorkload(n: number, bytes: number, poison: number): Workload {
  const eventsPerId = 6
  // Each event is sent 3 times on average.
  const ids = Math.max(1, Math.round(n / (eventsPerId * 3)))
  const events = generateHistory({ ids, eventsPerId, idPrefix: 'adv-', seed: 20261207, payloadBytes: bytes - 150 })
  const items: Item[] = events.map((event) => ({ kind: 'event', event }))
  const random = seededRandom(7)
  for (let k = 0; k < poison; k++) {
    const at = Math.floor(random() * (items.length + 1))
    const value =
      k % 2 === 0
        ? Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x22])
        : JSON.stringify({ event_id: randomUUID(), namespace: 'ns', timestamp: new Date(BASE_TIME).toISOString() })
    items.splice(at, 0, { kind: 'poison', key: `poison-${k}`, value })
  }
  return { items, events, expected: fold(events), poison }
}

export function makeWorkload(options: PeersOptions): Workload {
  return options.history === Histories.ADVERSARIAL
    ? adversarialWorkload(options.events, options.eventBytes, options.poison)
    : distinctWorkload(options.events, options.eventBytes)
}

function sentinel(partition: number): MemoryEvent {
  return {
    event_id: randomUUID(),
    id: `${SENTINEL}${partition}`,
    namespace: 'bench',
    type: 'episodic',
    timestamp: new Date(BASE_TIME).toISOString(),
    version: 0,
    payload: { text: 'end of the partition' }
  }
}

/** The Connect schema of a peers row: a few typed columns and the payload as jsonb. */
const connectEnvelope = connectJsonEncoder<Record<string, unknown>>({
  type: ConnectTypes.STRUCT,
  name: 'sfm.bench.peers.Value',
  optional: false,
  fields: [
    { field: 'id', type: ConnectTypes.STRING, optional: false },
    { field: 'namespace', type: ConnectTypes.STRING, optional: true },
    { field: 'type', type: ConnectTypes.STRING, optional: true },
    { field: 'version', type: ConnectTypes.INT64, optional: false },
    { field: 'event_id', type: ConnectTypes.STRING, optional: true },
    { field: 'event_ts', type: ConnectTypes.STRING, optional: true },
    { field: 'deleted', type: ConnectTypes.BOOLEAN, optional: false },
    jsonbField('payload')
  ]
})

/** A memory event as the row the peers write (the same mapping as quix_sink.py's `to_row`). */
function peerRow(event: Partial<MemoryEvent>): Record<string, unknown> {
  const deleted = event.op === 'delete'
  return {
    id: event.id,
    namespace: event.namespace ?? '',
    type: 'type' in event ? (event.type ?? '') : '',
    version: event.version ?? -1,
    event_id: event.event_id ?? '',
    event_ts: event.timestamp ?? '',
    deleted,
    payload: JSON.stringify(deleted ? {} : (('payload' in event ? event.payload : {}) ?? {}))
  }
}

type Format = 'plain' | 'connect'

function render(item: Item, format: Format): { key: string; value: Buffer | string } {
  if (item.kind === 'event') {
    const value = format === 'plain' ? JSON.stringify(item.event) : connectEnvelope(peerRow(item.event))
    return { key: item.event.id, value }
  }
  if (format === 'connect' && typeof item.value === 'string') {
    // The same invalid event, in the envelope Connect reads: its converter refuses the missing required id.
    return { key: item.key, value: connectEnvelope(peerRow(JSON.parse(item.value) as Partial<MemoryEvent>)) }
  }
  return { key: item.key, value: item.value }
}

// --- services --------------------------------------------------------------------------------------------------------

interface Env {
  brokers: string[]
  databaseUrl: string
  pgPort: number
  connectUrl: string | undefined
  /** The harness's own connection (polling, setup): its backend is no side's. */
  db: pg.Client
  runId: string
  schema: string
  topics: string[]
  groups: string[]
  publicTables: string[]
  brokerPid: number | undefined
}

async function connectRest(env: Env, method: string, path: string, body?: unknown) {
  const response = await fetch(`${env.connectUrl}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000)
  })
  const text = await response.text()
  return { status: response.status, json: text === '' ? undefined : (JSON.parse(text) as unknown) }
}

/**
 * Creates the connector. A worker that is rebalancing (409) or restarting (connection refused: another test may
 * restart the shared worker) is waited for, up to a minute.
 */
async function putConnector(env: Env, name: string, config: Record<string, string>): Promise<void> {
  const deadline = performance.now() + 60_000
  for (;;) {
    let why: string
    let waitable = true
    try {
      const { status, json } = await connectRest(env, 'PUT', `/connectors/${name}/config`, config)
      if (status === 200 || status === 201) return
      why = `HTTP ${status} ${JSON.stringify(json)}`
      waitable = status === 409 || status === 503
    } catch (error) {
      why = errorMessage(error)
    }
    if (!waitable || performance.now() > deadline) throw new Error(`connect: PUT ${name}: ${why}`)
    await sleep(1000)
  }
}

async function createTopics(env: Env, topics: string[], partitions: number): Promise<void> {
  env.topics.push(...topics)
  await withAdmin(env.brokers, async (admin) => {
    await admin.createTopics({
      topics,
      partitions,
      replicas: 1,
      configs: [{ name: 'max.message.bytes', value: String(2 * 1024 * 1024) }]
    })
    await waitForLeaders(admin, topics)
  })
}

/** Records in a topic (the sum of its partitions' end offsets; 0 if it does not exist). */
async function topicRecords(admin: Admin, topic: string): Promise<number> {
  try {
    const [metadata] = (await admin.metadata({ topics: [topic] })).topics.values()
    const partitions = metadata?.partitionsCount ?? 0
    const ends = await admin.listOffsets({
      topics: [
        {
          name: topic,
          partitions: Array.from({ length: partitions }, (_, p) => ({ partitionIndex: p, timestamp: -1n }))
        }
      ]
    })
    return ends.flatMap((t) => t.partitions).reduce((sum, p) => sum + Number(p.offset), 0)
  } catch {
    return 0
  }
}

/** Produces the workload (and one sentinel per partition after it) to a fresh topic; bytes per message. */
async function produceWorkload(env: Env, topic: string, workload: Workload, format: Format, partitions: number) {
  const producer = createProducer({ brokers: env.brokers, clientId: 'sfm-bench-peers' })
  let bytes = 0
  try {
    let chunk: OutgoingMessage[] = []
    for (const item of workload.items) {
      const { key, value } = render(item, format)
      bytes += Buffer.byteLength(value)
      chunk.push({ topic, key, value })
      if (chunk.length === 1000) {
        await producer.send(chunk)
        chunk = []
      }
    }
    for (let p = 0; p < partitions; p++) {
      const event = sentinel(p)
      chunk.push({ topic, key: event.id, partition: p, value: render({ kind: 'event', event }, format).value })
    }
    await producer.send(chunk)
  } finally {
    await producer.close().catch(() => {})
  }
  return bytes / workload.items.length
}

// --- one side --------------------------------------------------------------------------------------------------------

/** What a side runs: started, watched and stopped by `measure`. */
interface Runner {
  name: string
  /** Processes whose CPU counts (besides the PostgreSQL backends they open), by role. */
  processes(): Map<string, number>
  /** Why the side stopped on its own (crashed, task failed), if it did. */
  stopped(): string | undefined
  stop(): Promise<void>
  /** Poison records in the side's dead-letter topic. */
  deadLettered(): Promise<number>
  /** Resolves when the side has read its first message, if it says so (Quix: a line on stderr). */
  firstMessage?: Promise<void>
}

interface Table {
  /** Schema-qualified, quoted. */
  sql: string
  /** Columns for (id, event_id, deleted) in a SELECT. */
  select: string
  /** One text per row that changes when the row does (for a checksum of the table). */
  fingerprint: string
}

export interface SideResult {
  side: string
  events: number
  perS: number
  coldPerS: number
  cpuSPer1000: Record<string, number>
  cpuTotalSPer1000: number
  brokerCpuSPer1000: number
  peakRssMb: number
  bytesPerMessage: number
  rows: number
  lost: number
  stale: number
  resurrected: number
  poison: string
  note: string
  /** The measured window on the monotonic clock, µs (what a --cpu-prof profile's timestamps use). */
  marks: readonly [number, number]
  /**
   * Where the window started: at the steady mark; or, for a side that wrote most rows at once, at the first message
   * it read (if it says) or its first row.
   */
  window: 'steady' | 'first message' | 'first row'
  /** A distinct history whose rows mostly appeared at once (no steady window). */
  burst: boolean
}

/** The steady window of the distinct history starts when this share of the rows is in. */
const STEADY_FROM = 0.2

/**
 * Per partition, the id of the event at STEADY_FROM of its events (distinct history): once every one is in the
 * table, so is that share of each partition, since every side writes a partition's events in log order.
 */
function steadyMarkers(workload: Workload, partitions: number): string[] {
  const ids = Array.from({ length: partitions }, () => [] as string[])
  for (const event of workload.events) ids[partitionForKey(Buffer.from(event.id), partitions)]!.push(event.id)
  return ids.filter((p) => p.length > 0).map((p) => p[Math.floor((p.length - 1) * STEADY_FROM)]!)
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The side's PostgreSQL backends: pid → [CPU s at baseline]. Found through its processes' local ports. */
class Backends {
  /** pid → when the backend started (ms) and its CPU seconds when it was found. */
  readonly #found = new Map<number, { started: number; cpuWhenFound: number }>()
  readonly #env: Env
  readonly #runner: Runner

  constructor(env: Env, runner: Runner) {
    this.#env = env
    this.#runner = runner
  }

  async refresh(): Promise<void> {
    const ports = [...this.#runner.processes().values()].flatMap((pid) => clientPorts(pid, this.#env.pgPort))
    if (ports.length === 0) return
    const { rows } = await this.#env.db.query<{ pid: number; started: Date }>(
      'SELECT pid, backend_start AS started FROM pg_stat_activity WHERE client_port = ANY($1::int[]) AND pid <> $2',
      [ports, (this.#env.db as pg.Client & { processID: number }).processID]
    )
    for (const row of rows) {
      if (!this.#found.has(row.pid)) {
        this.#found.set(row.pid, { started: row.started.getTime(), cpuWhenFound: cpuSeconds(row.pid) })
      }
    }
  }

  /** Their CPU now, to count from. */
  mark(): BackendsMark {
    return { at: Date.now(), cpu: new Map([...this.#found.keys()].map((pid) => [pid, cpuSeconds(pid)])) }
  }

  /**
   * CPU seconds since `mark`. A backend found since counts from 0 if it opened after the mark, else from when it was
   * found.
   */
  seconds(mark: BackendsMark): number {
    let total = 0
    for (const [pid, found] of this.#found) {
      const base = mark.cpu.get(pid) ?? (found.started >= mark.at ? 0 : found.cpuWhenFound)
      const now = cpuSeconds(pid)
      if (!Number.isNaN(now)) total += now - base
    }
    return total
  }

  get count(): number {
    return this.#found.size
  }
}

interface BackendsMark {
  at: number
  cpu: Map<number, number>
}

/** Where a measured window starts: the time, rows already in, and every process's CPU then. */
interface WindowStart {
  at: number
  rows: number
  cpu: Map<string, number>
  broker: number
  backends: BackendsMark
}

async function readTable(env: Env, table: Table): Promise<Map<string, { eventId: string; deleted: boolean }>> {
  const { rows } = await env.db.query<{ id: string; event_id: string; deleted: boolean }>(
    `SELECT ${table.select} FROM ${table.sql}`
  )
  return new Map(
    rows.filter((r) => !r.id.startsWith(SENTINEL)).map((r) => [r.id, { eventId: r.event_id, deleted: r.deleted }])
  )
}

/** Rows lost, stale and resurrected against the fold; rows: ids that should be present and are, up to date. */
export function compareWithFold(
  expected: ReadonlyMap<string, MemoryRow>,
  actual: ReadonlyMap<string, { eventId: string; deleted: boolean }>
): { rows: number; lost: number; stale: number; resurrected: number } {
  let rows = 0
  let lost = 0
  let stale = 0
  let resurrected = 0
  for (const [id, row] of expected) {
    const got = actual.get(id)
    if (row.deletedAt === null) {
      if (got === undefined || got.deleted) lost++
      else if (got.eventId !== row.eventId) stale++
      else rows++
    } else if (got !== undefined && !got.deleted) resurrected++
  }
  return { rows, lost, stale, resurrected }
}

/**
 * Starts a side on a topic already holding the workload and watches its table: the first row, the sentinels, then
 * every row (distinct history) or a table that stops changing (adversarial); then compares it with the fold.
 */
async function measure(
  env: Env,
  workload: Workload,
  history: History,
  partitions: number,
  bytesPerMessage: number,
  table: Table,
  start: () => Promise<Runner>
): Promise<SideResult> {
  const n = workload.items.length
  const timeoutMs = 120_000 + n * 2
  // This process holds the workload (and, for ours, runs the topology): its RSS before the side starts, apart.
  const launched = performance.now()
  const runner = await start()
  const backends = new Backends(env, runner)
  const exists = async (where = 'true') =>
    Number((await env.db.query<{ n: string }>(`SELECT count(*) AS n FROM ${table.sql} WHERE ${where}`)).rows[0]?.n ?? 0)
  const sentinels = Array.from({ length: partitions }, (_, p) => `'${SENTINEL}${p}'`).join(',')
  const cpuOf = () => new Map([...runner.processes()].map(([role, pid]) => [role, cpuSeconds(pid)]))
  let rssPeak = 0
  const sampleRss = () => {
    for (const pid of runner.processes().values()) rssPeak = Math.max(rssPeak, statusBytes(pid, 'VmRSS') || 0)
  }
  let note = ''
  // The window: from the first row, or from the steady mark if one is taken (and not too late to measure).
  let firstRow: WindowStart | undefined
  let steadyMark: WindowStart | undefined
  let firstMessage: WindowStart | undefined
  const windowStart = async (at: number, rows: number): Promise<WindowStart> => {
    await backends.refresh()
    return {
      at,
      rows,
      cpu: cpuOf(),
      broker: env.brokerPid === undefined ? Number.NaN : cpuSeconds(env.brokerPid),
      backends: backends.mark()
    }
  }
  let lastRefresh = 0
  const tick = async () => {
    sampleRss()
    if (performance.now() - lastRefresh > 2000) {
      lastRefresh = performance.now()
      await backends.refresh()
    }
  }
  const deadline = launched + timeoutMs
  const until = async (what: string, check: () => Promise<boolean>, everyMs: number): Promise<boolean> => {
    while (!(await check())) {
      const why = runner.stopped()
      if (why !== undefined) {
        note = why
        return false
      }
      if (performance.now() > deadline) {
        note = `timed out after ${timeoutMs / 1000} s waiting for ${what}`
        return false
      }
      await tick()
      await sleep(everyMs)
    }
    return true
  }
  void runner.firstMessage?.then(async () => {
    firstMessage = await windowStart(performance.now(), 0)
  })
  let end = 0
  try {
    // A row at all: LIMIT 1 stops at the first one.
    const gotFirst = await until(
      'the first row',
      async () => (await env.db.query(`SELECT 1 FROM ${table.sql} LIMIT 1`)).rows.length > 0,
      20
    )
    if (gotFirst) firstRow = await windowStart(performance.now(), 0)
    // Steady state, on the distinct history: from the moment a fifth of the rows are in (group join, JIT warm-up,
    // connector start and a first checkpoint are behind every side by then); adversarial: from the first row. Seen
    // through one marker row per partition (primary-key lookups), not by counting the table every few ms: that
    // would cost PostgreSQL CPU the side needs.
    const markers = history === Histories.DISTINCT ? steadyMarkers(workload, partitions) : []
    const steady =
      gotFirst &&
      (markers.length === 0 ||
        (await until(
          'a fifth of the rows',
          async () => {
            const at = performance.now()
            if ((await exists(`id IN (${markers.map((id) => `'${id}'`).join(',')})`)) < markers.length) return false
            steadyMark = await windowStart(at, await exists())
            return true
          },
          20
        )))
    if (steady) {
      const done =
        (await until('the sentinels', async () => (await exists(`id IN (${sentinels})`)) === partitions, 50)) &&
        (history === Histories.DISTINCT
          ? await until(
              'every row',
              async () => {
                const at = performance.now()
                const ok = (await exists()) >= workload.expected.size + partitions
                if (ok) end = at
                return ok
              },
              50
            )
          : await until(
              'a settled table',
              (() => {
                let last = ''
                return async () => {
                  const at = performance.now()
                  const { rows } = await env.db.query<{ f: string }>(
                    `SELECT count(*) || ':' || coalesce(md5(string_agg(${table.fingerprint}, ',' ORDER BY id)), '') AS f ` +
                      `FROM ${table.sql}`
                  )
                  const now = rows[0]?.f ?? ''
                  const same = now === last
                  if (!same) {
                    last = now
                    end = at
                  }
                  return same
                }
              })(),
              1000
            ))
      if (!done && end === 0) end = performance.now()
    }
  } finally {
    sampleRss()
  }
  // From the steady mark, unless the side had written most rows by then (a checkpoint of Quix Streams can hold all of
  // them): then from the first message it read if it says when (its work before the first write counts), else from
  // its first row; the result says which.
  const steadyStart = steadyMark && steadyMark.rows <= n * (1 - STEADY_FROM) ? steadyMark : undefined
  const measured = steadyStart ?? firstMessage ?? firstRow
  // The rate is over rows appearing (first row to last for such a side); CPU over the work (from `measured`).
  const rateFrom = steadyStart ?? firstRow
  const window = (end - (rateFrom?.at ?? 0)) / 1000
  const from = measured?.at ?? 0
  // performance.now() is ms since the time origin; the profile's clock is hrtime in µs.
  const origin = Number(process.hrtime.bigint() / 1000n) - Math.round(performance.now() * 1000)
  const marks = [origin + Math.round(from * 1000), origin + Math.round(end * 1000)] as const
  const cpu: Record<string, number> = {}
  let total = 0
  // Events done in the window (distinct history: one row each).
  const inWindow = n - (measured?.rows ?? 0)
  const per1000 = (seconds: number) => (seconds * 1000) / inWindow
  const rateEvents = n - (rateFrom?.rows ?? 0)
  const cpuAtEnd = cpuOf()
  for (const [role, at] of measured?.cpu ?? []) {
    const used = (cpuAtEnd.get(role) ?? Number.NaN) - at
    cpu[role] = round(per1000(used), 3)
    if (!Number.isNaN(used)) total += used
  }
  // Backends opened since the last look count too (from 0 if they opened inside the window).
  await backends.refresh()
  const backendSeconds = measured ? backends.seconds(measured.backends) : Number.NaN
  cpu.postgres_backends = round(per1000(backendSeconds), 3)
  total += backendSeconds
  const broker = env.brokerPid === undefined || !measured ? Number.NaN : cpuSeconds(env.brokerPid) - measured.broker
  if (runner.processes().has('python'))
    rssPeak = Math.max(rssPeak, statusBytes(runner.processes().get('python')!, 'VmHWM') || 0)
  const stoppedBeforeStop = runner.stopped()
  await runner.stop()
  const dead = await runner.deadLettered()
  const compared = compareWithFold(workload.expected, await readTable(env, table))
  const poison =
    workload.poison === 0
      ? 'none'
      : dead > 0
        ? `dlq ${dead}/${workload.poison}`
        : stoppedBeforeStop !== undefined
          ? 'stopped'
          : 'skipped'
  const complete = measured !== undefined && note === ''
  return {
    side: runner.name,
    events: n,
    perS: complete ? rateEvents / window : Number.NaN,
    coldPerS: complete ? n / ((end - launched) / 1000) : Number.NaN,
    cpuSPer1000: cpu,
    cpuTotalSPer1000: round(per1000(total), 3),
    brokerCpuSPer1000: round(per1000(broker), 3),
    peakRssMb: round(rssPeak / 2 ** 20),
    bytesPerMessage: round(bytesPerMessage),
    ...compared,
    poison,
    note:
      note || (measured === undefined ? 'no row' : '') || (backends.count === 0 ? 'no PostgreSQL backend found' : ''),
    window: measured === steadyMark ? 'steady' : measured === firstMessage ? 'first message' : 'first row',
    burst: history === Histories.DISTINCT && steadyStart === undefined,
    marks
  }
}

// --- the sides ---------------------------------------------------------------------------------------------------------

async function oursSide(
  env: Env,
  workload: Workload,
  options: PeersOptions,
  all: boolean,
  round: number
): Promise<SideResult> {
  const name = all ? 'ours_all' : 'ours'
  const prefix = `bench-peers-${env.runId}.${name}-${round}.`
  await createTopics(
    env,
    ['memory.events', 'memory.latest', 'memory.audit', 'memory.dlq'].map((t) => prefix + t),
    options.partitions
  )
  const bytes = await produceWorkload(env, `${prefix}memory.events`, workload, 'plain', options.partitions)
  const table = `${env.schema}.${name}_${round}`
  const names = tableNames(table)
  const setup = new pg.Pool({ connectionString: env.databaseUrl, max: 1 })
  try {
    await migrate(setup, names)
  } finally {
    await setup.end()
  }
  const group = `${prefix}group`
  env.groups.push(group)
  const vars = {
    SFM_TOPIC_PREFIX: prefix,
    SFM_MEMORY_TABLE: table,
    SFM_MEMORY_GROUP: group,
    SFM_VECTORS: 'off',
    DRAIN_OLD_EVENTS: 'true'
  }
  return measure(
    env,
    workload,
    options.history,
    options.partitions,
    bytes,
    {
      sql: quoteQualified(names.memories),
      select: 'id, event_id::text AS event_id, deleted_at IS NOT NULL AS deleted',
      fingerprint: "id || event_id::text || coalesce(deleted_at::text, '')"
    },
    async () =>
      spawnSide({
        name,
        role: 'runner',
        // As `npm start` runs it (package.json): same Node flags.
        command: process.execPath,
        args: ['--max-semi-space-size=128', START_CLI, all ? MEMORY_TOPOLOGY : KV_TOPOLOGY, '--status-interval', '0'],
        env: {
          ...vars,
          KAFKA_BROKERS: env.brokers.join(','),
          DATABASE_URL: env.databaseUrl,
          LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn'
        },
        deadLettered: () => withAdmin(env.brokers, (admin) => topicRecords(admin, `${prefix}memory.dlq`))
      })
  )
}

/** The table both peers write: the columns of their row mapping, upsert key id. */
async function peerTable(env: Env, qualified: string): Promise<Table> {
  await env.db.query(`CREATE TABLE ${qualified} (
    id text PRIMARY KEY, namespace text, type text, version bigint, event_id text, event_ts text, deleted boolean,
    payload jsonb)`)
  return {
    sql: qualified,
    select: 'id, event_id, deleted',
    fingerprint: "id || coalesce(event_id, '') || deleted::text"
  }
}

function connectorConfig(name: string, topic: string, table: string, c: ConnectConfig) {
  return {
    'connector.class': 'io.debezium.connector.jdbc.JdbcSinkConnector',
    'tasks.max': String(c.tasks),
    topics: topic,
    // The worker's JDBC settings (scripts/stack/connect.ts), with an application name of this connector's own.
    'connection.url': `\${env:SFM_CONNECT_JDBC_URL}?ApplicationName=${name}`,
    'connection.username': `\${env:SFM_CONNECT_JDBC_USER}`,
    'connection.password': `\${env:SFM_CONNECT_JDBC_PASSWORD}`,
    'key.converter': 'org.apache.kafka.connect.storage.StringConverter',
    'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
    'value.converter.schemas.enable': 'true',
    'insert.mode': 'upsert',
    'primary.key.mode': 'record_value',
    'primary.key.fields': 'id',
    'delete.enabled': 'false',
    'schema.evolution': 'none',
    'collection.name.format': table,
    'quote.identifiers': 'true',
    'batch.size': String(c.batch),
    'consumer.override.max.poll.records': String(c.batch),
    'errors.tolerance': 'all',
    'errors.log.enable': 'true',
    'errors.log.include.messages': 'false',
    'errors.deadletterqueue.topic.name': `${name}.dlq`,
    'errors.deadletterqueue.topic.replication.factor': '-1',
    'errors.deadletterqueue.context.headers.enable': 'true',
    'use.time.zone': 'UTC'
  }
}

async function connectSide(env: Env, workload: Workload, options: PeersOptions, c: ConnectConfig, i: string) {
  const name = `bench-peers-${env.runId}-connect-${i}`
  const topic = `${name}.events`
  await createTopics(env, [topic], options.partitions)
  env.topics.push(`${name}.dlq`)
  env.groups.push(`connect-${name}`)
  const bytes = await produceWorkload(env, topic, workload, 'connect', options.partitions)
  // Debezium's sink reads `schema.table` as a table name in the connection's default schema: public.
  const tableName = `bench_peers_${env.runId}_connect_${i}`
  env.publicTables.push(tableName)
  const table = await peerTable(env, `public."${tableName}"`)
  const port = Number(new URL(env.connectUrl!).port)
  const result = await measure(env, workload, options.history, options.partitions, bytes, table, async () => {
    await putConnector(env, name, connectorConfig(name, topic, tableName, c))
    const jvm = pidListeningOn(port)
    let failed: string | undefined
    let lastCheck = 0
    return {
      name: `connect ${c.tasks}x${c.batch}`,
      processes: () => new Map(jvm === undefined ? [] : [['jvm', jvm]]),
      stopped() {
        if (failed !== undefined || performance.now() - lastCheck < 1000) return failed
        lastCheck = performance.now()
        void connectRest(env, 'GET', `/connectors/${name}/status`).then(
          ({ json: s }) => {
            const state = s as
              | { connector?: { state: string }; tasks?: { state: string; trace?: string }[] }
              | undefined
            const task = state?.tasks?.find((t) => t.state === 'FAILED')
            if (task) failed = `stopped: task failed (${(task.trace ?? '').split('\n', 1)[0]})`
          },
          () => {}
        )
        return failed
      },
      async stop() {
        await connectRest(env, 'DELETE', `/connectors/${name}`).catch(() => {})
      },
      deadLettered: () => withAdmin(env.brokers, (admin) => topicRecords(admin, `${name}.dlq`))
    }
  })
  return result
}

async function quixSide(env: Env, workload: Workload, options: PeersOptions, round: number): Promise<SideResult> {
  const name = `bench-peers-${env.runId}-quix-${round}`
  const topic = `${name}.events`
  await createTopics(env, [topic], options.partitions)
  env.groups.push(name)
  const bytes = await produceWorkload(env, topic, workload, 'plain', options.partitions)
  const qualified = `${env.schema}.quix_${round}`
  const table = await peerTable(env, `"${env.schema}"."quix_${round}"`)
  const url = new URL(env.databaseUrl)
  return measure(env, workload, options.history, options.partitions, bytes, table, async () => {
    return spawnSide({
      name: 'quix',
      role: 'python',
      command: QUIX_PYTHON,
      args: [QUIX_APP],
      env: {
        SFM_PEERS_BROKERS: env.brokers.join(','),
        SFM_PEERS_TOPIC: topic,
        SFM_PEERS_GROUP: name,
        SFM_PEERS_TABLE: qualified,
        SFM_PEERS_APP: name,
        PGHOST: url.hostname,
        PGPORT: url.port || '5432',
        PGDATABASE: decodeURIComponent(url.pathname.slice(1)),
        PGUSER: decodeURIComponent(url.username),
        PGPASSWORD: decodeURIComponent(url.password)
      },
      deadLettered: async () => 0
    })
  })
}

/**
 * A side run as its own process (ours through the CLI, Quix's Python app): its CPU and RSS are that process's, and
 * it is stopped with SIGTERM (SIGKILL after 15 s). If it exits on its own, the last error line it printed says why.
 */
function spawnSide(side: {
  name: string
  role: string
  command: string
  args: readonly string[]
  env: Record<string, string>
  deadLettered: () => Promise<number>
}): Runner {
  const child: ChildProcess = spawn(side.command, side.args, {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...side.env }
  })
  let stderr = ''
  let sawFirst: () => void = () => {}
  const firstMessage = new Promise<void>((resolve) => {
    sawFirst = resolve
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-8192)
    if (stderr.includes(FIRST_MESSAGE_LINE)) sawFirst()
  })
  let exit: string | undefined
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      const lines = stderr
        .trim()
        .split('\n')
        .filter((l) => /error|exception|fatal/i.test(l))
      exit = `stopped: exit ${code ?? signal}${lines.length > 0 ? ` (${lines.at(-1)!.trim().slice(0, 200)})` : ''}`
      resolve()
    })
  })
  return {
    name: side.name,
    processes: () => new Map(child.pid === undefined || exit !== undefined ? [] : [[side.role, child.pid]]),
    stopped: () => exit,
    async stop() {
      if (exit === undefined) {
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
        await exited
        clearTimeout(timer)
      }
      if (process.env.BENCH_DEBUG) process.stderr.write(stderr)
    },
    deadLettered: side.deadLettered,
    firstMessage
  }
}

/** What bench/peers/quix_sink.py prints on its first message. */
const FIRST_MESSAGE_LINE = 'sfm-peers: first message'

// --- run -------------------------------------------------------------------------------------------------------------

function machineLoad(): string {
  const [one, five] = loadavg()
  return `machine: ${cpus().length} cores, load average ${one?.toFixed(2)} (1 min) ${five?.toFixed(2)} (5 min)`
}

function describe(r: SideResult): string {
  const cpu = Object.entries(r.cpuSPer1000)
    .map(([role, s]) => `${role} ${s}`)
    .join(', ')
  return (
    `${r.side}: ${round(r.perS)} events/s (cold ${round(r.coldPerS)}), CPU s/1000 events ${r.cpuTotalSPer1000} ` +
    `(${cpu}; broker ${r.brokerCpuSPer1000}), peak RSS ${r.peakRssMb} MB` +
    `, ${r.bytesPerMessage} B/message; ` +
    `rows ${r.rows}, lost ${r.lost}, stale ${r.stale}, resurrected ${r.resurrected}, poison ${r.poison}` +
    (r.note ? ` [${r.note}]` : '') +
    (r.window === 'steady'
      ? ''
      : r.burst
        ? ` [most rows appeared at once: events/s from the first row, CPU from the ${r.window}]`
        : ` [window from the ${r.window}]`) +
    (process.env.SFM_BENCH_MARKS ? ` [monotonic µs ${r.marks[0]}..${r.marks[1]}]` : '')
  )
}

/** Of two runs of a side, the faster; its correctness counts and notes are the worse of the two. */
function better(a: SideResult | undefined, b: SideResult): SideResult {
  if (a === undefined) return b
  const fast = a.perS >= b.perS || Number.isNaN(b.perS) ? a : b
  const worst = a.lost + a.stale + a.resurrected >= b.lost + b.stale + b.resurrected ? a : b
  return {
    ...fast,
    rows: Math.min(a.rows, b.rows),
    lost: worst.lost,
    stale: worst.stale,
    resurrected: worst.resurrected,
    poison: a.poison === b.poison ? a.poison : `${a.poison}; ${b.poison}`,
    note: [a.note, b.note].filter((n) => n !== '').join('; ')
  }
}

/** Runs the chosen sides; why each skipped side was skipped. */
export async function runSides(
  options: PeersOptions
): Promise<{ results: Map<string, SideResult>; skipped: Map<string, string>; connectTried: SideResult[] }> {
  const brokers = parseBrokers(process.env.KAFKA_BROKERS)
  const databaseUrl = process.env.DATABASE_URL ?? ''
  const connectUrl = process.env.CONNECT_URL?.replace(/\/+$/, '') || undefined
  const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`
  const db = new pg.Client({ connectionString: databaseUrl, application_name: 'sfm-bench-peers' })
  await db.connect()
  db.on('error', () => {})
  const brokerPort = Number(brokers[0]?.split(':').at(-1))
  const env: Env = {
    brokers,
    databaseUrl,
    pgPort: Number(new URL(databaseUrl).port || 5432),
    connectUrl,
    db,
    runId,
    schema: `bench_peers_${runId}`,
    topics: [],
    groups: [],
    publicTables: [],
    brokerPid: Number.isInteger(brokerPort) ? pidListeningOn(brokerPort) : undefined
  }
  const results = new Map<string, SideResult>()
  const skipped = new Map<string, string>()
  const connectTried: SideResult[] = []
  const workload = makeWorkload(options)
  progress(BENCH, machineLoad())
  progress(
    BENCH,
    `${workload.items.length} records (${options.history}: ${workload.events.length} events, ${workload.expected.size} ids, ` +
      `${workload.poison} poison), ${options.partitions} partitions; sides ${options.sides.join(', ')}`
  )
  await db.query(`CREATE SCHEMA "${env.schema}"`)
  try {
    for (const side of options.sides) {
      if (side === 'connect' && connectUrl === undefined) {
        skipped.set(side, 'CONNECT_URL is not set: start the worker with `npm run stack -- up --connect`')
      } else if (side === 'quix' && !existsSync(QUIX_PYTHON)) {
        skipped.set(side, 'no .venv-peers with Quix Streams: run `npm run python-setup -- --peers`')
      }
      const why = skipped.get(side)
      if (why !== undefined) progress(BENCH, `${side}: skipped: ${why}`)
    }
    const keep = (side: PeerSide, r: SideResult) => {
      progress(BENCH, describe(r))
      results.set(side, better(results.get(side), r))
    }
    for (let round = 0; round < options.rounds; round++) {
      const order = options.sides.filter((side) => !skipped.has(side))
      if (round % 2 === 1) order.reverse()
      for (const side of order) {
        if (side === 'connect') {
          for (const [i, c] of options.connectConfigs.entries()) {
            const r = await connectSide(env, workload, options, c, `${round}-${i}`)
            connectTried.push(r)
            keep(side, r)
          }
        } else if (side === 'quix') keep(side, await quixSide(env, workload, options, round))
        else keep(side, await oursSide(env, workload, options, side === 'ours_all', round))
      }
    }
    progress(BENCH, machineLoad())
  } finally {
    progress(BENCH, `deleting ${env.topics.length} topics, ${env.groups.length} groups, schema ${env.schema}`)
    await withAdmin(brokers, async (admin) => {
      const existing = new Set((await admin.listTopics()).filter((t) => env.topics.includes(t)))
      if (existing.size > 0) await admin.deleteTopics({ topics: [...existing] })
      await admin.deleteGroups({ groups: env.groups }).catch(() => {})
    }).catch((error: unknown) => progress(BENCH, `topic cleanup failed: ${errorMessage(error)}`))
    for (const t of env.publicTables) await db.query(`DROP TABLE IF EXISTS public."${t}"`).catch(() => {})
    await db.query(`DROP SCHEMA IF EXISTS "${env.schema}" CASCADE`).catch(() => {})
    await db.end().catch(() => {})
  }
  return { results, skipped, connectTried }
}

export async function run(args: string[]): Promise<BenchResult> {
  const options = parseOptions(args)
  const { results, connectTried } = await runSides(options)
  const rate = (side: string) => {
    const r = results.get(side)
    return r === undefined || Number.isNaN(r.perS) ? undefined : r.perS
  }
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? null : round(a / b, 2)
  const ours = rate('ours')
  const peers = [rate('connect'), rate('quix')].filter((x): x is number => x !== undefined)
  const figures: Record<string, Figure> = {}
  for (const side of SIDES) {
    const r = results.get(side)
    const v = (x: number | undefined) => (r === undefined || x === undefined || Number.isNaN(x) ? null : round(x))
    figures[`${side}_events_per_s`] = v(r?.perS)
    figures[`${side}_cold_events_per_s`] = v(r?.coldPerS)
    figures[`${side}_cpu_s_per_1000`] = r ? r.cpuTotalSPer1000 : null
    figures[`${side}_pg_backends_cpu_s_per_1000`] = r ? (r.cpuSPer1000.postgres_backends ?? null) : null
    figures[`${side}_broker_cpu_s_per_1000`] = r ? r.brokerCpuSPer1000 : null
    figures[`${side}_peak_rss_mb`] = r ? r.peakRssMb : null
    figures[`${side}_bytes_per_message`] = r ? r.bytesPerMessage : null
    figures[`${side}_window`] = r ? r.window : null
    figures[`${side}_rows`] = r ? r.rows : null
    figures[`${side}_lost`] = r ? r.lost : null
    figures[`${side}_stale`] = r ? r.stale : null
    figures[`${side}_resurrected`] = r ? r.resurrected : null
    figures[`${side}_poison`] = r ? r.poison : null
  }
  return {
    bench: BENCH,
    events: options.events,
    history: options.history,
    ours_events_per_s: figures.ours_events_per_s ?? null,
    ours_all_events_per_s: figures.ours_all_events_per_s ?? null,
    connect_events_per_s: figures.connect_events_per_s ?? null,
    quix_events_per_s: figures.quix_events_per_s ?? null,
    vs_connect: ratio(ours, rate('connect')),
    all_vs_connect: ratio(rate('ours_all'), rate('connect')),
    vs_quix: ratio(ours, rate('quix')),
    ratio: peers.length === 0 ? null : ratio(ours, Math.max(...peers)),
    connect_best: results.get('connect')?.side.replace('connect ', '') ?? null,
    connect_tried: connectTried.map((r) => `${r.side.replace('connect ', '')}: ${round(r.perS)}/s`).join('; ') || null,
    rounds: options.rounds,
    ...figures,
    load_1min: round(loadavg()[0] ?? Number.NaN, 2)
  }
}
