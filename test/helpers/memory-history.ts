import { randomUUID } from 'node:crypto'
import { seededRandom } from '../../src/demo/random.ts'
import type { MemoryEvent } from '../../src/memory/event.ts'

export interface HistoryOptions {
  ids: number
  eventsPerId: number
  idPrefix: string
  seed: number
  /** Approximate payload size in bytes. */
  payloadBytes?: number
}

/**
 * A memory event history as the log may hold it: per id a sequence of upserts and deletes (re-creates after a
 * delete), each event duplicated 1–5×, the events of one id reordered, ids interleaved. No two events of one id
 * share a (version, timestamp) pair, so the expected table does not depend on arrival order.
 */
export function generateHistory(options: HistoryOptions): MemoryEvent[] {
  const random = seededRandom(options.seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
  const filler = 'x'.repeat(Math.max(0, (options.payloadBytes ?? 120) - 100))
  const perId: MemoryEvent[][] = []
  const base = Date.parse('2026-01-01T00:00:00Z')
  for (let i = 0; i < options.ids; i++) {
    const id = `${options.idPrefix}${i}`
    const events: MemoryEvent[] = []
    for (let v = 0; v < options.eventsPerId; v++) {
      const del = v > 0 && random() < 0.2
      const useVersion = random() < 0.8
      const event: MemoryEvent = del
        ? {
            event_id: randomUUID(),
            id,
            namespace: 'ns',
            op: 'delete',
            timestamp: new Date(base + v * 1000 + i).toISOString(),
            ...(useVersion ? { version: v } : {})
          }
        : {
            event_id: randomUUID(),
            id,
            namespace: pick(['ns', 'agents', 'users']),
            type: pick(['episodic', 'semantic', 'procedural']),
            timestamp: new Date(base + v * 1000 + i).toISOString(),
            ...(useVersion ? { version: v } : {}),
            importance: Math.round(random() * 100) / 100,
            payload: { text: `memory ${id} v${v} ${filler}`, tags: [pick(['a', 'b', 'c'])] }
          }
      const copies = 1 + Math.floor(random() * 5)
      for (let c = 0; c < copies; c++) events.push(event)
    }
    // Reorder the events of this id (Fisher–Yates).
    for (let k = events.length - 1; k > 0; k--) {
      const j = Math.floor(random() * (k + 1))
      ;[events[k], events[j]] = [events[j]!, events[k]!]
    }
    perId.push(events)
  }
  // Interleave ids.
  const out: MemoryEvent[] = []
  const cursors = perId.map(() => 0)
  let remaining = perId.reduce((n, e) => n + e.length, 0)
  while (remaining > 0) {
    const i = Math.floor(random() * perId.length)
    const list = perId[i]!
    if (cursors[i]! < list.length) {
      out.push(list[cursors[i]!]!)
      cursors[i]!++
      remaining--
    }
  }
  return out
}
