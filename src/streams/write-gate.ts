import type { FlushGate } from './operators/batch.ts'

/**
 * A branch writer's batches in flight (received and not finished: queued behind their partition or a free slot, or
 * being written), told to a `when-idle` batch operator in front of it. A partition is ready for its next batch when
 * none of its batches is in flight (its batches are written in order, so another one would only queue) and fewer
 * than `maxInFlight` batches of the branch are; every finished batch may make one ready again.
 *
 * The writer counts a batch from the moment it receives it, synchronously, so the operator that just flushed a
 * partition sees it busy at once and keeps the partition's next messages for the next batch.
 */
export class WriteGate implements FlushGate {
  readonly maxInFlight: number
  #inFlight = 0
  readonly #byKey = new Map<string, number>()
  readonly #listeners = new Set<() => void>()

  constructor(maxInFlight: number) {
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new RangeError(`maxInFlightBatches must be a positive integer, got ${maxInFlight}`)
    }
    this.maxInFlight = maxInFlight
  }

  /** Batches received and not finished, across partitions. */
  get inFlight(): number {
    return this.#inFlight
  }

  ready(partitionKey: string): boolean {
    return this.#inFlight < this.maxInFlight && !this.#byKey.has(partitionKey)
  }

  /** The writer received a batch of this partition. */
  begin(partitionKey: string): void {
    this.#inFlight++
    this.#byKey.set(partitionKey, (this.#byKey.get(partitionKey) ?? 0) + 1)
  }

  /** The writer is done with a batch of this partition (written, dead-lettered or abandoned). */
  end(partitionKey: string): void {
    const count = this.#byKey.get(partitionKey)
    if (count === undefined) throw new Error(`write gate: no batch of ${partitionKey} in flight`)
    if (count === 1) this.#byKey.delete(partitionKey)
    else this.#byKey.set(partitionKey, count - 1)
    this.#inFlight--
    for (const listener of this.#listeners) listener()
  }

  onChange(listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => {
      this.#listeners.delete(listener)
    }
  }
}
