/**
 * The fence rule: an event changes the state of its key only if its `(version, timestamp)` is greater than the
 * stored pair, compared lexicographically. An equal pair is the same change again (a duplicate); a smaller one is
 * stale. The same comparison runs in SQL as `(m.version, m.event_ts) < (EXCLUDED.version, EXCLUDED.event_ts)`.
 * Used by every sink that keeps a latest state per key (PostgreSQL, the vector stores), so it sits below them.
 */
export interface FencePair {
  /** `version ?? 0`. */
  readonly version: number
  /** Event timestamp, microseconds since the epoch. */
  readonly micros: bigint
}

export function compareFence(a: FencePair, b: FencePair): -1 | 0 | 1 {
  if (a.version !== b.version) return a.version < b.version ? -1 : 1
  if (a.micros !== b.micros) return a.micros < b.micros ? -1 : 1
  return 0
}

/** What writing one event did to the state of its key. */
export const Outcomes = {
  /** The event won the fence and is now the stored state of its key. */
  APPLIED: 'applied',
  /** Stale: the stored (or a newer in-batch) `(version, timestamp)` is greater. Nothing changed. */
  FENCED: 'fenced',
  /** Already processed (same `event_id`), or the same `(version, timestamp)` as the stored state. Nothing changed. */
  DUPLICATE: 'duplicate'
} as const
export type Outcome = (typeof Outcomes)[keyof typeof Outcomes]

/** An event as the reduce step sees it: its key, its own identity and its fence pair. */
export interface FencedEvent extends FencePair {
  readonly id: string
  readonly eventId: string
}

/** One event that goes to the store: each id's winner, and the losers (only their event_id is recorded). */
export interface ReducedItem<E extends FencedEvent = FencedEvent> {
  readonly event: E
  readonly winner: boolean
  /** For a loser: what it is relative to its id's winner. */
  readonly local: Outcome | undefined
}

export interface Reduction<E extends FencedEvent = FencedEvent> {
  readonly items: readonly ReducedItem<E>[]
  /** Later copies of an event_id already in the batch: duplicates without going to the store. */
  readonly repeats: readonly E[]
}

/**
 * Reduces a batch to one row per id, keeping the fence-rule winner, after Debezium's JDBC sink reducing its
 * buffer by key. PostgreSQL refuses an INSERT … ON CONFLICT DO UPDATE that touches the same row twice ("ON CONFLICT
 * DO UPDATE command cannot affect row a second time"), and the fence makes the result the same as writing the events
 * one by one in any order. Ties (equal pair, different event) keep the first in batch order, as sequential writes
 * would. `compare` orders two events of one id (default the fence rule; a table without a fence passes batch order,
 * so the last event of an id wins).
 */
export function reduceBatch<E extends FencedEvent>(
  events: readonly E[],
  compare: (a: E, b: E) => number = compareFence
): Reduction<E> {
  const seenEventIds = new Set<string>()
  const repeats: E[] = []
  const kept: E[] = []
  const winners = new Map<string, E>()
  for (const event of events) {
    if (seenEventIds.has(event.eventId)) {
      repeats.push(event)
      continue
    }
    seenEventIds.add(event.eventId)
    kept.push(event)
    const current = winners.get(event.id)
    if (current === undefined || compare(event, current) > 0) winners.set(event.id, event)
  }
  // Sorted by id (stable): concurrent writers then lock rows in the same order, which avoids most deadlocks.
  kept.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const items = kept.map((event): ReducedItem<E> => {
    const winner = winners.get(event.id)!
    if (winner === event) return { event, winner: true, local: undefined }
    return { event, winner: false, local: compare(event, winner) === 0 ? Outcomes.DUPLICATE : Outcomes.FENCED }
  })
  return { items, repeats }
}
