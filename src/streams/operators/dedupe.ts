import { concatMap, filter, type OperatorFunction, pipe } from 'rxjs'
import { describeOperator } from '../describe.ts'
import { DropReasons, type Envelope } from '../envelope.ts'
import { filterMap } from './filter-map.ts'
import { copyWords, parseUuid, UuidSet } from './uuid-set.ts'

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
 * way costs O(holes) per eviction, which grows with the window (docs/BENCHMARKS.md, `runtime`).
 *
 * Canonical lowercase uuids (what event_ids are) go to a UuidSet of 128-bit words, cheaper than a Set of strings
 * for a large window (uuid-set.ts says why); every other key to a plain Set. The ring holds both kinds in arrival
 * order, a uuid as four words and any other key as its string in #ringOthers (no string there: a uuid), so
 * eviction is exactly first in, first out across both.
 */
export class RecentKeys {
  readonly capacity: number
  /** Room for one more than the window: a new uuid goes in (one probe checks and adds) before the oldest goes. */
  readonly #uuids: UuidSet
  readonly #others = new Set<string>()
  /** Scratch words of the key being looked at. */
  readonly #key = new Int32Array(4)
  /** Keys in insertion order; `#next` is the oldest once the ring is full, and the slot the next key takes. */
  #ringWords = new Int32Array(0)
  /** Created by the first key that is not a uuid, so a window of uuids only does not pay 8 bytes a key for it. */
  #ringOthers: (string | undefined)[] | undefined
  #length = 0
  #next = 0

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`windowSize must be > 0, got ${capacity}`)
    this.capacity = capacity
    this.#uuids = new UuidSet(capacity + 1)
  }

  get size(): number {
    return this.#uuids.size + this.#others.size
  }

  has(key: string): boolean {
    return parseUuid(key, this.#key, 0) ? this.#uuids.has(this.#key, 0) : this.#others.has(key)
  }

  /** Adds `key`; false (and nothing changes) when it is already there, so a caller needs one lookup, not two. */
  add(key: string): boolean {
    const isUuid = parseUuid(key, this.#key, 0)
    if (isUuid) {
      if (!this.#uuids.add(this.#key, 0)) return false
    } else {
      if (this.#others.has(key)) return false
      this.#others.add(key)
    }
    let slot: number
    if (this.#length < this.capacity) {
      // Grows as keys arrive, so a large window costs memory only once it is used.
      slot = this.#length++
      if (slot * 4 === this.#ringWords.length) this.#growRing()
    } else {
      slot = this.#next
      this.#next = slot + 1 === this.capacity ? 0 : slot + 1
      const oldest = this.#ringOthers?.[slot]
      if (oldest === undefined) this.#uuids.delete(this.#ringWords, slot * 4)
      else this.#others.delete(oldest)
    }
    if (isUuid) {
      copyWords(this.#key, 0, this.#ringWords, slot * 4)
      const others = this.#ringOthers
      if (others !== undefined && slot < others.length) others[slot] = undefined
    } else {
      this.#ringOthers ??= []
      const others = this.#ringOthers
      while (others.length < slot) others.push(undefined)
      others[slot] = key
    }
    return true
  }

  #growRing(): void {
    const grown = new Int32Array(Math.min(Math.max(this.#ringWords.length * 2, 4096), this.capacity * 4))
    grown.set(this.#ringWords)
    this.#ringWords = grown
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
  const windowSize = options.windowSize ?? defaultDedupeOptions.windowSize
  const info = { name: 'dedupe', stage, detail: `last ${windowSize} keys${store ? ' + a store' : ''}` }
  if (!store) {
    return describeOperator(
      filterMap((envelope: Envelope<T>) => inMemory(envelope, options.key(envelope))),
      info
    )
  }

  // With a store the check is asynchronous; concatMap keeps arrival order.
  const operator = pipe(
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
  return describeOperator(operator, info)
}
