import { randomUUID } from 'node:crypto'
import { Admin, Consumer } from '@platformatic/kafka'
import { ErrorCodes, FatalError, RetriableError } from '../errors.ts'
import { explainKafkaError, kafkaConnectionOptions, parseBrokers } from '../kafka/connection.ts'
import type { SfmProducer } from '../kafka/messages.ts'
import { createProducer } from '../kafka/producer.ts'
import { type EmbeddedLog, embeddedLogExists, openEmbeddedLog } from '../log/embedded-log.ts'
import { commitOffsets, joinGroup, leaveGroup, liveMember } from '../log/groups.ts'
import { embeddedLogPath, type LogTarget, LogTargets, logTarget } from '../log/options.ts'
import { createEmbeddedProducer } from '../log/producer.ts'
import { knownTopicConfig } from '../log/topics.ts'

/**
 * One place for the operations tools (`npm run dlq`, `npm run topics -- offsets`, a web console) to read topics,
 * read and move consumer groups and produce, on a Kafka cluster or on the embedded log alike.
 */
export interface LogRecord {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  /** Milliseconds since the epoch. */
  readonly timestamp: number
  readonly key: Buffer | undefined
  /** `null`: a tombstone. */
  readonly value: Buffer | null
  readonly headers: ReadonlyMap<string, Buffer>
}

export interface PartitionOffsets {
  readonly partition: number
  /** First offset still stored. */
  readonly start: bigint
  /** Next offset to be written (the high watermark). */
  readonly end: bigint
}

export interface ScanRange {
  readonly partition: number
  /** First offset to read (inclusive). */
  readonly from: bigint
  /** Offset to stop before (exclusive): a snapshot of the end, so a scan ends even while records keep coming. */
  readonly to: bigint
}

export interface LogAccess {
  readonly target: LogTarget
  /** `kafka at host:port` or `embedded log <file>`. */
  readonly description: string
  topicExists(topic: string): Promise<boolean>
  /** Start and end offsets of every partition; a FatalError naming what to do when the topic does not exist. */
  partitions(topic: string): Promise<PartitionOffsets[]>
  /** Per partition, the first offset whose record is at or after `ms` (the end when none is). */
  offsetsForTime(topic: string, ms: number): Promise<Map<number, bigint>>
  /**
   * Calls `onRecord` for every record of the ranges, in offset order within each partition. When it returns a
   * promise, the next record waits for it (in order, with bounded memory); a rejection ends the scan with it.
   */
  scan(
    topic: string,
    ranges: readonly ScanRange[],
    onRecord: (record: LogRecord) => void | Promise<void>
  ): Promise<void>
  /** Whether the group has committed offsets or members. */
  groupExists(groupId: string): Promise<boolean>
  /** The topics the group has committed offsets for. */
  groupTopics(groupId: string): Promise<string[]>
  /** Committed offsets of the group on `topic`: partition → next offset to read (absent: none committed). */
  committed(groupId: string, topic: string): Promise<Map<number, bigint>>
  /** The group's live members, each as one readable phrase (client id, host). Empty: nobody consumes. */
  liveMembers(groupId: string): Promise<string[]>
  /** Sets the group's committed offsets on `topic`. Refused (FatalError) while the group has live members. */
  commit(groupId: string, topic: string, offsets: ReadonlyMap<number, bigint>): Promise<void>
  /** A producer on the same target (closed with this access, or earlier by the caller). */
  producer(clientId: string): SfmProducer
  close(): Promise<void>
}

export interface LogAccessOptions {
  /** Default: Kafka when `KAFKA_BROKERS` is set, else the embedded log. */
  target?: LogTarget
  brokers?: string[]
  /** The embedded log's data folder (default `SFM_DATA_DIR` or `./.sfm-data`). */
  dataDir?: string
  /** How long the embedded log keeps a member that stopped heartbeating (as the embedded source, 10 s). */
  sessionTimeoutMs?: number
  /** How long a scan may go without a record before it fails retriably. Default 30 s. */
  stallTimeoutMs?: number
  env?: NodeJS.ProcessEnv
}

export function openLogAccess(options: LogAccessOptions = {}): LogAccess {
  const env = options.env ?? process.env
  const target = logTarget({ target: options.target, brokers: options.brokers }, env)
  return target === LogTargets.KAFKA ? kafkaAccess(options, env) : embeddedAccess(options, env)
}

