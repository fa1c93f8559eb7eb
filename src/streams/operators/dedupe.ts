import { concatMap, filter, type OperatorFunction, pipe } from 'rxjs'
import { DropReasons, type Envelope } from '../envelope.ts'
import { filterMap } from './filter-map.ts'

/**
 * A durable memory of processed keys, consulted after the in-memory window misses. `remember` is called only once
 * a delivery is done (every sink durable or the DLQ holds it): remembering earlier would drop the redelivery of a
 * message that was lost in a crash.
 */
export interface DedupeStore {
  /** The subset of `keys` already processed. */
  seen(keys: readonly string[]): Promise<ReadonlySet<string>>
  remember(keys: readonly string[]): Promise<void>
}

export interface DedupeOptions<T> {
  /** The identity of a message, e.g. its `event_id`. Undefined: never a duplicate. */
  key: (envelope: Envelope<T>) => string | undefined
  /** How many recent keys the in-memory window holds (oldest evicted first). */
  windowSize?: number
  store?: DedupeStore
  stage?: string
}

export const defaultDedupeOptions = { windowSize: 100_000, stage: 'dedupe' } as const

/**
 * A set that forgets its oldest entries beyond `capacity` (first in, first out). The insertion order is kept in a
 * ring of `capacity` slots rather than read back from the Set: V8 leaves a deleted Set entry as a hole until the
 * next rehash, and `set.values().next()` walks over every hole from the start, so evicting the oldest entry that
 * way cost O(holes) — up to ~20 µs per message with the default 100k window (bench/runtime.ts, 2026-11-26).
 */
export class RecentKeys {
  readonly capacity: number
  #keys = new Set<string>()
  /** Keys in insertion order; `#next` is the oldest once the ring is full, and the slot the next key takes. */
  #ring: string[] = []
  #next = 0

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`windowSize must be > 0, got ${capacity}`)
    this.capacity = capacity
  }

  get size(): number {
    return this.#keys.size
  }

  has(key: string): boolean {
    return this.#keys.has(key)
  }

  /** Adds `key`; false (and nothing changes) when it is already there, so a caller needs one lookup, not two. */
  add(key: string): boolean {
    if (this.#keys.has(key)) return false
    if (this.#ring.length < this.capacity) {
      // Grows as keys arrive, so a large window costs memory only once it is used.
      this.#ring.push(key)
    } else {
      this.#keys.delete(this.#ring[this.#next]!)
      this.#ring[this.#next] = key
      this.#next = this.#next + 1 === this.capacity ? 0 : this.#next + 1
    }
    this.#keys.add(key)
    return true
  }
}

/**
 * Drops (and acks) envelopes whose key was seen recently. Delivery is at-least-once, so this is an optimisation and
 * a guard against producer retries, not the idempotency guarantee: sinks stay idempotent (the Postgres sink keeps
 * event_ids in a table).
 */
export function dedupe<T>(options: DedupeOptions<T>): OperatorFunction<Envelope<T>, Envelope<T>> {
  const stage = options.stage ?? defaultDedupeOptions.stage
  const recent = new RecentKeys(options.windowSize ?? defaultDedupeOptions.windowSize)
  const inMemory = (envelope: Envelope<T>, key: string | undefined): Envelope<T> | undefined => {
    if (key === undefined) return envelope
    if (recent.add(key)) return envelope
    envelope.drop(DropReasons.DUPLICATE, stage)
    return undefined
  }
  const store = options.store
  if (!store) return filterMap((envelope) => inMemory(envelope, options.key(envelope)))

  // With a store the check is asynchronous; concatMap keeps arrival order.
  return pipe(
    concatMap(async (envelope: Envelope<T>) => {
      const key = options.key(envelope)
      if (key === undefined || recent.has(key)) return inMemory(envelope, key)
      const seen = await store.seen([key])
      if (seen.has(key)) {
        recent.add(key)
        envelope.drop(DropReasons.DUPLICATE, stage)
        return undefined
      }
      envelope.delivery.whenDone(() => {
        store.remember([key]).catch(() => {
          // Forgetting is safe: the sinks are idempotent; the store is only an optimisation.
        })
      })
      return inMemory(envelope, key)
    }),
    filter((envelope): envelope is Envelope<T> => envelope !== undefined)
  )
}
