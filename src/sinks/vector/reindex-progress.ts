import { createLogger, type Logger } from '../../logger.ts'
import type { PartitionSpan } from '../../sources/types.ts'
import type { Origin } from '../../streams/envelope.ts'

/** What a reindex did with the records it read, one count per record. */
export interface ReindexCounts {
  /** Records of memory.latest handled (every other count is a part of it). */
  read: number
  /** Vectors replaced by one of the current revision (same version). */
  reembedded: number
  /** Fill: memories the index did not hold (or held deleted at an older version), inserted. */
  inserted: number
  /** Fill: memories the index held at an older version, replaced by the newer state. */
  updated: number
  /** Fill: live points of memories whose last record is a tombstone, removed. */
  deleted: number
  /** Already made by the current revision: nothing to do. */
  current: number
  /**
   * The index holds a newer version or delete (the memory topology wrote it meanwhile), or the point changed
   * between the lookup and the write (lost the fence).
   */
  newer: number
  /** Not in the index, or deleted there: a reindex without fill never adds or removes memories. */
  absent: number
  /** Tombstones with nothing to do: the memory is not live in the index (without fill: every tombstone). */
  tombstones: number
  /** An older record of the same memory later in the same batch. */
  superseded: number
  /** Nothing to embed (no text, empty payload); the memory topology dead-lettered that upsert already. */
  empty: number
  /** Dead-lettered (malformed, or the embedder refused the text). */
  failed: number
}

export const emptyReindexCounts = (): ReindexCounts => ({
  read: 0,
  reembedded: 0,
  inserted: 0,
  updated: 0,
  deleted: 0,
  current: 0,
  newer: 0,
  absent: 0,
  tombstones: 0,
  superseded: 0,
  empty: 0,
  failed: 0
})

export interface ReindexProgressOptions {
  /** How often a progress line is logged, ms (0: never; the summary is still logged by `stop`). Default 5000. */
  intervalMs?: number
  logger?: Logger
  now?: () => number
  /**
   * A fill pass (SFM_REINDEX_FILL): lines always show inserted, updated, reembedded, deleted and the skipped total
   * (with its reasons). Default false: reembedded and the counts that are not zero.
   */
  fill?: boolean
}

/** The counts of records left as they were, whatever the reason. */
const SKIPPED = [
  'current',
  'newer',
  'absent',
  'tombstones',
  'superseded',
  'empty'
] as const satisfies readonly (keyof ReindexCounts)[]

const slot = (topic: string, partition: number) => `${topic}:${partition}`
const number = new Intl.NumberFormat('en-US')

/**
 * Progress of one reindex pass over memory.latest: records read against the offsets the pass started with
 * (`rewindGroup`'s spans; a compacted topic has gaps, so offsets, not records, measure how far it got), the rate
 * over the last interval, and what became of the records.
 *
 *   reindex: 12,000/50,000 offsets (24.0%) · 940 records/s · ETA 40 s · reembedded 11,800 · current 150 · …
 *
 * and, for a fill pass,
 *
 *   reindex: 12,000/50,000 offsets (24.0%) · 940 records/s · ETA 40 s · inserted 11,500 · updated 0 ·
 *     reembedded 0 · deleted 12 · skipped 488 (newer 3, tombstones 400, superseded 85)
 */
export class ReindexProgress {
  readonly counts: ReindexCounts = emptyReindexCounts()
  readonly #spans: ReadonlyMap<string, PartitionSpan>
  readonly #positions = new Map<string, bigint>()
  readonly #log: Logger
  readonly #intervalMs: number
  readonly #now: () => number
  readonly #fill: boolean
  #timer: ReturnType<typeof setInterval> | undefined
  #startedAt: number
  #last: { at: number; read: number }

  constructor(spans: readonly PartitionSpan[], options: ReindexProgressOptions = {}) {
    this.#spans = new Map(spans.map((s) => [slot(s.topic, s.partition), s]))
    this.#log = options.logger ?? createLogger('reindex')
    this.#intervalMs = options.intervalMs ?? 5_000
    this.#now = options.now ?? (() => performance.now())
    this.#fill = options.fill ?? false
    this.#startedAt = this.#now()
    this.#last = { at: this.#startedAt, read: 0 }
  }