const missingTopic = (topic: string, where: string) =>
  new FatalError(
    `topic ${topic} does not exist on ${where}: check the name (and SFM_TOPIC_PREFIX), or create the framework's ` +
      'topics with `npm run topics -- apply`',
    { code: ErrorCodes.CONFIG, details: { topic } }
  )

const liveRefusal = (groupId: string, members: readonly string[]) =>
  new FatalError(
    `consumer group ${groupId} has ${members.length} live member(s): ${members.join('; ')} — stop them first ` +
      '(nothing was changed)',
    { code: ErrorCodes.CONFIG, details: { groupId } }
  )

// Kafka's "earliest" and "latest" timestamps in a ListOffsets request.
const EARLIEST = -2n
const LATEST = -1n

function kafkaAccess(options: LogAccessOptions, env: NodeJS.ProcessEnv): LogAccess {
  const brokers = options.brokers ?? parseBrokers(env.KAFKA_BROKERS)
  const connection = kafkaConnectionOptions(env)
  const admin = new Admin({ ...connection, clientId: 'sfm-ops', bootstrapBrokers: brokers })
  const producers: SfmProducer[] = []
  const context = (doing: string) => ({ brokers, doing })
  const explain = (doing: string) => (error: unknown) => {
    throw explainKafkaError(error, context(doing)) ?? error
  }
  const where = `the Kafka cluster at ${brokers.join(',')}`

  const partitionCount = async (topic: string): Promise<number> => {
    const topics = await admin.listTopics().catch(explain('listing topics'))
    if (!topics.includes(topic)) throw missingTopic(topic, where)
    const metadata = await admin.metadata({ topics: [topic] }).catch(explain(`reading metadata of ${topic}`))
    return metadata.topics.get(topic)?.partitionsCount ?? 0
  }
  const listOffsets = async (topic: string, timestamp: bigint) => {
    const count = await partitionCount(topic)
    const listed = await admin
      .listOffsets({
        topics: [
          {
            name: topic,
            partitions: Array.from({ length: count }, (_, partitionIndex) => ({ partitionIndex, timestamp }))
          }
        ]
      })
      .catch(explain(`listing offsets of ${topic}`))
    const out = new Map<number, bigint>()
    for (const t of listed) for (const p of t.partitions) out.set(p.partitionIndex, p.offset)
    return out
  }
  const describe = async (groupId: string) => {
    const groups = await admin.describeGroups({ groups: [groupId] }).catch(explain(`describing group ${groupId}`))
    return groups.get(groupId)
  }
  const committedAll = async (groupId: string) => {
    const listed = await admin
      .listConsumerGroupOffsets({ groups: [groupId] })
      .catch(explain(`reading offsets of group ${groupId}`))
    const out = new Map<string, Map<number, bigint>>()
    for (const g of listed) {
      for (const t of g.topics) {
        const partitions = new Map<number, bigint>()
        for (const p of t.partitions) if (p.committedOffset >= 0n) partitions.set(p.partitionIndex, p.committedOffset)
        if (partitions.size > 0) out.set(t.name, partitions)
      }
    }
    return out
  }
  const liveMembers = async (groupId: string) => {
    const group = await describe(groupId)
    if (!group) return []
    return [...group.members.values()].map(
      (m) => `${m.clientId} on ${m.clientHost.replace(/^\//, '')} (member ${m.id})`
    )
  }

  return {
    target: LogTargets.KAFKA,
    description: `Kafka at ${brokers.join(',')}`,
    async topicExists(topic) {
      return (await admin.listTopics().catch(explain('listing topics'))).includes(topic)
    },
    async partitions(topic) {
      const [starts, ends] = [await listOffsets(topic, EARLIEST), await listOffsets(topic, LATEST)]
      return [...ends.keys()]
        .sort((a, b) => a - b)
        .map((partition) => ({ partition, start: starts.get(partition) ?? 0n, end: ends.get(partition)! }))
    },
    async offsetsForTime(topic, ms) {
      const [at, ends] = [await listOffsets(topic, BigInt(ms)), await listOffsets(topic, LATEST)]
      const out = new Map<number, bigint>()
      for (const [partition, end] of ends) {
        const offset = at.get(partition) ?? -1n
        out.set(partition, offset < 0n ? end : offset)
      }
      return out
    },
    async scan(topic, ranges, onRecord) {
      const pending = new Map<number, bigint>()
      for (const r of ranges) if (r.from < r.to) pending.set(r.partition, r.to)
      if (pending.size === 0) return
      // A throwaway group that commits nothing: the reader only needs a fetch session with the partitions.
      const consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
        ...connection,
        clientId: 'sfm-ops-reader',
        groupId: `sfm-ops-reader-${randomUUID()}`,
        bootstrapBrokers: brokers,
        autocommit: false,
        maxWaitTime: 200
      })
      try {
        const stream = await consumer
          .consume({
            topics: [topic],
            mode: 'manual',
            offsets: ranges.map((r) => ({ topic, partition: r.partition, offset: r.from })),
            autocommit: false
          })
          .catch(explain(`reading ${topic}`))
        const stall = options.stallTimeoutMs ?? 30_000
        try {
          await new Promise<void>((resolve, reject) => {
            let timer = setTimeout(onStall, stall)
            function onStall() {
              reject(
                new RetriableError(
                  `reading ${topic}: no record for ${stall / 1000} s while partitions ${[...pending.keys()].join(', ')} ` +
                    'had more (retention may have removed them meanwhile): run again',
                  { code: ErrorCodes.TIMEOUT }
                )
              )
            }
            stream.on('error', reject)
            let settled = false
            const fail = (error: unknown) => {
              settled = true
              clearTimeout(timer)
              reject(error)
            }
            stream.on('data', (m) => {
              const to = pending.get(m.partition)
              if (settled || to === undefined || m.offset >= to) return
              clearTimeout(timer)
              const headers = new Map<string, Buffer>()
              for (const [k, v] of m.headers) headers.set(k.toString(), v)
              const after = () => {
                if (m.offset + 1n >= to) pending.delete(m.partition)
                if (pending.size === 0) {
                  settled = true
                  resolve()
                } else timer = setTimeout(onStall, stall)
              }
              let result: void | Promise<void>
              try {
                result = onRecord({
                  topic,
                  partition: m.partition,
                  offset: m.offset,
                  timestamp: Number(m.timestamp),
                  key: m.key === undefined || m.key === null || m.key.length === 0 ? undefined : m.key,
                  value: m.value ?? null,
                  headers
                })
              } catch (error) {
                fail(error)
                return
              }
              if (!(result instanceof Promise)) {
                after()
                return
              }
              // The handler writes somewhere: no further record until it is done (in order, bounded memory).
              stream.pause()
              result.then(() => {
                if (settled) return
                after()
                stream.resume()
              }, fail)
            })
          })
        } finally {
          await stream.close().catch(() => {})
        }
      } finally {
        await consumer.close(true).catch(() => {})
      }
    },
    async groupExists(groupId) {
      const groups = await admin.listGroups().catch(explain('listing consumer groups'))
      return groups.has(groupId)
    },
    async groupTopics(groupId) {
      return [...(await committedAll(groupId)).keys()].sort()
    },
    async committed(groupId, topic) {
      return (await committedAll(groupId)).get(topic) ?? new Map()
    },
    liveMembers,
    async commit(groupId, topic, offsets) {
      const members = await liveMembers(groupId)
      if (members.length > 0) throw liveRefusal(groupId, members)
      if (offsets.size === 0) return
      await admin
        .alterConsumerGroupOffsets({
          groupId,
          topics: [
            {
              name: topic,
              partitionOffsets: [...offsets].map(([partition, offset]) => ({ partition, offset }))
            }
          ]
        })
        .catch(explain(`committing offsets of group ${groupId}`))
    },
    producer(clientId) {
      const producer = createProducer({ target: LogTargets.KAFKA, brokers, connection, clientId })
      producers.push(producer)
      return producer
    },
    async close() {
      for (const p of producers) await p.close().catch(() => {})
      await admin.close().catch(() => {})
    }
  }
}

