import { ErrorKinds, errorMessage, kindOf } from '../../errors.ts'
import { type EmbeddedLog, openEmbeddedLog, type StoredRecord } from '../../log/embedded-log.ts'
import {
  commitOffsets,
  committedOffsets,
  type GroupMember,
  heartbeat,
  joinGroup,
  leaveGroup
} from '../../log/groups.ts'
import { embeddedLogPath } from '../../log/options.ts'
import { retain } from '../../log/retention.ts'
import { createLogger, type Logger } from '../../logger.ts'
import { parseBoolean } from '../kafka/options.ts'
import {
  type CommitRequest,
  type ShadowGroup,
  type Source,
  type SourceListener,
  type SourceMessage,
  shadowGroupId,
  type TopicPartition
} from '../types.ts'
import { type ResolvedEmbeddedLogSourceOptions, resolveEmbeddedLogSourceOptions } from './options.ts'
import type { EmbeddedLogSourceOptions } from './types.ts'

export { defaultEmbeddedLogSourceOptions, resolveEmbeddedLogSourceOptions } from './options.ts'
export type { EmbeddedLogSourceOptions } from './types.ts'

const slot = (topic: string, partition: number) => `${topic}\u0000${partition}`

/**
 * A source on the embedded log (src/log), with the Kafka source's semantics where they matter to the runtime:
 * per-partition order, resume from the group's committed offsets (else earliest or latest, `DRAIN_OLD_EVENTS`),
 * commits only when the runtime's coordinator asks, and lag reports.
 *
 * Simplified group membership: the member owns every partition of its topics and a second live member of the same
 * group is refused (see src/log/groups.ts) — `assigned` is called once at open (and again if a topic grows), and
 * `rebalancing` never.
 *
 * Reads are pulled in bounded chunks (`highWaterMark` records, `maxBytes`) round-robin over the partitions. An idle
 * source waits without spinning: appends made in this process wake it at once, those of other processes are seen
 * by a cheap poll of the partitions' end offsets every `pollIntervalMs`.
 */
export class EmbeddedLogSource implements Source {
  readonly kind = 'embedded-log'
  readonly options: EmbeddedLogSourceOptions
  #o: ResolvedEmbeddedLogSourceOptions | undefined
  #log: EmbeddedLog | undefined
  #member: GroupMember | undefined
  #listener: SourceListener | undefined
  readonly #logger: Logger = createLogger('embedded-log')
  #assigned: TopicPartition[] = []
  readonly #positions = new Map<string, bigint>()
  readonly #committed = new Map<string, bigint>()
  #buffer: StoredRecord[] = []
  #index = 0
  #rotation = 0
  #appended = false
  #wake: (() => void) | undefined
  #failure: unknown
  readonly #timers: ReturnType<typeof setInterval>[] = []
  #unsubscribe: (() => void) | undefined
  readonly #warned = new Set<string>()

  #realGroupId: string | undefined

  constructor(options: EmbeddedLogSourceOptions) {
    this.options = options
  }

  get description(): string {
    const o = this.#o ?? this.options
    const where = this.#o?.path ?? this.options.path ?? embeddedLogPath({ dataDir: this.options.dataDir })
    return `embedded log ${o.topics.join(',')} (group ${o.groupId}) at ${where} (set KAFKA_BROKERS to use Kafka)`
  }

  /** The log handle while open, for tests. */
  get log(): EmbeddedLog | undefined {
    return this.#log
  }

  limitBuffer(messages: number): void {
    const current = this.options.highWaterMark
    if (current === undefined || current > messages) this.options.highWaterMark = Math.max(1, messages)
  }

  /** Shadow mode: the derived group (src/sources/types.ts, `shadow`). Idempotent; before `open`. */
  shadow(): ShadowGroup {
    const real = this.#realGroupId ?? this.options.groupId
    this.#realGroupId = real
    this.options.groupId = shadowGroupId(real)
    const drainOldEvents =
      this.options.drainOldEvents ?? parseBoolean(process.env.DRAIN_OLD_EVENTS, 'DRAIN_OLD_EVENTS', true)
    return { groupId: this.options.groupId, realGroupId: real, topics: [...this.options.topics], drainOldEvents }
  }

