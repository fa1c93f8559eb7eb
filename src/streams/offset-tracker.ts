/**
 * Tracks, for one partition, which delivered offsets are still open, and so the highest offset that may be
 * committed: the lowest open offset, or one past the highest offset seen when none is open. Offsets may be seen
 * more than once (a rebalance re-fetches from the committed offset while older deliveries are still in flight):
 * each delivery is counted, and the offset stays open until all of its deliveries are done.
 *
 * The offsets are kept sorted in two parallel arrays (offset, open deliveries) read from `#head`, not in a Map:
 * Kafka delivers a partition in offset order and the writer acks it in order, so `track` appends and `done` finds
 * its offset at the front — O(1) without hashing BigInts, and the lowest open offset is simply the first entry
 * (cheaper than a Map per message: docs/BENCHMARKS.md, `runtime`). Offsets
 * seen out of order (a re-fetch) are found or inserted by binary search. Entries done out of order stay, with a
 * count of 0, until the front passes them or a compaction drops them; compaction keeps the arrays within twice the
 * open offsets (+1024), so a stuck offset cannot make them grow with the traffic behind it.
 */
export class OffsetTracker {
  readonly topic: string
  readonly partition: number
  /** Seen offsets, ascending, from `#head` on; `#counts[i]` is how many deliveries of `#offsets[i]` are open. */
  #offsets: bigint[] = []
  #counts: number[] = []
  #head = 0
  /** Offsets with at least one open delivery. */
  #openOffsets = 0
  #highestSeen = -1n
  #highestSeenEpoch = -1
  #lastCommitted = -1n
  #start = -1n

  constructor(topic: string, partition: number) {
    this.topic = topic
    this.partition = partition
  }

  get openCount(): number {
    return this.#openOffsets
  }

  /** Entries held: the open offsets plus done ones not yet dropped (at most 2 × open + 1024), for diagnostics. */
  get retained(): number {
    return this.#offsets.length - this.#head
  }

  get lastCommitted(): bigint {
    return this.#lastCommitted
  }

  track(offset: bigint, leaderEpoch: number): void {
    // The first offset seen is where this member started: committing it again would record no progress.
    if (this.#highestSeen < 0n) this.#start = offset
    const end = this.#offsets.length
    if (end === this.#head || offset > this.#offsets[end - 1]!) {
      this.#offsets.push(offset)
      this.#counts.push(1)
      this.#openOffsets++
    } else {
      const i = this.#search(offset)
      if (i < end && this.#offsets[i] === offset) {
        if (this.#counts[i]!++ === 0) this.#openOffsets++
      } else {
        this.#offsets.splice(i, 0, offset)
        this.#counts.splice(i, 0, 1)
        this.#openOffsets++
      }
    }
    if (offset > this.#highestSeen) {
      this.#highestSeen = offset
      this.#highestSeenEpoch = leaderEpoch
    }
  }

  done(offset: bigint): void {
    const end = this.#offsets.length
    let i = this.#head
    if (i >= end) return
    if (this.#offsets[i] !== offset) {
      i = this.#search(offset)
      if (i >= end || this.#offsets[i] !== offset) return
    }
    const count = this.#counts[i]!
    if (count === 0) return
    this.#counts[i] = count - 1
    if (count > 1) return
    this.#openOffsets--
    while (this.#head < end && this.#counts[this.#head] === 0) this.#head++
    if (this.#head === end) {
      this.#offsets.length = 0
      this.#counts.length = 0
      this.#head = 0
    } else if (end > 2 * this.#openOffsets + 1024) this.#compact()
  }

  /** Index of the first entry at or after `#head` whose offset is ≥ `offset`. */
  #search(offset: bigint): number {
    let lo = this.#head
    let hi = this.#offsets.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#offsets[mid]! < offset) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Drops the entries before `#head` and those no delivery is open for. */
  #compact(): void {
    let w = 0
    for (let r = this.#head; r < this.#offsets.length; r++) {
      const count = this.#counts[r]!
      if (count === 0) continue
      this.#offsets[w] = this.#offsets[r]!
      this.#counts[w] = count
      w++
    }
    this.#offsets.length = w
    this.#counts.length = w
    this.#head = 0
  }

  /**
   * The offset to commit (the next one to read) and the leader epoch to commit it with, or undefined when there is
   * nothing new to commit. The epoch is exact when every seen message is done; otherwise -1 (unknown), which the
   * broker accepts and which only disables log-truncation detection for that commit.
   */
  committable(): { offset: bigint; leaderEpoch: number } | undefined {
    if (this.#highestSeen < 0n) return undefined
    let offset: bigint
    let leaderEpoch = -1
    if (this.#openOffsets === 0) {
      offset = this.#highestSeen + 1n
      leaderEpoch = this.#highestSeenEpoch
    } else {
      // `done` moves the head past finished entries, so the first entry is the lowest open offset.
      offset = this.#offsets[this.#head]!
    }
    if (offset <= this.#lastCommitted || offset <= this.#start) return undefined
    return { offset, leaderEpoch }
  }

  markCommitted(offset: bigint): void {
    if (offset > this.#lastCommitted) this.#lastCommitted = offset
  }
}
