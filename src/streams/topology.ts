import { identity, type Observable, type OperatorFunction } from 'rxjs'
import { ErrorCodes, FatalError } from '../errors.ts'
import type { Sink, SinkContext } from '../sinks/types.ts'
import type { Source } from '../sources/types.ts'
import type { BackoffOptions } from './backoff.ts'
import type { DeadLetterTarget } from './dead-letter.ts'
import { type OperatorInfo, operatorInfos } from './describe.ts'
import type { Envelope } from './envelope.ts'
import { countedPipeline, counting, type PassCounter, type WriterCounter } from './node-counters.ts'
import { BatchFlushModes, type BatchOptions, batch, resolveBatchOptions } from './operators/batch.ts'
import { type BatchReport, type WriteObserver, writeBatches } from './write-batches.ts'
import { WriteGate } from './write-gate.ts'

export interface RuntimeSettings {
  /** Messages in flight across the topology (pulled from the source, not yet done). */
  maxInFlight: number
  /** Bytes in flight (wire size of the source messages). */
  maxInFlightBytes: number
  /** How often committable offsets are committed, ms. */
  commitIntervalMs: number
  /** On shutdown, how long in-flight work may take to finish before it is abandoned (uncommitted), ms. */
  drainTimeoutMs: number
  /** Backoff of sink writes and dead-letter writes. */
  backoff: BackoffOptions
}

export const defaultRuntimeSettings = {
  maxInFlight: 10_000,
  maxInFlightBytes: 64 * 1024 * 1024,
  commitIntervalMs: 1_000,
  drainTimeoutMs: 30_000,
  backoff: { initialDelayMs: 100, maxDelayMs: 10_000, multiplier: 2, maxAttempts: Number.POSITIVE_INFINITY }
} satisfies RuntimeSettings

/** What the runtime gives a branch when it wires it up. */
export interface BranchContext extends SinkContext {
  readonly observer: WriteObserver
  readonly backoff: BackoffOptions
  /** Wraps each sink write (tracing). */
  readonly aroundWrite?: <R>(branch: string, batch: readonly Envelope<unknown>[], write: () => Promise<R>) => Promise<R>
  /** Where the branch counts for the graph's figures: after each of its operators, into its batching, its writer. */
  readonly counters?: BranchCounters
}

export interface BranchCounters {
  /** The counter of the branch's i-th operator node (`branch:<name>:op:<i>`). */
  operator(index: number): PassCounter
  /** Items reaching the batching. */
  readonly batched: PassCounter
  readonly writer: WriterCounter
}

/**
 * One sink branch of a topology: its own operators, batching, and sink. The sink's element type is hidden behind
 * `connect`, so branches with different sinks can sit in one record.
 */
export interface Branch<T> {
  readonly sink: Pick<Sink<never>, 'kind' | 'open' | 'close' | 'dryRun'>
  /** What the branch does before its sink, for the topology graph. */
  readonly info?: BranchInfo
  connect(input: Observable<Envelope<T>>, context: BranchContext): Observable<BatchReport>
}

export interface BranchInfo {
  /** The branch's own operators (see `pipeline` in describe.ts); empty when it has none. */
  readonly operators: readonly OperatorInfo[]
  readonly batch: Required<BatchOptions>
  readonly maxInFlightBatches: number
}

export interface BranchOptions<T, U> {
  /** Operators between the shared pipeline and the sink (map to rows, keep only some messages…). */
  pipeline?: OperatorFunction<Envelope<T>, Envelope<U>>
  /** Batching before the sink (per partition; count, bytes, wait; `flush: 'when-idle'` for group commit). */
  batch?: BatchOptions
  /** Batches written at once across partitions. */
  maxInFlightBatches?: number
}

