/**
 * Synthetic app traffic for a cutover rehearsal (`npm run traffic`, step 3 of RUNBOOK.md): the writes the legacy
 * SomaFractalMemory app makes — creates, updates, deletes of memories `{ns}:{repr(coord)}:data` with values shaped
 * like the app's — applied to the legacy `kv_store` *and* published the way the app publishes with a producer
 * pattern of docs/PRODUCERS.md: dual-write (the kv_store write, then the event) or the transactional outbox (both in
 * one transaction, the relay publishes).
 *
 * `TrafficPlan` decides what is written (deterministic for a seed, over a pool of `ids` memories); `runTraffic`
 * sets the pace; a `TrafficApp` makes the writes: `nodeTrafficApp` here with `pg` and the project's producer, or
 * `pythonTrafficApp`, which hands each write to `python -m sfm_events.traffic` (the Python client, as the app uses
 * it) one JSON line at a time.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import type { Readable, Writable } from 'node:stream'
import type pg from 'pg'
import { describeError, ErrorCodes, FatalError } from '../../errors.ts'
import type { SfmProducer } from '../../kafka/messages.ts'
import type { JsonValue } from '../event.ts'
import { LEGACY_DATA_SUFFIX, legacyMemoryId } from './memory-id.ts'

export const TrafficKinds = { CREATE: 'create', UPDATE: 'update', DELETE: 'delete' } as const
export type TrafficKind = (typeof TrafficKinds)[keyof typeof TrafficKinds]

/**
 * How the app publishes: `dual-write` (the kv_store write, then the event), `outbox` (both in one transaction), or
 * `events` (the event only: the app once its traffic has moved, RUNBOOK.md step 4).
 */
export const TrafficPatterns = { DUAL_WRITE: 'dual-write', OUTBOX: 'outbox', EVENTS: 'events' } as const
export type TrafficPattern = (typeof TrafficPatterns)[keyof typeof TrafficPatterns]

/** One write of the app. `version` is the event's version: a monotonic clock in microseconds, as sfm_events uses. */
export interface TrafficWrite {
  readonly kind: TrafficKind
  readonly namespace: string
  readonly coordinate: readonly number[]
  readonly value: { readonly [field: string]: JsonValue } | null
  readonly version: number
}

/** What an app did so far. `seconds`: from its first write to its last write done. */
export interface TrafficCounts {
  writes: number
  create: number
  update: number
  delete: number
  publish_failures: number
  seconds: number
}

export function emptyTrafficCounts(): TrafficCounts {
  return { writes: 0, create: 0, update: 0, delete: 0, publish_failures: 0, seconds: 0 }
}

