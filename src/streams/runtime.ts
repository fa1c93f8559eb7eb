import { type Context, ROOT_CONTEXT } from '@opentelemetry/api'
import { describeError, ErrorCodes, errorMessage, FatalError } from '../errors.ts'
import { createLogger, type Logger } from '../logger.ts'
import type { WriteResult } from '../sinks/types.ts'
import type { CommitRequest, ShadowGroup, SourceListener, SourceMessage, TopicPartition } from '../sources/types.ts'
import { sleep } from './backoff.ts'
import { CommitCoordinator } from './commit-coordinator.ts'
import { buildDeadLetter, DeadLetterHeaders, type DeadLetterTarget } from './dead-letter.ts'
import { DeadLetterWriter } from './dead-letter-writer.ts'
import { Delivery, type DeliveryHost, type DropReason, Envelope } from './envelope.ts'
import { type FanOut, fanOut } from './fan-out.ts'
import type { Feed } from './feed.ts'
import { nodeIds } from './graph.ts'
import { type HeldSink, HeldSinks } from './held-sinks.ts'
import { InFlightWindow } from './in-flight-window.ts'
import { type NodeCounts, PassCounter, WriterCounter } from './node-counters.ts'
import { PullLoop } from './pull-loop.ts'
import type { BranchContext, BranchCounters, Topology } from './topology.ts'

/** Hooks for metrics, tracing and status output. All optional; none may throw. */
export interface RuntimeObserver {
  consumed?(message: SourceMessage, size: number): void
  /** A message is done (every branch acked or dead-lettered): seconds from receipt. */
  processed?(delivery: Delivery, seconds: number): void
  deadLettered?(stage: string, error: unknown): void
  dropped?(reason: DropReason, stage: string): void
  batchWritten?(branch: string, count: number, bytes: number, seconds: number): void
  sinkRetry?(branch: string, error: unknown, attempt: number, delayMs: number): void
  committed?(requests: readonly CommitRequest[], seconds: number): void
  commitFailed?(error: unknown): void
  lag?(lag: ReadonlyMap<string, readonly bigint[]>): void
  /** The trace context a message is processed in (e.g. a consume span that is a child of its headers' context). */
  contextFor?(message: SourceMessage): Context
  /** Wraps each sink write (e.g. in a span linked to the batch's messages). */
  aroundWrite?<R>(branch: string, batch: readonly Envelope<unknown>[], write: () => Promise<R>): Promise<R>
  /** Wraps each offset commit. */
  aroundCommit?(commit: () => Promise<void>): Promise<void>
}

export interface RuntimeOptions {
  observer?: RuntimeObserver
  logger?: Logger
  /** Stop (exit 0) once assigned, nothing in flight, everything committed and no message for this long, ms. */
  untilIdleMs?: number
  /** A branch retrying the same error this long (ms, default 60 s) is reported as held (stats().sinksHeld). */
  heldAfterMs?: number
  /**
   * A shadow run: the source consumes under a group of its own (`Source.shadow`), every sink runs dry
   * (SinkContext.dryRun) and dead letters are counted, not written. Refused (FatalError) when the source has no
   * group or a sink cannot run dry. What the sinks would have done: stats().shadow.
   */
  shadow?: boolean
}

interface ShadowState {
  readonly group: ShadowGroup
  readonly branches: Record<string, Record<string, number>>
  readonly deadLetters: Record<string, number>
}

/** What a shadow run would have done so far: per branch, the counts its sink reported; dead letters by stage. */
export interface ShadowReport {
  readonly groupId: string
  readonly realGroupId: string
  readonly branches: Record<string, Record<string, number>>
  readonly deadLetters: Record<string, number>
}

export const StopReasons = {
  SIGNAL: 'signal',
  IDLE: 'idle',
  SOURCE_ENDED: 'source-ended',
  FATAL: 'fatal'
} as const
export type StopReason = (typeof StopReasons)[keyof typeof StopReasons]

