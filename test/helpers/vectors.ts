import { randomUUID } from 'node:crypto'
import { seededRandom as rng } from '../../src/demo/random.ts'
import type { MemoryEvent } from '../../src/memory/event.ts'
import type { Envelope } from '../../src/streams/envelope.ts'
import { envelopeOf, RecordingHost } from './envelopes.ts'

/** Envelopes carrying memory events, for driving a sink directly (the runtime is tested on the real broker). */
export function memoryEnvelopes(events: readonly MemoryEvent[], host = new RecordingHost()): Envelope<MemoryEvent>[] {
  return events.map((event) => envelopeOf(host, JSON.stringify(event), { key: event.id }).withValue(event))
}

const SYLLABLES = [
  'ka',
  'lo',
  'mi',
  'ne',
  'ru',
  'sa',
  'ti',
  'vo',
  'zen',
  'dar',
  'pel',
  'qui',
  'bro',
  'fen',
  'gil',
  'hu'
]

/** A seeded vocabulary of made-up words, and texts drawn from it: lexically realistic, reproducible. */
export function textCorpus(count: number, seed: number, vocabulary = 3000): string[] {
  const random = rng(seed)
  const words: string[] = []
  const seen = new Set<string>()
  while (words.length < vocabulary) {
    let w = ''
    const n = 2 + Math.floor(random() * 3)
    for (let i = 0; i < n; i++) w += SYLLABLES[Math.floor(random() * SYLLABLES.length)]
    if (!seen.has(w)) {
      seen.add(w)
      words.push(w)
    }
  }
  const texts: string[] = []
  for (let i = 0; i < count; i++) {
    const n = 6 + Math.floor(random() * 10)
    const parts: string[] = []
    // Zipf-ish: common words are shared across many texts, as in real prose.
    for (let k = 0; k < n; k++) parts.push(words[Math.floor(vocabulary * random() ** 2)]!)
    texts.push(parts.join(' '))
  }
  return texts
}

export function upsert(
  id: string,
  text: string,
  extra: Partial<MemoryEvent> & { version?: number; timestamp?: string } = {}
): MemoryEvent {
  return {
    event_id: randomUUID(),
    id,
    namespace: 'ns',
    type: 'semantic',
    timestamp: '2026-01-01T00:00:00Z',
    version: 1,
    payload: { text },
    ...extra
  }
}

export function remove(id: string, extra: Partial<MemoryEvent> = {}): MemoryEvent {
  return {
    event_id: randomUUID(),
    id,
    namespace: 'ns',
    op: 'delete',
    timestamp: '2026-01-01T00:00:00Z',
    version: 1,
    ...extra
  }
}

/** Cosine similarity, computed in doubles: what a store's search must agree with. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!
    na += a[i]! * a[i]!
    nb += b[i]! * b[i]!
  }
  return dot / Math.sqrt(na * nb)
}