function embeddedAccess(options: LogAccessOptions, env: NodeJS.ProcessEnv): LogAccess {
  const path = embeddedLogPath({ dataDir: options.dataDir }, env)
  const sessionTimeoutMs = options.sessionTimeoutMs ?? 10_000
  const producers: SfmProducer[] = []
  let log: EmbeddedLog | undefined
  const open = (): EmbeddedLog => {
    if (log) return log
    if (!embeddedLogExists(path)) {
      throw new FatalError(
        `there is no embedded log at ${path} (KAFKA_BROKERS is not set): set KAFKA_BROKERS, or --data-dir / ` +
          'SFM_DATA_DIR to the folder the topology runs with',
        { code: ErrorCodes.CONFIG }
      )
    }
    log = openEmbeddedLog({ path, env })
    return log
  }
  const where = `the embedded log at ${path}`
  // One of the framework's topics that nothing has written yet exists as soon as it is used: it is empty here.
  const requireTopic = (topic: string) => {
    if (!open().topic(topic) && !knownTopicConfig(topic, env)) throw missingTopic(topic, where)
  }
  const liveMembers = async (groupId: string) => {
    const member = liveMember(open(), groupId, sessionTimeoutMs)
    return member ? [`pid ${member.pid} on ${member.host}`] : []
  }
  return {
    target: LogTargets.EMBEDDED,
    description: `embedded log ${path}`,
    async topicExists(topic) {
      return open().topic(topic) !== undefined || knownTopicConfig(topic, env) !== undefined
    },
    async partitions(topic) {
      requireTopic(topic)
      const l = open()
      return l
        .partitions(topic)
        .map((p) => ({ partition: p.partition, start: l.startOffset(topic, p.partition), end: p.end }))
    },
    async offsetsForTime(topic, ms) {
      requireTopic(topic)
      const l = open()
      const first = l.statement(
        'SELECT MIN(offset) AS offset FROM records WHERE topic = ? AND partition = ? AND timestamp >= ?'
      )
      const out = new Map<number, bigint>()
      for (const p of l.partitions(topic)) {
        const row = l.query('reading offsets', () => first.get(topic, p.partition, ms)) as { offset: number | null }
        out.set(p.partition, row.offset === null ? p.end : BigInt(row.offset))
      }
      return out
    },
    async scan(topic, ranges, onRecord) {
      requireTopic(topic)
      const l = open()
      for (const range of ranges) {
        let from = range.from
        while (from < range.to) {
          const chunk = l.read(topic, range.partition, from, 1000, 16 * 1024 * 1024)
          if (chunk.length === 0) break
          for (const r of chunk) {
            if (r.offset >= range.to) break
            await onRecord({
              topic,
              partition: r.partition,
              offset: r.offset,
              timestamp: Number(r.timestamp),
              key: r.key,
              value: r.value,
              headers: r.headers
            })
          }
          from = chunk[chunk.length - 1]!.offset + 1n
          // Let timers run between chunks.
          await new Promise((resolve) => setImmediate(resolve))
        }
      }
    },
    async groupExists(groupId) {
      const row = open()
        .statement(
          `SELECT 1 AS found FROM group_offsets WHERE group_id = ?
           UNION ALL SELECT 1 FROM group_members WHERE group_id = ? LIMIT 1`
        )
        .get(groupId, groupId)
      return row !== undefined
    },
    async groupTopics(groupId) {
      const rows = open()
        .statement('SELECT DISTINCT topic FROM group_offsets WHERE group_id = ? ORDER BY topic')
        .all(groupId) as { topic: string }[]
      return rows.map((r) => r.topic)
    },
    async committed(groupId, topic) {
      const l = open()
      return l.query(`reading offsets of group ${groupId}`, () => {
        const rows = l
          .statement('SELECT partition, offset FROM group_offsets WHERE group_id = ? AND topic = ?')
          .all(groupId, topic) as { partition: number; offset: number }[]
        return new Map(rows.map((r) => [Number(r.partition), BigInt(r.offset)]))
      })
    },
    liveMembers,
    async commit(groupId, topic, offsets) {
      const l = open()
      const members = await liveMembers(groupId)
      if (members.length > 0) throw liveRefusal(groupId, members)
      if (offsets.size === 0) return
      // Take the group's lease for the commit, so a runner starting meanwhile is refused rather than overwritten.
      const member = joinGroup(l, groupId, sessionTimeoutMs)
      try {
        commitOffsets(
          l,
          member,
          [...offsets].map(([partition, offset]) => ({ topic, partition, offset }))
        )
      } finally {
        leaveGroup(l, member)
      }
    },
    producer() {
      const producer = createEmbeddedProducer({ path, env })
      producers.push(producer)
      return producer
    },
    async close() {
      for (const p of producers) await p.close().catch(() => {})
      log?.close()
      log = undefined
    }
  }
}