  async open(listener: SourceListener): Promise<void> {
    const o = resolveEmbeddedLogSourceOptions(this.options)
    this.#o = o
    this.#listener = listener
    const log = openEmbeddedLog({ path: o.path })
    this.#log = log
    try {
      log.ensureTopics(o.topics)
      this.#member = joinGroup(log, o.groupId, o.sessionTimeout)
      const committed = committedOffsets(log, o.groupId, o.topics)
      for (const topic of o.topics) {
        for (const { partition, end } of log.partitions(topic)) {
          this.#assign(topic, partition, end, committed.get(topic)?.get(partition), o.drainOldEvents)
        }
      }
    } catch (error) {
      await this.close()
      throw error
    }
    listener.assigned([...this.#assigned])
    this.#unsubscribe = log.onAppend((topics) => {
      if (!o.topics.some((t) => topics.has(t))) return
      this.#appended = true
      this.#wake?.()
    })
    this.#every(Math.max(200, Math.floor(o.sessionTimeout / 3)), () => this.#heartbeat())
    if (o.retentionIntervalMs > 0) {
      this.#retain()
      this.#every(o.retentionIntervalMs, () => this.#retain())
    }
    if (listener.lag && o.lagIntervalMs > 0) {
      this.#reportLag()
      this.#every(o.lagIntervalMs, () => this.#reportLag())
    }
  }