export function branch<T, U = T>(sink: Sink<U>, options: BranchOptions<T, U> = {}): Branch<T> {
  const batchOptions = resolveBatchOptions(options.batch)
  const pipeline = options.pipeline ?? (identity as unknown as OperatorFunction<Envelope<T>, Envelope<U>>)
  const maxInFlightBatches = options.maxInFlightBatches ?? 4
  const info: BranchInfo = {
    operators: options.pipeline ? (operatorInfos(options.pipeline) ?? [{ name: 'pipeline' }]) : [],
    batch: batchOptions,
    maxInFlightBatches
  }
  return {
    sink,
    info,
    connect(input, context) {
      // when-idle: the writer tells the batch operator which partitions it could start at once (a gate per run).
      const gate = batchOptions.flush === BatchFlushModes.WHEN_IDLE ? new WriteGate(maxInFlightBatches) : undefined
      const counters = context.counters
      const writeOptions = {
        maxInFlightBatches,
        backoff: context.backoff,
        ...(gate ? { gate } : {}),
        ...(counters ? { counter: counters.writer } : {})
      }
      const write = writeBatches(traced(sink, context), context, writeOptions, context.observer)
      if (!counters) return input.pipe(pipeline, batch<U>(batchOptions, gate), write)
      const counted = options.pipeline ? countedPipeline(options.pipeline, (i) => counters.operator(i)) : pipeline
      return input.pipe(counted, counting(counters.batched), batch<U>(batchOptions, gate), write)
    }
  }
}

/** The sink with each write wrapped by the runtime's `aroundWrite` hook, when there is one. */
function traced<U>(sink: Sink<U>, context: BranchContext): Sink<U> {
  const around = context.aroundWrite
  if (!around) return sink
  // Only `write` is used from the wrapper; the runtime opens and closes the sink itself.
  return { kind: sink.kind, write: (batch, ctx) => around(ctx.branch, batch, () => sink.write(batch, ctx)) }
}

export interface TopologyDefinition<T> {
  /** Used in metrics, dead letters and logs. */
  name: string
  source: Source
  /** Operators every message goes through before the fan-out to the branches. */
  pipeline?: OperatorFunction<Envelope<Buffer>, Envelope<T>>
  /** Named sink branches; each message is done when every branch acked it (or the DLQ holds it). */
  branches: Record<string, Branch<T>>
  /** Where poison messages go. */
  deadLetter: DeadLetterTarget
  settings?: Partial<RuntimeSettings>
}

export interface Topology<T = unknown> extends Readonly<Omit<TopologyDefinition<T>, 'settings'>> {
  readonly settings: RuntimeSettings
  readonly kind: 'sfm-topology'
}

/** Checks a topology definition and fills in default settings. */
export function defineTopology<T>(definition: TopologyDefinition<T>): Topology<T> {
  const problems: string[] = []
  if (!definition || typeof definition !== 'object') throw new FatalError('a topology must be an object')
  if (!definition.name || !/^[A-Za-z0-9._-]+$/.test(definition.name)) problems.push('name must match [A-Za-z0-9._-]+')
  if (!definition.source || typeof definition.source.next !== 'function') problems.push('source must be a Source')
  const names = Object.keys(definition.branches ?? {})
  if (names.length === 0) problems.push('branches must name at least one sink branch')
  for (const n of names) {
    if (typeof definition.branches[n]?.connect !== 'function') problems.push(`branch "${n}" must be made with branch()`)
  }
  if (!definition.deadLetter || typeof definition.deadLetter.write !== 'function') {
    problems.push('deadLetter must be a dead-letter target (e.g. kafkaDeadLetter({ topic: "memory.dlq" }))')
  }
  const settings: RuntimeSettings = { ...defaultRuntimeSettings, ...definition.settings }
  if (!Number.isInteger(settings.maxInFlight) || settings.maxInFlight < 1) problems.push('maxInFlight must be > 0')
  if (!(settings.maxInFlightBytes > 0)) problems.push('maxInFlightBytes must be > 0')
  if (!(settings.commitIntervalMs >= 10)) problems.push('commitIntervalMs must be ≥ 10')
  if (!(settings.drainTimeoutMs >= 0)) problems.push('drainTimeoutMs must be ≥ 0')
  if (problems.length > 0) {
    throw new FatalError(`invalid topology "${definition.name}": ${problems.join('; ')}`, { code: ErrorCodes.CONFIG })
  }
  return { ...definition, settings, kind: 'sfm-topology' }
}

export function isTopology(value: unknown): value is Topology<unknown> {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'sfm-topology'
}
