import type { CommitRequest, TopicPartition } from '../sources/types.ts'
import type { Origin } from './envelope.ts'
import { OffsetTracker } from './offset-tracker.ts'

export interface CommitObserver {
  committed?(requests: readonly CommitRequest[], seconds: number): void
  commitFailed?(error: unknown, requests: readonly CommitRequest[]): void
}

const key = (topic: string, partition: number) => `${topic}:${partition}`

/**
 * Commits, per partition, the highest offset below which every message is done (acked by every sink branch or
 * held by the DLQ) — never past an open one. Commits run on an interval, on rebalance, on revoke and at shutdown,
 * one request at a time for all partitions: concurrent commits of one partition could land out of order and move
 * the group's offset backwards.
 */
export class CommitCoordinator {
  readonly #commit: (requests: readonly CommitRequest[]) => Promise<void>
  readonly #observer: CommitObserver
  readonly #trackers = new Map<string, OffsetTracker>()
  /**
   * The same trackers by topic, then partition number: `track` and `done` run once per message each, and building
   * the `topic:partition` string to look a tracker up showed in a topology's CPU profile (docs/BENCHMARKS.md).
   */
  readonly #byTopic = new Map<string, Array<OffsetTracker | undefined>>()
  #inflight: Promise<void> | undefined
  #again = false
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(commit: (requests: readonly CommitRequest[]) => Promise<void>, observer: CommitObserver = {}) {
    this.#commit = commit
    this.#observer = observer
  }

  track(origin: Origin): void {
    let partitions = this.#byTopic.get(origin.topic)
    if (!partitions) {
      partitions = []
      this.#byTopic.set(origin.topic, partitions)
    }
    let tracker = partitions[origin.partition]
    if (!tracker) {
      tracker = new OffsetTracker(origin.topic, origin.partition)
      partitions[origin.partition] = tracker
      this.#trackers.set(key(origin.topic, origin.partition), tracker)
    }
    tracker.track(origin.offset, origin.leaderEpoch)
  }

  done(origin: Origin): void {
    this.#byTopic.get(origin.topic)?.[origin.partition]?.done(origin.offset)
  }

  /** Messages delivered and not yet done, over all partitions. */
  get open(): number {
    let n = 0
    for (const t of this.#trackers.values()) n += t.openCount
    return n
  }

  /** True when every tracked partition has committed all it has seen and nothing is open. */
  get settled(): boolean {
    for (const t of this.#trackers.values()) if (t.openCount > 0 || t.committable()) return false
    return true
  }

  /** Committed offsets (next offset to read) per `topic:partition`, as this member last committed them. */
  committedOffsets(): Map<string, bigint> {
    const out = new Map<string, bigint>()
    for (const [k, t] of this.#trackers) if (t.lastCommitted >= 0n) out.set(k, t.lastCommitted)
    return out
  }

  /**
   * The member's new assignment. Partitions it no longer owns get a last commit of what is safe and are then
   * forgotten: their in-flight messages still finish, but cannot move this member's commits any more.
   */
  async assigned(partitions: readonly TopicPartition[]): Promise<void> {
    const keep = new Set(partitions.map((p) => key(p.topic, p.partition)))
    const revoked = [...this.#trackers.keys()].filter((k) => !keep.has(k))
    if (revoked.length === 0) return
    await this.commitNow().catch(() => {})
    for (const k of revoked) {
      const tracker = this.#trackers.get(k)
      this.#trackers.delete(k)
      if (!tracker) continue
      const partitions = this.#byTopic.get(tracker.topic)
      if (partitions?.[tracker.partition] === tracker) partitions[tracker.partition] = undefined
    }
  }

  start(intervalMs: number): void {
    this.stop()
    this.#timer = setInterval(() => {
      this.commitNow().catch(() => {})
    }, intervalMs)
    this.#timer.unref()
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** Commits everything committable now; if a commit is running, runs one more right after it. */
  commitNow(): Promise<void> {
    if (this.#inflight) {
      this.#again = true
      return this.#inflight
    }
    const run = async (): Promise<void> => {
      do {
        this.#again = false
        await this.#commitOnce()
      } while (this.#again)
    }
    this.#inflight = run().finally(() => {
      this.#inflight = undefined
    })
    return this.#inflight
  }

  async #commitOnce(): Promise<void> {
    const requests: CommitRequest[] = []
    const trackers: OffsetTracker[] = []
    for (const t of this.#trackers.values()) {
      const c = t.committable()
      if (!c) continue
      requests.push({ topic: t.topic, partition: t.partition, offset: c.offset, leaderEpoch: c.leaderEpoch })
      trackers.push(t)
    }
    if (requests.length === 0) return
    const started = performance.now()
    try {
      await this.#commit(requests)
    } catch (error) {
      this.#observer.commitFailed?.(error, requests)
      throw error
    }
    for (const [i, r] of requests.entries()) trackers[i]?.markCommitted(r.offset)
    this.#observer.committed?.(requests, (performance.now() - started) / 1000)
  }
}
