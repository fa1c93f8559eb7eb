import { randomUUID } from 'node:crypto'
import type { TestContext } from 'node:test'
import { Admin, Consumer } from '@platformatic/kafka'
import { createProducer, type OutgoingMessage } from '../../src/kafka/producer.ts'
import { waitForLeaders } from '../../src/kafka/topics.ts'
import { parseBrokers } from '../../src/sources/kafka/options.ts'

/** The stack's brokers, or undefined (the caller skips with a printed reason). */
export function brokers(): string[] | undefined {
  const list = parseBrokers(process.env.KAFKA_BROKERS)
  return list.length > 0 ? list : undefined
}

export const NO_KAFKA = 'KAFKA_BROKERS is not set: run `npm test` (it starts the stack) or `npm run stack -- up`'

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`
}

/** Creates topics (deleted again when the test ends). */
export async function createTopics(
  t: TestContext,
  names: string[],
  partitions = 1,
  configs: Record<string, string> = {}
): Promise<void> {
  const admin = new Admin({ clientId: 'sfm-test-admin', bootstrapBrokers: brokers()! })
  try {
    await admin.createTopics({
      topics: names,
      partitions,
      replicas: 1,
      configs: Object.entries(configs).map(([name, value]) => ({ name, value }))
    })
    await waitForLeaders(admin, names)
  } finally {
    await admin.close()
  }
  t.after(async () => {
    const a = new Admin({ clientId: 'sfm-test-admin', bootstrapBrokers: brokers()! })
    try {
      await a.deleteTopics({ topics: names })
    } catch {
      // Best effort: a topic that is already gone is fine.
    } finally {
      await a.close()
    }
  })
}

export async function produce(messages: readonly OutgoingMessage[]): Promise<void> {
  const producer = createProducer({ brokers: brokers()!, clientId: 'sfm-test-producer' })
  try {
    for (let i = 0; i < messages.length; i += 1000) await producer.send(messages.slice(i, i + 1000))
  } finally {
    await producer.close()
  }
}

export interface ReadMessage {
  key: string | undefined
  value: string | undefined
  headers: Map<string, string>
  partition: number
  offset: bigint
}

/** Reads a topic from the beginning until `count` messages arrived or `timeoutMs` passed. */
export async function readTopic(topic: string, count: number, timeoutMs = 30_000): Promise<ReadMessage[]> {
  const consumer = new Consumer({
    clientId: 'sfm-test-reader',
    groupId: uniqueName('reader'),
    bootstrapBrokers: brokers()!,
    autocommit: false,
    maxWaitTime: 200
  })
  const out: ReadMessage[] = []
  try {
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false })
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs)
      if (count === 0) {
        clearTimeout(timer)
        resolve()
        return
      }
      stream.on('data', (m) => {
        const headers = new Map<string, string>()
        for (const [k, v] of m.headers) headers.set(k.toString(), v.toString())
        out.push({
          key: m.key?.toString(),
          value: m.value?.toString(),
          headers,
          partition: m.partition,
          offset: m.offset
        })
        if (out.length >= count) {
          clearTimeout(timer)
          resolve()
        }
      })
    })
    await stream.close()
  } finally {
    await consumer.close(true)
  }
  return out
}

/** Committed offsets of a group for a topic, partition → next offset (-1 when none). */
export async function committedOffsets(groupId: string, topic: string): Promise<Map<number, bigint>> {
  const admin = new Admin({ clientId: 'sfm-test-admin', bootstrapBrokers: brokers()! })
  try {
    const groups = await admin.listConsumerGroupOffsets({ groups: [groupId] })
    const out = new Map<number, bigint>()
    for (const g of groups) {
      for (const t of g.topics) {
        if (t.name !== topic) continue
        for (const p of t.partitions) out.set(p.partitionIndex, p.committedOffset)
      }
    }
    return out
  } finally {
    await admin.close()
  }
}

export async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