/** Deterministic 32-bit generator (mulberry32): the same seed plans the same writes. */
function random(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const TASKS = ['plan', 'review', 'chat', null] as const

export interface TrafficPlanOptions {
  /** Size of the pool of memories written (ids). */
  ids: number
  namespace: string
  seed: number
  /** Share of writes to a live memory that delete it (default 0.15; the others update it). */
  deleteShare?: number
}

/**
 * What the app writes: a memory of the pool picked at random each time — created when it is not live, else
 * updated (its `access_count` grows, its text and `importance_norm` change, links appear) or, now and then,
 * deleted. Slot `i`'s coordinate is fixed (its first element is `i`, so coordinates never collide), so a deleted
 * memory can be created again later under the same id, as in the legacy app.
 */
export class TrafficPlan {
  readonly ids: number
  readonly namespace: string
  readonly #seed: number
  readonly #deleteShare: number
  readonly #pick: () => number
  /** Per slot: -1 not live, else the number of updates since its creation. */
  readonly #revision: Int32Array
  #live = 0
  #lastVersion = 0

  constructor(options: TrafficPlanOptions) {
    if (!Number.isInteger(options.ids) || options.ids < 1) throw new RangeError('ids must be a whole number ≥ 1')
    this.ids = options.ids
    this.namespace = options.namespace
    this.#seed = options.seed
    this.#deleteShare = options.deleteShare ?? 0.15
    this.#pick = random(options.seed)
    this.#revision = new Int32Array(options.ids).fill(-1)
  }

  /**
   * The coordinate of slot `slot`: 2 to 4 floats, the first the slot number, the others fixed by the slot alone (not
   * the seed), so every run writes the same pool of memories.
   */
  coordinate(slot: number): number[] {
    const next = random(Math.imul(slot + 1, 0x9e3779b1))
    const dims = 2 + Math.floor(next() * 3)
    const out = [slot]
    for (let d = 1; d < dims; d++) {
      const kind = next()
      // Whole numbers, fractions with Python's shortest repr, and magnitudes that repr writes with an exponent.
      if (kind < 0.4) out.push(Math.floor(next() * 2001) - 1000)
      else if (kind < 0.85) out.push(next() * 2 - 1 || 0.5)
      else out.push([1e-7, 1e20, -3.5e-12, 0.0001, 1e16][Math.floor(next() * 5)]! * (1 + Math.floor(next() * 9)))
    }
    return out
  }

  /** The legacy kv_store key of slot `slot`. */
  key(slot: number): string {
    return legacyMemoryId(this.namespace, this.coordinate(slot)) + LEGACY_DATA_SUFFIX
  }

  /** Marks slots as live before the first write (they already are in the legacy store): they get updated. */
  markLive(slots: Iterable<number>): void {
    for (const slot of slots) {
      if (this.#revision[slot] === -1) this.#live++
      this.#revision[slot] = Math.max(0, this.#revision[slot]!) + 1
    }
  }

  /** How many memories of the pool are live after the writes planned so far. */
  get live(): number {
    return this.#live
  }

  /** The value of slot `slot` at revision `revision`, shaped like the legacy app's (docs/CUTOVER.md). */
  value(slot: number, revision: number): { [field: string]: JsonValue } {
    const next = random(this.#seed ^ Math.imul(slot + 1, 0x85ebca6b) ^ Math.imul(revision + 1, 0xc2b2ae35))
    const coordinate = this.coordinate(slot)
    const episodic = slot % 3 !== 0
    const value: { [field: string]: JsonValue } = {
      text: revision === 0 ? `memory ${slot}` : `memory ${slot}, revised ${revision}${slot % 7 === 0 ? ' (é)' : ''}`,
      task: TASKS[Math.floor(next() * TASKS.length)]!,
      memory_type: episodic ? 'episodic' : 'semantic',
      coordinate
    }
    if (slot % 5 === 0) value.importance = Math.floor(next() * 11)
    if (episodic) value.timestamp = 1_760_000_000 + slot + Math.round(next() * 1e6) / 1e6
    value.importance_norm = next()
    if (revision > 0) value.access_count = revision
    if (revision >= 2) {
      const to = this.coordinate(Math.floor(next() * this.ids))
      value.links = [
        { to, type: 'related', timestamp: 1_760_000_000.5 + revision, weight: Math.round(next() * 100) / 100 }
      ]
    }
    return value
  }

  /** The next write. */
  next(): TrafficWrite {
    const slot = Math.floor(this.#pick() * this.ids)
    const roll = this.#pick()
    const revision = this.#revision[slot]!
    const version = this.#version()
    const base = { namespace: this.namespace, coordinate: this.coordinate(slot), version }
    if (revision === -1) {
      this.#revision[slot] = 0
      this.#live++
      return { ...base, kind: TrafficKinds.CREATE, value: this.value(slot, 0) }
    }
    if (roll < this.#deleteShare) {
      this.#revision[slot] = -1
      this.#live--
      return { ...base, kind: TrafficKinds.DELETE, value: null }
    }
    this.#revision[slot] = revision + 1
    return { ...base, kind: TrafficKinds.UPDATE, value: this.value(slot, revision + 1) }
  }

  /** The clock in microseconds, never the same twice: each write of a memory wins over the ones before it. */
  #version(): number {
    this.#lastVersion = Math.max(this.#lastVersion + 1, Date.now() * 1000)
    return this.#lastVersion
  }
}

/** Which slots of `plan` already have a memory in the legacy store (read in pages of 10,000 keys). */
export async function liveSlots(client: pg.ClientBase, plan: TrafficPlan): Promise<number[]> {
  const out: number[] = []
  for (let from = 0; from < plan.ids; from += 10_000) {
    const slots = Array.from({ length: Math.min(10_000, plan.ids - from) }, (_, i) => from + i)
    const keys = slots.map((slot) => plan.key(slot))
    const { rows } = await client.query<{ key: string }>('SELECT key FROM kv_store WHERE key = ANY($1::text[])', [keys])
    const found = new Set(rows.map((row) => row.key))
    slots.forEach((slot, i) => {
      if (found.has(keys[i]!)) out.push(slot)
    })
  }
  return out
}

/** Makes the writes: the legacy write and the event, in the pattern's way. */
export interface TrafficApp {
  /** Makes (or hands over) one write; resolves when the next one may be given. */
  write(write: TrafficWrite): Promise<void>
  /** The counts so far. */
  progress(): TrafficCounts
  /** Waits until every write is made and every event published (or failed); the final counts. */
  finish(): Promise<TrafficCounts>
}

const UPSERT =
  'INSERT INTO kv_store (key, value) VALUES ($1, $2::jsonb) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value'

/** The memory.event v1 of a write, as `sfm_events.build_event` builds it. */
export function trafficEvent(write: TrafficWrite): { id: string; text: string } {
  const id = legacyMemoryId(write.namespace, write.coordinate)
  const base = {
    event_id: randomUUID(),
    id,
    namespace: write.namespace,
    op: write.kind === TrafficKinds.DELETE ? 'delete' : 'upsert',
    timestamp: new Date().toISOString(),
    version: write.version
  }
  if (write.value === null) return { id, text: JSON.stringify(base) }
  const importance = typeof write.value.importance === 'number' ? { importance: write.value.importance } : {}
  return {
    id,
    text: JSON.stringify({ ...base, type: write.value.memory_type, ...importance, payload: write.value })
  }
}

export interface NodeTrafficAppOptions {
  /** A connection to the legacy store (autocommit: each statement outside a transaction commits at once). */
  client: pg.ClientBase
  pattern: TrafficPattern
  /** Dual-write: the producer and the topic of memory events. */
  producer?: SfmProducer
  topic?: string
  /** Outbox: the outbox table, quoted (default sfm_outbox). */
  outboxTable?: string
}

/**
 * The app in TypeScript: one write at a time on `client`; with dual-write each event is queued once its kv_store
 * write committed and the queue is sent in order, one request at a time (order per id holds), while the next writes
 * go on — as a Python app with `MemoryEvents(...).upsert(..., wait=False)`.
 */
export function nodeTrafficApp(options: NodeTrafficAppOptions): TrafficApp {
  const counts = emptyTrafficCounts()
  let started: number | undefined
  let queue: { topic: string; key: string; value: string }[] = []
  let sending: Promise<void> | undefined
  const { client } = options
  if (options.pattern !== TrafficPatterns.OUTBOX && (options.producer === undefined || !options.topic)) {
    throw new FatalError(`${options.pattern} needs a producer and a topic`, { code: ErrorCodes.CONFIG })
  }
  const outboxTable = options.outboxTable ?? 'sfm_outbox'

  const pump = async (): Promise<void> => {
    while (queue.length > 0) {
      const batch = queue
      queue = []
      try {
        await options.producer!.send(batch)
      } catch {
        counts.publish_failures += batch.length
      }
    }
    sending = undefined
  }

  const legacyWrite = async (write: TrafficWrite, key: string) => {
    const meta = `${key.slice(0, -LEGACY_DATA_SUFFIX.length)}:meta`
    if (write.kind === TrafficKinds.DELETE) {
      await client.query('DELETE FROM kv_store WHERE key = ANY($1::text[])', [[key, meta]])
      return
    }
    await client.query(UPSERT, [key, JSON.stringify(write.value)])
    if (write.kind === TrafficKinds.CREATE) {
      await client.query(UPSERT, [meta, JSON.stringify({ creation_timestamp: Date.now() / 1000 })])
    }
  }

  return {
    async write(write) {
      started ??= performance.now()
      const event = trafficEvent(write)
      const key = event.id + LEGACY_DATA_SUFFIX
      if (options.pattern === TrafficPatterns.OUTBOX) {
        await client.query('BEGIN')
        try {
          await legacyWrite(write, key)
          await client.query(`INSERT INTO ${outboxTable} (key, event) VALUES ($1, $2::jsonb)`, [event.id, event.text])
          await client.query('COMMIT')
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {})
          throw error
        }
      } else {
        if (options.pattern === TrafficPatterns.DUAL_WRITE) await legacyWrite(write, key)
        queue.push({ topic: options.topic!, key: event.id, value: event.text })
        sending ??= pump()
      }
      counts.writes++
      counts[write.kind]++
      counts.seconds = (performance.now() - started) / 1000
    },
    progress: () => ({ ...counts }),
    async finish() {
      while (sending !== undefined) await sending
      return { ...counts }
    }
  }
}

/**
 * The connection string as libpq reads it: node-postgres reads a `+` in the query as a space (form encoding, as
 * `URLSearchParams` writes `options=-c+search_path%3Dx`), libpq reads it as a `+`; `%20` means a space to both.
 */
export function libpqUrl(url: string): string {
  const query = url.indexOf('?')
  return query < 0 ? url : url.slice(0, query) + url.slice(query).replaceAll('+', '%20')
}

export interface PythonTrafficAppOptions {
  /** The Python of the environment where sfm_events is installed (the project's .venv/bin/python). */
  python: string
  pattern: TrafficPattern
  /** The legacy store's connection string (libpq form), passed as LEGACY_URL. */
  legacyUrl: string
  /** The outbox table (a plain name, found through the search path). */
  outboxTable?: string
  /** The environment (KAFKA_BROKERS, the Kafka TLS/SASL variables, SFM_TOPIC_PREFIX). */
  env: NodeJS.ProcessEnv
  /** Lines the Python process writes on stderr (its warnings and errors). */
  onStderr?: (line: string) => void
}

/**
 * The app in Python: `python -m sfm_events.traffic --pattern P` reads the writes on stdin, makes them with the
 * package as the app would, and reports `{"progress": …}` every second and `{"summary": …}` at the end on stdout.
 */
export function pythonTrafficApp(options: PythonTrafficAppOptions): TrafficApp {
  const args = ['-m', 'sfm_events.traffic', '--pattern', options.pattern]
  if (options.outboxTable !== undefined) args.push('--outbox-table', options.outboxTable)
  const child: ChildProcessByStdio<Writable, Readable, Readable> = spawn(options.python, args, {
    env: { ...options.env, LEGACY_URL: libpqUrl(options.legacyUrl), PYTHONUNBUFFERED: '1' },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  let counts = emptyTrafficCounts()
  let summary: TrafficCounts | undefined
  const errors: string[] = []
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  let failed: Error | undefined
  child.on('error', (error) => {
    failed = error
  })
  child.stdin.on('error', () => {})
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
    for (let at = out.indexOf('\n'); at >= 0; at = out.indexOf('\n')) {
      const line = out.slice(0, at)
      out = out.slice(at + 1)
      let parsed: { progress?: TrafficCounts; summary?: TrafficCounts } | undefined
      try {
        parsed = JSON.parse(line) as { progress?: TrafficCounts; summary?: TrafficCounts }
      } catch {
        continue // not one of its report lines (a library printing on stdout)
      }
      if (parsed?.progress) counts = parsed.progress
      if (parsed?.summary) summary = parsed.summary
    }
  })
  let err = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk
    for (let at = err.indexOf('\n'); at >= 0; at = err.indexOf('\n')) {
      const line = err.slice(0, at)
      err = err.slice(at + 1)
      errors.push(line)
      options.onStderr?.(line)
    }
  })

  const problem = (code: number | null): Error => {
    const last = errors.filter((line) => line.trim() !== '').at(-1) ?? `exit ${code}`
    if (/No module named sfm_events\.traffic|No module named 'sfm_events'/.test(errors.join('\n'))) {
      return new FatalError(`the .venv has no sfm_events.traffic: run \`npm run python-setup\` (${last})`, {
        code: ErrorCodes.CONFIG
      })
    }
    const message = `python -m sfm_events.traffic failed: ${last.replace(/^sfm_events\.traffic: /, '')}`
    return code === 2 ? new FatalError(message, { code: ErrorCodes.CONFIG }) : new Error(message)
  }

  return {
    async write(write) {
      if (failed) throw failed
      if (child.exitCode !== null) throw problem(child.exitCode)
      if (!child.stdin.write(`${JSON.stringify(write)}\n`)) {
        await Promise.race([once(child.stdin, 'drain'), exited])
      }
    },
    progress: () => ({ ...counts }),
    async finish() {
      child.stdin.end()
      const [code] = await exited
      if (failed) throw new FatalError(`cannot run ${options.python}: ${describeError(failed)}`)
      if (code !== 0 || summary === undefined) throw problem(code)
      return summary
    }
  }
}

