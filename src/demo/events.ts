import type { MemoryEvent } from '../memory/event.ts'
import { seededRandom } from './random.ts'

/**
 * The demo's memory event history: deterministic for a given count and seed, so a second `--demo N` run feeds
 * exactly the same events (same event ids) and shows that nothing is applied twice.
 *
 * Mix: creates, then updates of earlier memories (higher version), deletes (~8%), exact redeliveries of an earlier
 * message (~7%) and invalid messages (~2%: not JSON, or failing the schema).
 */
export interface DemoMessage {
  readonly key: string
  readonly value: string
}

export interface DemoHistory {
  readonly messages: readonly DemoMessage[]
  /** The valid events, in log order (redeliveries included). */
  readonly events: readonly MemoryEvent[]
  readonly invalid: number
  readonly duplicates: number
}

export const DEMO_NAMESPACE = 'demo'

export interface DemoHistoryOptions {
  /**
   * Grow each upsert's `payload.text` with more sentences until its JSON is about this many bytes (a realistic
   * memory is a paragraph, not a line; the benchmarks use 1024). Default: one sentence (~250 bytes per event).
   */
  eventBytes?: number
}

const SUBJECTS = ['Ada', 'the deploy pipeline', 'the billing service', 'Grace', 'the mobile app', 'the data team']
const FACTS = [
  'prefers short status updates in the morning',
  'migrated the orders table to PostgreSQL 17 last week',
  'reported latency spikes after the cache was resized',
  'asked for weekly summaries of open incidents',
  'uses Kafka topics partitioned by customer id',
  'agreed to rotate the on-call schedule every Monday',
  'needs the vector index rebuilt after the model upgrade',
  'found that retries without backoff overloaded the broker'
]
const TYPES = ['episodic', 'semantic', 'procedural'] as const

/** A version-4-shaped UUID from the generator, so reruns reproduce event ids. */
function uuid(next: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(next() * 16).toString(16))
  hex[12] = '4'
  hex[16] = '89ab'[Math.floor(next() * 4)]!
  const s = hex.join('')
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`
}

export function demoHistory(count: number, seed = 42, options: DemoHistoryOptions = {}): DemoHistory {
  const eventBytes = options.eventBytes ?? 0
  const next = seededRandom(seed)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!
  const messages: DemoMessage[] = []
  const events: MemoryEvent[] = []
  const versions: number[] = []
  const deleted = new Set<number>()
  const base = Date.parse('2026-01-01T00:00:00Z')
  let invalid = 0
  let duplicates = 0
  for (let n = 0; n < count; n++) {
    const roll = next()
    const timestamp = new Date(base + n * 1000).toISOString()
    if (roll < 0.02) {
      invalid++
      const key = `mem-${Math.floor(next() * 1000)}`
      // Half cannot be decoded, half decode but fail the schema (an upsert without namespace or payload).
      const value =
        next() < 0.5 ? `{"id":"${key}","payload":` : JSON.stringify({ event_id: uuid(next), id: key, timestamp })
      messages.push({ key, value })
      continue
    }
    if (roll < 0.09 && messages.length > 0) {
      // A redelivery: some earlier valid message, byte for byte.
      const i = Math.floor(next() * events.length)
      const event = events[i]
      if (event !== undefined) {
        duplicates++
        events.push(event)
        messages.push({ key: event.id, value: JSON.stringify(event) })
        continue
      }
    }
    const existing = versions.length > 0 && roll < 0.45
    const index = existing ? Math.floor(next() * versions.length) : versions.length
    if (!existing) versions.push(-1)
    const id = `mem-${index}`
    const version = versions[index]! + 1
    versions[index] = version
    let event: MemoryEvent
    if (existing && !deleted.has(index) && roll < 0.17) {
      deleted.add(index)
      event = { event_id: uuid(next), id, namespace: DEMO_NAMESPACE, op: 'delete', timestamp, version }
    } else {
      deleted.delete(index)
      const subject = pick(SUBJECTS)
      // Drawn in this order so that a history stays the same for a seed (reruns reproduce event ids).
      const eventId = uuid(next)
      const type = pick(TYPES)
      const importance = Math.round(next() * 100) / 100
      const upsert = (text: string): MemoryEvent => ({
        event_id: eventId,
        id,
        namespace: DEMO_NAMESPACE,
        type,
        timestamp,
        version,
        importance,
        payload: { text, subject, revision: version }
      })
      let text = `${subject} ${pick(FACTS)}`
      if (eventBytes > 0) {
        // More sentences from the same generator (the history stays deterministic), cut to the size.
        const target = text.length + eventBytes - JSON.stringify(upsert(text)).length
        while (text.length < target) text += `. ${pick(SUBJECTS)} ${pick(FACTS)}`
        text = text.slice(0, Math.max(1, target))
      }
      event = upsert(text)
    }
    events.push(event)
    messages.push({ key: id, value: JSON.stringify(event) })
  }
  return { messages, events, invalid, duplicates }
}
