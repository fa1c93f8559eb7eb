import { compareFence } from './fence.ts'
import { type Outcome, Outcomes, type PreparedEvent } from './types.ts'

/** One event that goes to the database: each id's winner, and the losers (only their event_id is recorded). */
export interface ReducedItem {
  readonly event: PreparedEvent
  readonly winner: boolean
  /** For a loser: what it is relative to its id's winner. */
  readonly local: Outcome | undefined
}

export interface Reduction {
  readonly items: readonly ReducedItem[]
  /** Later copies of an event_id already in the batch: duplicates without going to the database. */
  readonly repeats: readonly PreparedEvent[]
}

/**
 * Reduces a batch to one row per memory id, keeping the fence-rule winner, after Debezium's JDBC sink reducing its
 * buffer by key. PostgreSQL refuses an INSERT … ON CONFLICT DO UPDATE that touches the same row twice ("ON CONFLICT
 * DO UPDATE command cannot affect row a second time"), and the fence makes the result the same as writing the events
 * one by one in any order. Ties (equal pair, different event) keep the first in batch order, as sequential writes
 * would.
 */
export function reduceBatch(events: readonly PreparedEvent[]): Reduction {
  const seenEventIds = new Set<string>()
  const repeats: PreparedEvent[] = []
  const kept: PreparedEvent[] = []
  const winners = new Map<string, PreparedEvent>()
  for (const event of events) {
    if (seenEventIds.has(event.eventId)) {
      repeats.push(event)
      continue
    }
    seenEventIds.add(event.eventId)
    kept.push(event)
    const current = winners.get(event.id)
    if (current === undefined || compareFence(event, current) > 0) winners.set(event.id, event)
  }
  // Sorted by id (stable): concurrent writers then lock rows in the same order, which avoids most deadlocks.
  kept.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const items = kept.map((event): ReducedItem => {
    const winner = winners.get(event.id)!
    if (winner === event) return { event, winner: true, local: undefined }
    return { event, winner: false, local: compareFence(event, winner) === 0 ? Outcomes.DUPLICATE : Outcomes.FENCED }
  })
  return { items, repeats }
}