  /** Takes a partition: from the committed offset, else the earliest or the end; never below the log start. */
  #assign(topic: string, partition: number, end: bigint, committed: bigint | undefined, drain: boolean): void {
    const log = this.#log!
    const start = log.startOffset(topic, partition)
    let position: bigint
    if (committed === undefined) position = drain ? start : end
    else if (committed < start) {
      this.#logger.warn(
        `${topic}:${partition}: committed offset ${committed} of group ${this.#o!.groupId} was removed by ` +
          `retention; resuming at the log start ${start} (${start - committed} record(s) never read)`
      )
      position = start
    } else if (committed > end) {
      this.#logger.warn(`${topic}:${partition}: committed offset ${committed} is past the end ${end}; resuming there`)
      position = end
    } else position = committed
    this.#positions.set(slot(topic, partition), position)
    if (committed !== undefined) this.#committed.set(slot(topic, partition), committed)
    this.#assigned.push({ topic, partition })
  }

  #every(ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms)
    timer.unref()
    this.#timers.push(timer)
  }

  #heartbeat(): void {
    if (!this.#log || !this.#member || this.#failure !== undefined) return
    try {
      heartbeat(this.#log, this.#member)
    } catch (error) {
      // Contention is retried on the next beat; a lost group stops the source (next() throws it).
      if (kindOf(error) === ErrorKinds.RETRIABLE) return
      this.#failure = error
      this.#wake?.()
    }
  }

  #retain(): void {
    if (!this.#log) return
    try {
      const result = retain(this.#log)
      if (result.total > 0) {
        this.#logger.info(`retention removed ${result.total} record(s) in ${result.seconds.toFixed(2)} s`)
      }
    } catch (error) {
      this.#logger.warn(`retention failed (will run again): ${errorMessage(error)}`)
    }
  }

  #reportLag(): void {
    const log = this.#log
    const o = this.#o
    if (!log || !o || !this.#listener?.lag) return
    try {
      const lag = new Map<string, bigint[]>()
      for (const topic of o.topics) {
        const parts: bigint[] = []
        for (const { partition, end } of log.partitions(topic)) {
          const key = slot(topic, partition)
          const from = this.#committed.get(key) ?? this.#positions.get(key)
          parts[partition] = from === undefined ? -1n : end > from ? end - from : 0n
        }
        lag.set(topic, parts)
      }
      this.#listener.lag(lag)
    } catch {
      // Lag is informational; the next interval measures again.
    }
  }

  async next(signal: AbortSignal): Promise<SourceMessage | undefined> {
    for (;;) {
      if (this.#failure !== undefined) throw this.#failure
      if (this.#index < this.#buffer.length) return this.#toSourceMessage(this.#buffer[this.#index++]!)
      if (signal.aborted || !this.#log) return undefined
      // Everything here resolves synchronously (SQLite reads, and the embedded sinks' writes too), so without this
      // the runtime's pull loop would run in microtasks only and starve timers — commit interval, heartbeat,
      // status — until the log is drained. One macrotask turn per chunk lets them run.
      await new Promise<void>((resolve) => setImmediate(resolve))
      if (signal.aborted || !this.#log) return undefined
      this.#appended = false
      if (this.#fill() > 0) continue
      await this.#sleep(signal)
    }
  }

  /** The rest of the current chunk, synchronously; never reads the log (`next` does, a macrotask turn per chunk). */
  tryNext(): SourceMessage | undefined {
    if (this.#failure !== undefined || this.#index >= this.#buffer.length) return undefined
    return this.#toSourceMessage(this.#buffer[this.#index++]!)
  }

  /** Reads the next chunk into the buffer, round-robin over partitions that have records past their position. */
  #fill(): number {
    const log = this.#log!
    const o = this.#o!
    this.#buffer = []
    this.#index = 0
    const ends = new Map<string, bigint>()
    let grown = false
    for (const topic of o.topics) {
      for (const { partition, end } of log.partitions(topic)) {
        const key = slot(topic, partition)
        if (!this.#positions.has(key)) {
          // A partition added while running: read it from its start, so nothing produced to it is skipped.
          this.#assign(topic, partition, end, undefined, true)
          grown = true
        }
        ends.set(key, end)
      }
    }
    if (grown) this.#listener?.assigned([...this.#assigned])
    let records = o.highWaterMark
    let bytes = o.maxBytes
    const parts = this.#assigned
    const first = this.#rotation++ % parts.length
    for (let i = 0; i < parts.length && records > 0 && bytes > 0; i++) {
      const { topic, partition } = parts[(first + i) % parts.length]!
      const key = slot(topic, partition)
      const position = this.#positions.get(key)!
      const end = ends.get(key)!
      if (position >= end) continue
      const chunk = log.read(topic, partition, position, records, bytes)
      if (chunk.length === 0) {
        // Everything between position and end was removed (retention, compaction): nothing to deliver there.
        this.#positions.set(key, end)
        continue
      }
      for (const r of chunk) {
        this.#buffer.push(r)
        bytes -= r.size
      }
      records -= chunk.length
      this.#positions.set(key, chunk[chunk.length - 1]!.offset + 1n)
    }
    return this.#buffer.length
  }

  /** Until something is appended in this process, the poll interval passes, or `signal` aborts. */
  #sleep(signal: AbortSignal): Promise<void> {
    if (this.#appended) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        this.#wake = undefined
        resolve()
      }
      const timer = setTimeout(done, this.#o!.pollIntervalMs)
      signal.addEventListener('abort', done, { once: true })
      this.#wake = done
    })
  }

  #toSourceMessage(r: StoredRecord): SourceMessage {
    if (r.headerError !== undefined) {
      const key = slot(r.topic, r.partition)
      if (!this.#warned.has(key)) {
        this.#warned.add(key)
        this.#logger.warn(
          `${r.topic}:${r.partition}@${r.offset}: ${r.headerError}; delivered with the readable headers only ` +
            '(further such records of this partition are not reported)'
        )
      }
    }
    return {
      key: r.key,
      value: r.value ?? Buffer.alloc(0),
      headers: r.headers,
      origin: { topic: r.topic, partition: r.partition, offset: r.offset, leaderEpoch: 0, timestamp: r.timestamp }
    }
  }

  async commit(offsets: readonly CommitRequest[]): Promise<void> {
    const log = this.#log
    const member = this.#member
    if (!log || !member || offsets.length === 0) return
    commitOffsets(log, member, offsets)
    for (const o of offsets) this.#committed.set(slot(o.topic, o.partition), o.offset)
  }

  async close(): Promise<void> {
    for (const timer of this.#timers.splice(0)) clearInterval(timer)
    this.#unsubscribe?.()
    this.#unsubscribe = undefined
    this.#wake?.()
    const log = this.#log
    const member = this.#member
    this.#log = undefined
    this.#member = undefined
    if (!log) return
    try {
      if (member && this.#failure === undefined) leaveGroup(log, member)
    } catch (error) {
      this.#logger.warn(`leaving group ${member?.groupId} failed (it expires by itself): ${errorMessage(error)}`)
    } finally {
      log.close()
    }
  }
}

/** A source on the embedded log (see EmbeddedLogSource). */
export function embeddedLogSource(options: EmbeddedLogSourceOptions): EmbeddedLogSource {
  return new EmbeddedLogSource({ ...options })
}