  /** Offsets the pass covers. */
  get total(): bigint {
    let sum = 0n
    for (const s of this.#spans.values()) sum += s.end - s.start
    return sum
  }

  /** Offsets passed so far, within the spans (records appended after the start are read but not counted here). */
  get done(): bigint {
    let sum = 0n
    for (const [key, s] of this.#spans) {
      const position = this.#positions.get(key)
      if (position === undefined) continue
      // Records appended after the pass started are read too, but the pass is measured against its start.
      let until = position
      if (until > s.end) until = s.end
      sum += until - s.start
    }
    return sum
  }

  /** Marks the records of a written batch as handled, with what became of them. */
  record(origins: Iterable<Origin>, counts: Partial<ReindexCounts>): void {
    for (const o of origins) {
      const key = slot(o.topic, o.partition)
      const next = o.offset + 1n
      if ((this.#positions.get(key) ?? -1n) < next) this.#positions.set(key, next)
    }
    for (const [name, n] of Object.entries(counts) as [keyof ReindexCounts, number][]) this.counts[name] += n
  }

  /** One progress line: offsets done / total, rate over the last call, ETA, and the counts that are not zero. */
  line(): string {
    const now = this.#now()
    const seconds = Math.max(1e-3, (now - this.#last.at) / 1000)
    const rate = (this.counts.read - this.#last.read) / seconds
    this.#last = { at: now, read: this.counts.read }
    const total = this.total
    const done = this.done
    const percent = total === 0n ? 100 : Number((done * 10_000n) / total) / 100
    const remaining = Number(total - done)
    const eta = rate > 0 && remaining > 0 ? ` · ETA ${formatSeconds(remaining / rate)}` : ''
    return `reindex: ${number.format(done)}/${number.format(total)} offsets (${percent.toFixed(1)}%) · ${number.format(Math.round(rate))} records/s${eta} · ${this.#describeCounts()}`
  }

  /** The closing line: everything counted, over the whole pass. */
  summary(): string {
    const seconds = Math.max(1e-3, (this.#now() - this.#startedAt) / 1000)
    const rate = Math.round(this.counts.read / seconds)
    return `reindex pass: ${number.format(this.counts.read)} records in ${formatSeconds(seconds)} (${number.format(rate)}/s), ${number.format(this.done)}/${number.format(this.total)} offsets · ${this.#describeCounts()}`
  }

  start(): void {
    if (this.#timer !== undefined || this.#intervalMs <= 0) return
    this.#startedAt = this.#now()
    this.#last = { at: this.#startedAt, read: this.counts.read }
    this.#timer = setInterval(() => this.#log.info(this.line()), this.#intervalMs)
    this.#timer.unref()
  }

  /** Stops the periodic line and logs the summary. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
    this.#log.info(this.summary())
  }

  /** Records left as they were (current, newer, absent, tombstones, superseded, empty). */
  get skipped(): number {
    let sum = 0
    for (const name of SKIPPED) sum += this.counts[name]
    return sum
  }

  #describeCounts(): string {
    if (this.#fill) {
      const c = this.counts
      const reasons = SKIPPED.filter((name) => c[name] > 0).map((name) => `${name} ${number.format(c[name])}`)
      const written = (['inserted', 'updated', 'reembedded', 'deleted'] as const).map(
        (name) => `${name} ${number.format(c[name])}`
      )
      const skipped = `skipped ${number.format(this.skipped)}${reasons.length > 0 ? ` (${reasons.join(', ')})` : ''}`
      return [...written, skipped, ...(c.failed > 0 ? [`failed ${number.format(c.failed)}`] : [])].join(' · ')
    }
    const { read: _read, ...parts } = this.counts
    const shown = Object.entries(parts).filter(([name, n]) => n > 0 || name === 'reembedded')
    return shown.map(([name, n]) => `${name} ${number.format(n)}`).join(' · ')
  }
}

function formatSeconds(seconds: number): string {
  if (seconds < 90) return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`
  const minutes = Math.floor(seconds / 60)
  return minutes < 90 ? `${minutes} min ${Math.round(seconds % 60)} s` : `${(minutes / 60).toFixed(1)} h`
}