/** The source lost its broker and is reconnecting: how long so far, how many attempts, and the last error. */
export interface SourceHold {
  heldMs: number
  attempts: number
  reason: string
}

export interface RuntimeStats {
  consumed: number
  done: number
  deadLettered: number
  dropped: number
  inFlight: number
  inFlightBytes: number
  lag: bigint | undefined
  commits: number
  commitErrors: number
  sinkRetries: number
  /** Outages the source rode through (each ended with a reconnection). */
  sourceReconnects: number
  /** Set while the source holds, reconnecting (nothing is lost or skipped meanwhile). */
  sourceHeld: SourceHold | undefined
  assigned: readonly TopicPartition[]
  /** Sink branches retrying the same error for longer than `heldAfterMs`. */
  sinksHeld: HeldSink[]
  /** In a shadow run: what it would have done so far. */
  shadow?: ShadowReport
}

export interface RunSummary extends RuntimeStats {
  reason: StopReason
  committedOffsets: Map<string, bigint>
}

/**
 * Runs a topology: pulls from the source while the in-flight window has room, pushes each message through the
 * shared pipeline and fans it out to every branch, dead-letters poison, and commits per partition only what every
 * branch made durable. See docs/ARCHITECTURE.md for the guarantees.
 */
export class Runtime implements DeliveryHost {
  readonly topology: Topology<unknown>
  readonly #observer: RuntimeObserver
  readonly #log: Logger
  readonly #window: InFlightWindow
  readonly #coordinator: CommitCoordinator
  readonly #pull = new AbortController()
  readonly #sinks = new AbortController()
  readonly #untilIdleMs: number | undefined
  readonly #held: HeldSinks
  /** Set in a shadow run: its groups, and the counts the dry sinks and the counted dead letters add up to. */
  readonly #shadow: ShadowState | undefined
  #stopReason: StopReason | undefined
  #fatal: unknown
  #lastMessageAt = performance.now()
  readonly #puller: PullLoop
  readonly #deadLetters: DeadLetterWriter
  #assignedOnce = false
  #assigned: readonly TopicPartition[] = []
  #lag: ReadonlyMap<string, readonly bigint[]> | undefined
  /** The source's current outage: since when (performance.now()), attempts so far, last error. */
  #sourceHeld: { since: number; attempts: number; error: unknown } | undefined
  /** Per graph node: what each operator passed on; per branch: its batching and writer (nodeCounts()). */
  readonly #passed = new Map<string, PassCounter>()
  readonly #branchCounters = new Map<string, BranchCounters>()
  readonly #stats = {
    consumed: 0,
    done: 0,
    deadLettered: 0,
    dropped: 0,
    commits: 0,
    commitErrors: 0,
    sinkRetries: 0,
    sourceReconnects: 0
  }

  constructor(topology: Topology<unknown>, options: RuntimeOptions = {}) {
    this.topology = topology
    this.#observer = options.observer ?? {}
    this.#log = options.logger ?? createLogger(topology.name)
    this.#untilIdleMs = options.untilIdleMs
    this.#held = new HeldSinks(options.heldAfterMs)
    const s = topology.settings
    this.#window = new InFlightWindow({ maxMessages: s.maxInFlight, maxBytes: s.maxInFlightBytes })
    const commit = (requests: readonly CommitRequest[]) => topology.source.commit(requests)
    const around = this.#observer.aroundCommit?.bind(this.#observer)
    this.#coordinator = new CommitCoordinator(around ? (r) => around(() => commit(r)) : commit, {
      committed: (requests, seconds) => {
        this.#stats.commits++
        this.#observer.committed?.(requests, seconds)
      },
      commitFailed: (error) => {
        this.#stats.commitErrors++
        this.#log.warn(`commit failed (will retry): ${errorMessage(error)}`)
        this.#observer.commitFailed?.(error)
      }
    })
    this.#puller = new PullLoop(topology.source, this.#window)
    const dlqHooks = {
      written: (delivery: Delivery) => {
        this.#stats.deadLettered++
        delivery.settle()
      },
      fatal: (error: unknown) => this.#fail(error)
    }
    this.#shadow = options.shadow ? this.#startShadow() : undefined
    const deadLetter = this.#shadow ? this.#countedDeadLetters(this.#shadow.deadLetters) : topology.deadLetter
    this.#deadLetters = new DeadLetterWriter(deadLetter, s.backoff, this.#sinks.signal, dlqHooks, this.#log)
  }

  /** The shadow run's groups; refuses a source without a group and sinks that cannot run dry. */
  #startShadow(): ShadowState {
    const { source, branches } = this.topology
    const dry = Object.entries(branches).filter(([, b]) => b.sink.dryRun !== true)
    if (dry.length > 0) {
      throw new FatalError(
        `--shadow: ${dry.map(([name, b]) => `branch ${name} (${b.sink.kind} sink)`).join(', ')} cannot run dry, so a ` +
          'shadow run would write for real: run it without --shadow, or give the sink a dry run (Sink.dryRun)',
        { code: ErrorCodes.CONFIG }
      )
    }
    if (source.shadow === undefined) {
      throw new FatalError(`--shadow: the ${source.kind} source has no consumer group to shadow`, {
        code: ErrorCodes.CONFIG
      })
    }
    const branchCounts: Record<string, Record<string, number>> = {}
    for (const name of Object.keys(branches)) branchCounts[name] = {}
    return { group: source.shadow(), branches: branchCounts, deadLetters: {} }
  }

  /** Dead letters of a shadow run: counted by stage, never written. */
  #countedDeadLetters(counts: Record<string, number>): DeadLetterTarget {
    return {
      description: 'counted, not written (shadow run)',
      async write(letters) {
        for (const letter of letters) {
          const stage = letter.headers.get(DeadLetterHeaders.STAGE)?.toString() ?? 'unknown'
          counts[stage] = (counts[stage] ?? 0) + 1
        }
      }
    }
  }

  /** In a shadow run: the group it consumes with and the real one it leaves alone. */
  get shadowGroup(): ShadowGroup | undefined {
    return this.#shadow?.group
  }

  stats(): RuntimeStats {
    let lag: bigint | undefined
    if (this.#lag) {
      lag = 0n
      for (const p of this.#assigned) {
        const v = this.#lag.get(p.topic)?.[p.partition]
        if (v !== undefined && v > 0n) lag += v
      }
    }
    const held = this.#sourceHeld
    return {
      ...this.#stats,
      inFlight: this.#inFlight(),
      inFlightBytes: this.#window.bytes,
      lag,
      sourceHeld: held && {
        heldMs: Math.round(performance.now() - held.since),
        attempts: held.attempts,
        reason: errorMessage(held.error)
      },
      assigned: this.#assigned,
      sinksHeld: this.#held.held(),
      ...(this.#shadow
        ? {
            shadow: {
              groupId: this.#shadow.group.groupId,
              realGroupId: this.#shadow.group.realGroupId,
              branches: structuredClone(this.#shadow.branches),
              deadLetters: { ...this.#shadow.deadLetters }
            }
          }
        : {})
    }
  }

  /**
   * The per-node counts of the topology graph (graph.ts ids): items each operator passed on, and per branch the
   * items batched, handed to the writer, settled and being written. The console turns them into rates and
   * in-flight counts.
   */
  nodeCounts(): NodeCounts {
    const passed: Record<string, number> = {}
    for (const [id, c] of this.#passed) passed[id] = c.passed
    const branches: Record<string, NodeCounts['branches'][string]> = {}
    for (const [name, b] of this.#branchCounters) {
      const w = b.writer
      branches[name] = { batched: b.batched.passed, received: w.received, settled: w.settled, writing: w.writing }
    }
    return { passed, branches }
  }

  #passCounter(id: string): PassCounter {
    let counter = this.#passed.get(id)
    if (!counter) {
      counter = new PassCounter()
      this.#passed.set(id, counter)
    }
    return counter
  }

  #countersOf(branch: string): BranchCounters {
    let counters = this.#branchCounters.get(branch)
    if (!counters) {
      counters = {
        operator: (index) => this.#passCounter(nodeIds.branchOperator(branch, index)),
        batched: new PassCounter(),
        writer: new WriterCounter()
      }
      this.#branchCounters.set(branch, counters)
    }
    return counters
  }

  /** Seconds each failing branch has retried its current error (for the sfm_sink_held_seconds gauge). */
  heldSeconds(): Map<string, number> {
    return this.#held.seconds()
  }

  #inFlight(): number {
    return this.#window.messages - this.#puller.reserved
  }

  /** Asks the runtime to stop: stop pulling, drain in-flight work (up to drainTimeoutMs), commit, close. */
  stop(reason: StopReason = StopReasons.SIGNAL): void {
    this.#stopReason ??= reason
    this.#pull.abort()
  }

  // --- DeliveryHost --------------------------------------------------------------------------------------------

  done(delivery: Delivery): void {
    this.#window.release(delivery.size)
    this.#coordinator.done(delivery.origin)
    this.#stats.done++
    this.#observer.processed?.(delivery, (performance.now() - delivery.receivedAt) / 1000)
  }

  deadLetter(delivery: Delivery, error: unknown, stage: string): void {
    const letter = buildDeadLetter(delivery, error, stage, this.topology.name)
    this.#log.debug(
      `dead-lettering ${delivery.origin.topic}:${delivery.origin.partition}@${delivery.origin.offset} at ${stage}: ${errorMessage(error)}`
    )
    this.#observer.deadLettered?.(stage, error)
    this.#deadLetters.write(delivery, letter)
  }

  dropped(_delivery: Delivery, reason: DropReason, stage: string): void {
    this.#stats.dropped++
    this.#observer.dropped?.(reason, stage)
  }

  #fail(error: unknown): void {
    if (this.#fatal === undefined) {
      this.#fatal = error
      this.#log.error(`fatal: ${errorMessage(error)}`)
    }
    this.stop(StopReasons.FATAL)
  }

  // --- running -------------------------------------------------------------------------------------------------

  /**
   * Runs until stopped: open the sinks, wire the operators, open the source, pull until stopped, drain, commit and
   * close. Resolves with a summary; rejects with the fatal error if one stopped it.
   */
  async run(): Promise<RunSummary> {
    await this.#openSinks()
    const wired = fanOut(
      this.topology,
      (name) => this.#branchContext(name),
      (index) => this.#passCounter(nodeIds.operator(index))
    )
    const graph = wired.done.catch((error) => this.#fail(error))
    await this.#openSource()
    const idle = this.#watchIdle()
    try {
      await this.#puller.run(this.#pull.signal, (message) => this.#accept(wired.input, message))
    } catch (error) {
      this.#fail(error)
    }
    this.#stopReason ??= StopReasons.SOURCE_ENDED
    if (idle) clearInterval(idle)
    await this.#drain(wired, graph)
    return this.#finish()
  }

  /** What a branch gets from the runtime: the shutdown signal, the backoff, and its write outcomes reported here. */
  #branchContext(name: string): BranchContext {
    return {
      topology: this.topology.name,
      branch: name,
      signal: this.#sinks.signal,
      backoff: this.topology.settings.backoff,
      ...(this.#shadow ? { dryRun: true } : {}),
      aroundWrite: this.#shadow
        ? this.#countingWrites(this.#shadow.branches)
        : this.#observer.aroundWrite?.bind(this.#observer),
      counters: this.#countersOf(name),
      observer: {
        written: (branch: string, count: number, bytes: number, seconds: number) =>
          this.#observer.batchWritten?.(branch, count, bytes, seconds),
        progressed: (branch: string) => this.#held.progressed(branch),
        retrying: (branch: string, error: unknown, attempt: number, delayMs: number) => {
          this.#stats.sinkRetries++
          this.#held.failed(branch, errorMessage(error))
          if (attempt === 1 || attempt % 10 === 0) {
            this.#log.warn(`sink ${branch}: write failed (attempt ${attempt}), retrying: ${errorMessage(error)}`)
          }
          this.#observer.sinkRetry?.(branch, error, attempt, delayMs)
        },
        fatal: (branch: string, error: unknown) =>
          this.#fail(new Error(`sink ${branch}: ${errorMessage(error)}`, { cause: error }))
      }
    }
  }

  /** A shadow run's write hook: the observer's, then the dry run's counts added to the branch's. */
  #countingWrites(counts: Record<string, Record<string, number>>): BranchContext['aroundWrite'] {
    const around = this.#observer.aroundWrite?.bind(this.#observer)
    return async <R>(branch: string, batch: readonly Envelope<unknown>[], write: () => Promise<R>): Promise<R> => {
      const result = around ? await around(branch, batch, write) : await write()
      const dry = (result as WriteResult | undefined)?.dryRun
      if (dry) {
        const into = counts[branch] ?? {}
        counts[branch] = into
        for (const [name, n] of Object.entries(dry)) into[name] = (into[name] ?? 0) + n
      }
      return result
    }
  }

  /** Opens every sink and the DLQ before consuming, so configuration errors surface before any offset moves. */
  async #openSinks(): Promise<void> {
    for (const [name, b] of Object.entries(this.topology.branches)) await b.sink.open?.(this.#branchContext(name))
    // A shadow run counts its dead letters instead (#countedDeadLetters): the real target is not opened.
    if (!this.#shadow) await this.topology.deadLetter.open?.()
  }

  /** Opens the source (assignment, lag and outages reported here) and starts the periodic commit. */
  async #openSource(): Promise<void> {
    const { source, settings } = this.topology
    // Keep what the consumer buffers ahead within the window, so buffered + in flight stays bounded.
    source.limitBuffer?.(settings.maxInFlight)
    await source.open(this.#sourceListener())
    this.#coordinator.start(settings.commitIntervalMs)
  }

  /** What the source reports: rebalances and assignments (commits), lag, and a lost broker held through. */
  #sourceListener(): SourceListener {
    return {
      rebalancing: () => {
        this.#coordinator.commitNow().catch(() => {})
      },
      assigned: (partitions) => {
        this.#assignedOnce = true
        this.#assigned = partitions
        this.#log.info(`assigned ${partitions.length} partition(s): ${describePartitions(partitions)}`)
        this.#coordinator.assigned(partitions).catch(() => {})
      },
      lag: (lag) => {
        this.#lag = lag
        this.#observer.lag?.(lag)
      },
      reconnecting: (error, attempt, delayMs) => {
        const since = this.#sourceHeld?.since ?? performance.now()
        this.#sourceHeld = { since, attempts: attempt, error }
        if (attempt === 1 || attempt % 10 === 0) {
          this.#log.warn(
            `source: ${attempt === 1 ? 'lost the broker' : `still reconnecting (attempt ${attempt})`}, holding; ` +
              `next attempt in ${delayMs} ms: ${describeError(error, 3)}`
          )
        }
      },
      reconnected: (heldMs, attempts) => {
        this.#sourceHeld = undefined
        this.#stats.sourceReconnects++
        this.#log.info(
          `source: reconnected after ${(heldMs / 1000).toFixed(1)} s (${attempts} attempt${attempts === 1 ? '' : 's'}); ` +
            'reading on from the committed offsets'
        )
      }
    }
  }

  /** One pulled message (its permit taken) into the topology. */
  #accept(input: Feed<Envelope<Buffer>>, message: SourceMessage): void {
    const now = performance.now()
    this.#lastMessageAt = now
    const delivery = new Delivery(this, {
      origin: message.origin,
      key: message.key,
      raw: message.value,
      headers: message.headers,
      context: this.#observer.contextFor?.(message) ?? ROOT_CONTEXT,
      receivedAt: now
    })
    this.#window.addBytes(delivery.size)
    this.#coordinator.track(message.origin)
    this.#stats.consumed++
    this.#observer.consumed?.(message, delivery.size)
    input.next(new Envelope(delivery, message.value))
  }

  /**
   * No more input: let batches flush and in-flight messages finish, up to the drain timeout (none after a fatal
   * error); then abort the sinks' retries, so what is still open is abandoned (not committed).
   */
  async #drain(wired: FanOut, graph: Promise<void>): Promise<void> {
    wired.input.complete()
    const drainMs = this.#fatal === undefined ? this.topology.settings.drainTimeoutMs : 0
    const drained = await raceTimeout(this.#window.drained(), drainMs)
    if (!drained) {
      this.#log.warn(
        `shutdown: ${this.#inFlight()} message(s) still in flight after ${drainMs} ms: abandoned, not committed`
      )
    }
    this.#sinks.abort()
    await raceTimeout(graph, 1_000)
    wired.unsubscribe()
  }

  /** Commits what is done, closes the source and the sinks, and reports (or throws the fatal error). */
  async #finish(): Promise<RunSummary> {
    this.#coordinator.stop()
    try {
      await this.#coordinator.commitNow()
    } catch (error) {
      this.#log.warn(`final commit failed: ${errorMessage(error)}`)
    }
    const committedOffsets = this.#coordinator.committedOffsets()
    await this.#closeAll()
    if (this.#fatal !== undefined) throw this.#fatal
    const reason = this.#stopReason ?? StopReasons.SIGNAL
    // The client measures lag on an interval: at the end the last figure is stale. Idle means caught up (nothing
    // arrived for the idle period and everything is committed); otherwise the lag is not known.
    return { ...this.stats(), lag: reason === StopReasons.IDLE ? 0n : undefined, reason, committedOffsets }
  }

  #watchIdle(): ReturnType<typeof setInterval> | undefined {
    const idleMs = this.#untilIdleMs
    if (idleMs === undefined) return undefined
    const timer = setInterval(
      () => {
        if (!this.#assignedOnce || this.#inFlight() > 0) return
        if (performance.now() - this.#lastMessageAt < idleMs) return
        if (!this.#coordinator.settled) {
          this.#coordinator.commitNow().catch(() => {})
          return
        }
        this.stop(StopReasons.IDLE)
      },
      Math.min(250, idleMs)
    )
    return timer
  }

  async #closeAll(): Promise<void> {
    const closers: Array<Promise<void> | undefined> = [this.topology.source.close()]
    for (const b of Object.values(this.topology.branches)) closers.push(b.sink.close?.())
    closers.push(this.topology.deadLetter.close?.())
    const results = await Promise.allSettled(closers)
    for (const r of results) if (r.status === 'rejected') this.#log.warn(`close failed: ${errorMessage(r.reason)}`)
  }
}

/** Waits for `promise` at most `ms`; true if it settled in time. Leaves no timer behind. */
async function raceTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = new AbortController()
  try {
    return await Promise.race([promise.then(() => true), sleep(ms, timer.signal).then(() => false)])
  } finally {
    timer.abort()
  }
}

function describePartitions(partitions: readonly TopicPartition[]): string {
  const byTopic = new Map<string, number[]>()
  for (const p of partitions) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), p.partition])
  return [...byTopic].map(([t, ps]) => `${t}[${ps.sort((a, b) => a - b).join(',')}]`).join(' ') || 'none'
}
