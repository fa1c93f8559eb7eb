import { compareFence } from '../streams/fence.ts'
import type { MemoryEvent } from './event.ts'
import { type PreparedEvent, prepareEvent } from './prepare.ts'

/** One row of the memories table, as `fold` computes it and the tests read it. */
export interface MemoryRow {
  readonly id: string
  readonly namespace: string
  readonly type: string | null
  /** Parsed payload; null for a tombstone. */
  readonly payload: unknown
  readonly importance: number | null
  readonly version: number
  readonly eventId: string
  /** Canonical UTC timestamp text. */
  readonly eventTs: string
  /** Tombstones: the delete event's timestamp; otherwise null. */
  readonly deletedAt: string | null
}

/**
 * The `memories` table that a history of events must produce under the fence rule, whatever the batching, order of
 * arrival or number of redeliveries: per id, the event with the greatest `(version ?? 0, timestamp)` wins; a delete
 * leaves a tombstone. Pure; the property tests compare the real table against it.
 *
 * Events sharing an event_id count once (the first). Two different events of one id with the same pair are a tie
 * that only the arrival order decides (the first applied stays): `fold` keeps the first in `history` order, so for
 * order-independent results generate histories without such ties. Events `prepareEvent` rejects are skipped, as the
 * sink reports them as failures instead of writing them.
 */
export function fold(history: readonly MemoryEvent[]): Map<string, MemoryRow> {
  const seen = new Set<string>()
  const winners = new Map<string, PreparedEvent>()
  history.forEach((event, index) => {
    const prepared = prepareEvent(event, index)
    if (prepared instanceof Error || seen.has(prepared.eventId)) return
    seen.add(prepared.eventId)
    const current = winners.get(prepared.id)
    if (current === undefined || compareFence(prepared, current) > 0) winners.set(prepared.id, prepared)
  })
  const table = new Map<string, MemoryRow>()
  for (const [id, e] of winners) {
    table.set(id, {
      id,
      namespace: e.namespace,
      type: e.type,
      payload: e.payload === null ? null : JSON.parse(e.payload.toString()),
      importance: e.importance,
      version: e.version,
      eventId: e.eventId,
      eventTs: e.timestamp,
      deletedAt: e.deleted ? e.timestamp : null
    })
  }
  return table
}
