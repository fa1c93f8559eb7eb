import { errorClassOf } from '../streams/dead-letter.ts'
import type { DropReason } from '../streams/envelope.ts'
import { type TopologyGraph, topologyGraph } from '../streams/graph.ts'
import type { NodeCounts } from '../streams/node-counters.ts'
import type { RuntimeObserver, RuntimeStats } from '../streams/runtime.ts'
import type { Topology } from '../streams/topology.ts'

/** One point of the charts: cumulative counters and the lag per partition (`topic[partition]`) at `t` (epoch ms). */
export interface Sample {
  readonly t: number
  readonly consumed: number
  readonly done: number
  readonly deadLettered: number
  readonly commits: number
  readonly inFlight: number
  readonly lag: Record<string, number>
}

interface BranchCounters {
  written: number
  batches: number
  retries: number
  lastWriteAt: number
  lastRetry: { at: number; attempt: number; delayMs: number; error: string } | undefined
}

/** What the console shows on a node: rate (per second over the last samples), in flight, errors, held. */
export interface NodeStats {
  /** Items per second it passed on (a sink: settled), over the last ~5 s. */
  rate?: number
  /** Items inside it: taken in and not yet passed on, dropped or dead-lettered (a sink: handed to it, not settled). */
  inFlight?: number
  /** A sink: items in a write call right now (the rest of its in-flight items wait behind a partition's batch). */
  writing?: number
  deadLettered?: number
  dropped?: number
  retries?: number
  /** Held, as the runtime reports it (the same error retried past its threshold, SFM_HELD_AFTER_SECONDS). */
  held?: string
  /** Its last write failed and is being retried (not yet held). */
  retrying?: string
}

export interface ConsoleStats {
  readonly at: number
  readonly runtime: Omit<RuntimeStats, 'lag' | 'assigned'> & { lag: number | null; assigned: string[] }
  readonly nodes: Record<string, NodeStats>
  readonly deadLetteredByStage: Record<string, Record<string, number>>
}

/**
 * Records what the console shows: a RuntimeObserver (dead letters and drops per stage, writes and retries per
 * branch, the lag per partition) plus a sample of the runtime's `stats()` every `intervalMs`, the last `keep`.
 */
export class ConsoleRecorder implements RuntimeObserver {
  readonly graph: TopologyGraph
  readonly #stats: () => RuntimeStats
  readonly #samples: Sample[] = []
  readonly #keep: number
  readonly #deadByStage = new Map<string, Map<string, number>>()
  readonly #dropsByStage = new Map<string, number>()
  readonly #branches = new Map<string, BranchCounters>()
  readonly #nodes: (() => NodeCounts) | undefined
  readonly #upstream = new Map<string, string>()
  /** The node counts at each of the last samples (for the per-node rates). */
  readonly #nodeSamples: Array<{ t: number; consumed: number; counts: NodeCounts }> = []
  #lag: Record<string, number> = {}
  #timer: NodeJS.Timeout | undefined

  constructor(
    topology: Topology<unknown>,
    stats: () => RuntimeStats,
    options: { intervalMs?: number; keep?: number; nodes?: () => NodeCounts } = {}
  ) {
    this.graph = topologyGraph(topology)
    this.#stats = stats
    this.#nodes = options.nodes
    // Each operator's upstream operator (none: the source feeds it), from the graph's flow edges.
    const operators = new Set(this.graph.nodes.filter((n) => n.kind === 'operator').map((n) => n.id))
    for (const e of this.graph.edges) if (operators.has(e.to) && operators.has(e.from)) this.#upstream.set(e.to, e.from)
    this.#keep = options.keep ?? 600
    for (const name of Object.keys(topology.branches)) {
      this.#branches.set(name, { written: 0, batches: 0, retries: 0, lastWriteAt: 0, lastRetry: undefined })
    }
    this.#timer = setInterval(() => this.sample(), options.intervalMs ?? 1000)
    this.#timer.unref()
  }

  // --- RuntimeObserver ---------------------------------------------------------------------------------------