export interface RunTrafficOptions {
  plan: TrafficPlan
  app: TrafficApp
  /** Writes per second. */
  rate: number
  durationSeconds: number
  /** Called every `progressEveryMs` (default 5,000) with the counts so far and the seconds since the start. */
  onProgress?: (counts: TrafficCounts, elapsedSeconds: number) => void
  progressEveryMs?: number
  /** Stops planning writes (SIGINT); what was handed over is still finished. */
  signal?: AbortSignal
}

export interface TrafficSummary extends TrafficCounts {
  /** Writes per second achieved (writes / seconds). */
  rate: number
  target_rate: number
  /** Writes planned (handed to the app). */
  planned: number
  /** Memories of the pool live at the end (as planned). */
  live: number
}

/**
 * Hands `plan`'s writes to `app` at `rate` per second for `durationSeconds` (write i is due at start + i/rate; an
 * app slower than that is not made to catch up by bursts beyond its pace: the achieved rate says so).
 */
export async function runTraffic(options: RunTrafficOptions): Promise<TrafficSummary> {
  const { plan, app, rate } = options
  const start = performance.now()
  const end = start + options.durationSeconds * 1000
  const every = options.progressEveryMs ?? 5000
  let nextProgress = start + every
  let planned = 0
  for (;;) {
    if (options.signal?.aborted) break
    const due = start + (planned * 1000) / rate
    if (due >= end) break
    const wait = due - performance.now()
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait))
    await app.write(plan.next())
    planned++
    const now = performance.now()
    if (now >= nextProgress) {
      options.onProgress?.(app.progress(), (now - start) / 1000)
      nextProgress = now + every
    }
  }
  const handedOver = (performance.now() - start) / 1000
  const counts = await app.finish()
  // The app's own time, or the time the writes were handed over in when it kept pace (n writes at rate r take
  // (n - 1) / r between the first and the last).
  const seconds = Math.round(Math.max(counts.seconds, handedOver) * 1000) / 1000
  return {
    ...counts,
    seconds,
    rate: seconds > 0 ? Math.round((counts.writes / seconds) * 10) / 10 : 0,
    target_rate: rate,
    planned,
    live: plan.live
  }
}
