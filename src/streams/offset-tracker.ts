/**
 * Tracks, for one partition, which delivered offsets are still open, and so the highest offset that may be
 * committed: the lowest open offset, or one past the highest offset seen when none is open. Offsets may be seen
 * more than once (a rebalance re-fetches from the committed offset while older deliveries are still in flight):
 * each delivery is counted, and the offset stays open until all of its deliveries are done.
 */
export class OffsetTracker {
  readonly topic: string
  readonly partition: number
  #open = new Map<bigint, number>()
  #highestSeen = -1n
  #highestSeenEpoch = -1
  #lastCommitted = -1n
  #start = -1n

  constructor(topic: string, partition: number) {
    this.topic = topic
    this.partition = partition
  }

  get openCount(): number {
    return this.#open.size
  }

  get lastCommitted(): bigint {
    return this.#lastCommitted
  }

  track(offset: bigint, leaderEpoch: number): void {
    // The first offset seen is where this member started: committing it again would record no progress.
    if (this.#highestSeen < 0n) this.#start = offset
    this.#open.set(offset, (this.#open.get(offset) ?? 0) + 1)
    if (offset > this.#highestSeen) {
      this.#highestSeen = offset
      this.#highestSeenEpoch = leaderEpoch
    }
  }

  done(offset: bigint): void {
    const count = this.#open.get(offset)
    if (count === undefined) return
    if (count <= 1) this.#open.delete(offset)
    else this.#open.set(offset, count - 1)
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
    if (this.#open.size === 0) {
      offset = this.#highestSeen + 1n
      leaderEpoch = this.#highestSeenEpoch
    } else {
      offset = this.#highestSeen + 1n
      for (const o of this.#open.keys()) if (o < offset) offset = o
    }
    if (offset <= this.#lastCommitted || offset <= this.#start) return undefined
    return { offset, leaderEpoch }
  }

  markCommitted(offset: bigint): void {
    if (offset > this.#lastCommitted) this.#lastCommitted = offset
  }
}