  deadLettered(stage: string, error: unknown): void {
    const classes = this.#deadByStage.get(stage) ?? new Map<string, number>()
    this.#deadByStage.set(stage, classes)
    const name = errorClassOf(error)
    classes.set(name, (classes.get(name) ?? 0) + 1)
  }

  dropped(_reason: DropReason, stage: string): void {
    this.#dropsByStage.set(stage, (this.#dropsByStage.get(stage) ?? 0) + 1)
  }

  batchWritten(branch: string, count: number): void {
    const b = this.#branch(branch)
    b.written += count
    b.batches++
    b.lastWriteAt = Date.now()
  }

  sinkRetry(branch: string, error: unknown, attempt: number, delayMs: number): void {
    const b = this.#branch(branch)
    b.retries++
    b.lastRetry = { at: Date.now(), attempt, delayMs, error: error instanceof Error ? error.message : String(error) }
  }

  lag(lag: ReadonlyMap<string, readonly bigint[]>): void {
    const out: Record<string, number> = {}
    for (const [topic, partitions] of lag) {
      partitions.forEach((l, p) => {
        out[`${topic}[${p}]`] = Number(l)
      })
    }
    this.#lag = out
  }

  // --- reading -----------------------------------------------------------------------------------------------

  sample(): Sample {
    const s = this.#stats()
    const sample: Sample = {
      t: Date.now(),
      consumed: s.consumed,
      done: s.done,
      deadLettered: s.deadLettered,
      commits: s.commits,
      inFlight: s.inFlight,
      lag: { ...this.#lag }
    }
    this.#samples.push(sample)
    if (this.#samples.length > this.#keep) this.#samples.splice(0, this.#samples.length - this.#keep)
    if (this.#nodes) {
      this.#nodeSamples.push({ t: sample.t, consumed: s.consumed, counts: this.#nodes() })
      if (this.#nodeSamples.length > 6) this.#nodeSamples.shift()
    }
    return sample
  }

  history(): readonly Sample[] {
    return this.#samples
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
  }

  #branch(name: string): BranchCounters {
    let b = this.#branches.get(name)
    if (!b) {
      b = { written: 0, batches: 0, retries: 0, lastWriteAt: 0, lastRetry: undefined }
      this.#branches.set(name, b)
    }
    return b
  }

  /** The live figures of every node of the graph. Rates are over the last ~5 s of samples. */
  stats(): ConsoleStats {
    const s = this.#stats()
    const now = Date.now()
    const past = this.#samples.at(-6) ?? this.#samples[0]
    const seconds = past ? Math.max((now - past.t) / 1000, 0.001) : 0
    const consumedRate = past ? (s.consumed - past.consumed) / seconds : 0
    const nodes: Record<string, NodeStats> = {}
    const held = s.sourceHeld
    nodes.source = {
      rate: consumedRate,
      inFlight: s.inFlight,
      ...(held
        ? { held: `reconnecting for ${Math.round(held.heldMs / 1000)} s (attempt ${held.attempts}): ${held.reason}` }
        : {})
    }
    // Per-node figures from the runtime's counts: rates against the sample ~5 s ago, in flight from now's counts.
    const counts = this.#nodes?.()
    const nodePast = this.#nodeSamples.at(-6) ?? this.#nodeSamples[0]
    const nodeSeconds = nodePast ? Math.max((now - nodePast.t) / 1000, 0.001) : 0
    const rateOf = (value: (c: NodeCounts) => number) =>
      counts && nodePast ? Math.max(0, (value(counts) - value(nodePast.counts)) / nodeSeconds) : 0
    const upstream = this.#upstream
    const flow =
      counts &&
      ((id: string, settledHere: number): NodeStats => {
        const before = upstream.get(id)
        const taken = before === undefined ? s.consumed : (counts.passed[before] ?? 0)
        const passed = counts.passed[id] ?? 0
        return {
          rate: rateOf((c) => c.passed[id] ?? 0),
          // What it took in and has not passed on, dropped or dead-lettered: items an async step holds.
          inFlight: Math.max(0, taken - passed - settledHere)
        }
      })
    const deadAt = (stage: string | undefined) =>
      stage === undefined ? 0 : [...(this.#deadByStage.get(stage)?.values() ?? [])].reduce((a, b) => a + b, 0)
    for (const node of this.graph.nodes) {
      if (node.kind === 'operator') {
        const dropped = node.stage === undefined ? 0 : (this.#dropsByStage.get(node.stage) ?? 0)
        nodes[node.id] = {
          ...flow?.(node.id, deadAt(node.stage) + dropped),
          deadLettered: deadAt(node.stage),
          dropped
        }
      } else if (node.kind === 'batch' && node.branch !== undefined) {
        const b = counts?.branches[node.branch]
        if (b) {
          nodes[node.id] = {
            rate: rateOf((c) => c.branches[node.branch!]?.batched ?? 0),
            inFlight: Math.max(0, b.batched - b.received)
          }
        }
      } else if (node.kind === 'sink' && node.branch !== undefined) {
        const b = this.#branch(node.branch)
        const retry = b.lastRetry
        const held = s.sinksHeld.find((h) => h.branch === node.branch)
        // Retrying: the last write attempt failed and no batch got through since.
        const retrying = retry !== undefined && retry.at > b.lastWriteAt
        const counted = counts?.branches[node.branch]
        nodes[node.id] = {
          ...(counted
            ? {
                rate: rateOf((c) => c.branches[node.branch!]?.settled ?? 0),
                inFlight: counted.received - counted.settled,
                writing: counted.writing
              }
            : { rate: this.#writeRate(node.branch, seconds) }),
          retries: b.retries,
          deadLettered: deadAt(node.branch),
          ...(held ? { held: `${held.error} (for ${Math.round(held.seconds)} s)` } : {}),
          ...(retrying ? { retrying: `attempt ${retry.attempt}: ${retry.error}` } : {})
        }
      }
    }
    nodes.dlq = { deadLettered: s.deadLettered }
    return {
      at: now,
      runtime: {
        ...s,
        lag: s.lag === undefined ? null : Number(s.lag),
        assigned: s.assigned.map((p) => `${p.topic}[${p.partition}]`)
      },
      nodes,
      deadLetteredByStage: Object.fromEntries(
        [...this.#deadByStage].map(([stage, classes]) => [stage, Object.fromEntries(classes)])
      )
    }
  }

  readonly #written = new Map<string, Array<{ t: number; written: number }>>()

  /** Items written per second by a branch, over the window between the last calls (kept per branch). */
  #writeRate(branch: string, _seconds: number): number {
    const b = this.#branch(branch)
    const points = this.#written.get(branch) ?? []
    const now = Date.now()
    points.push({ t: now, written: b.written })
    while (points.length > 2 && now - points[0]!.t > 5000) points.shift()
    this.#written.set(branch, points)
    const first = points[0]!
    const span = (now - first.t) / 1000
    return span > 0 ? (b.written - first.written) / span : 0
  }
}

/** An observer that calls each of `observers` (the first one that defines a wrapping hook provides it). */
export function combineObservers(...observers: RuntimeObserver[]): RuntimeObserver {
  const each =
    <K extends keyof RuntimeObserver>(name: K) =>
    (...args: unknown[]) => {
      for (const o of observers) (o[name] as ((...a: unknown[]) => void) | undefined)?.apply(o, args)
    }
  const first = <K extends 'contextFor' | 'aroundWrite' | 'aroundCommit'>(name: K) => {
    const owner = observers.find((o) => typeof o[name] === 'function')
    return owner ? { [name]: (owner[name] as (...a: unknown[]) => unknown).bind(owner) } : {}
  }
  return {
    consumed: each('consumed'),
    processed: each('processed'),
    deadLettered: each('deadLettered'),
    dropped: each('dropped'),
    batchWritten: each('batchWritten'),
    sinkRetry: each('sinkRetry'),
    committed: each('committed'),
    commitFailed: each('commitFailed'),
    lag: each('lag'),
    ...first('contextFor'),
    ...first('aroundWrite'),
    ...first('aroundCommit')
  } as RuntimeObserver
}
