import { randomUUID } from 'node:crypto'

/** Memories in the console tests' input (two versions each), besides two poison records. */
const CONSOLE_IDS = 12

/** CONSOLE_IDS memories (two versions each), then two poison records: not JSON, and not a memory event. */
export function consoleInput(topic: string) {
  const records = []
  for (let i = 0; i < CONSOLE_IDS; i++) {
    for (let v = 0; v < 2; v++) {
      const event = {
        event_id: randomUUID(),
        id: `m-${i}`,
        namespace: 'ns',
        type: 'semantic',
        version: v,
        timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, v)).toISOString(),
        payload: { text: `memory ${i} version ${v}` }
      }
      records.push({ topic, key: Buffer.from(event.id), value: Buffer.from(JSON.stringify(event)) })
    }
  }
  records.push({ topic, key: Buffer.from('poison-1'), value: Buffer.from('not json {') })
  records.push({
    topic,
    key: Buffer.from('poison-2'),
    value: Buffer.from(JSON.stringify({ id: 'poison-2', not: 'a memory event' }))
  })
  return records
}

/** Polls `probe` every 250 ms until it gives a value (a rejection counts as none), or fails naming `what`. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => undefined)
    if (value !== undefined) return value
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}
