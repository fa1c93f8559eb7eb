import { Admin } from '@platformatic/kafka'
import { ErrorCodes, FatalError, RetriableError } from '../errors.ts'
import { kafkaConnectionOptions, parseBrokers } from '../kafka/connection.ts'
import { openEmbeddedLog } from '../log/embedded-log.ts'
import { commitOffsets, joinGroup, leaveGroup } from '../log/groups.ts'
import { embeddedLogPath, type LogTarget, LogTargets, logTarget } from '../log/options.ts'
import type { PartitionSpan } from './types.ts'

export type { PartitionSpan }

export interface RewindOptions {
  groupId: string
  topics: readonly string[]
  /** Default as logSource: Kafka when brokers are given or KAFKA_BROKERS is set, else the embedded log. */
  target?: LogTarget
  brokers?: string[]
  /** Embedded log folder (default SFM_DATA_DIR or ./.sfm-data). */
  dataDir?: string
}

// Kafka's "earliest" and "latest" in a ListOffsets request.
const EARLIEST = -2n
const LATEST = -1n

/**
 * Rewinds a consumer group to the start of its topics — its committed offsets are forgotten, so a source with
 * `drainOldEvents` (the default) reads everything again — and returns each partition's span at that moment, for
 * progress. For a job that must see a whole compacted topic on every run (topologies/reindex.ts).
 *
 * Kafka: the group is deleted (DeleteGroups); it must have no live member, so a second run of the same job is
 * refused instead of sharing the partitions. Embedded log: the group's offsets are set to each partition's start,
 * under the group's lease (a live member is refused the same way).
 */
export async function rewindGroup(
  options: RewindOptions,
  env: NodeJS.ProcessEnv = process.env
): Promise<PartitionSpan[]> {
  if (!options.groupId) throw new FatalError('rewindGroup: groupId is required', { code: ErrorCodes.CONFIG })
  if (options.topics.length === 0) throw new FatalError('rewindGroup: name a topic', { code: ErrorCodes.CONFIG })
  const target = logTarget({ target: options.target, brokers: options.brokers }, env)
  return target === LogTargets.KAFKA ? rewindKafka(options, env) : rewindEmbedded(options, env)
}

async function rewindKafka(options: RewindOptions, env: NodeJS.ProcessEnv): Promise<PartitionSpan[]> {
  const brokers = options.brokers ?? parseBrokers(env.KAFKA_BROKERS)
  const admin = new Admin({ ...kafkaConnectionOptions(env), clientId: 'sfm-rewind', bootstrapBrokers: brokers })
  try {
    try {
      await admin.deleteGroups({ groups: [options.groupId] })
    } catch (error) {
      const codes = protocolCodes(error)
      if (codes.includes('NON_EMPTY_GROUP')) {
        throw new FatalError(
          `consumer group ${options.groupId} has live members (is another run going?): stop it, or set another group`,
          { code: ErrorCodes.CONFIG, cause: error }
        )
      }
      // Never committed (first run), or already gone: nothing to forget.
      if (!codes.includes('GROUP_ID_NOT_FOUND')) throw asRetriable(error, `deleting group ${options.groupId}`)
    }
    const metadata = await admin.metadata({ topics: [...options.topics] }).catch((error: unknown) => {
      if (/unknown topic/i.test(String((error as Error)?.message))) {
        throw new FatalError(`topic ${options.topics.join(', ')} does not exist: run \`npm run topics -- apply\``, {
          code: ErrorCodes.CONFIG,
          cause: error
        })
      }
      throw asRetriable(error, 'reading topic metadata')
    })
    const request = (timestamp: bigint) =>
      options.topics.map((name) => ({
        name,
        partitions: Array.from({ length: metadata.topics.get(name)?.partitionsCount ?? 0 }, (_, partitionIndex) => ({
          partitionIndex,
          timestamp
        }))
      }))
    const [starts, ends] = await Promise.all([
      admin.listOffsets({ topics: request(EARLIEST) }),
      admin.listOffsets({ topics: request(LATEST) })
    ]).catch((error: unknown) => {
      throw asRetriable(error, 'listing offsets')
    })
    const endOf = new Map<string, bigint>()
    for (const t of ends) for (const p of t.partitions) endOf.set(`${t.name}:${p.partitionIndex}`, p.offset)
    const spans: PartitionSpan[] = []
    for (const t of starts) {
      for (const p of t.partitions) {
        const end = endOf.get(`${t.name}:${p.partitionIndex}`) ?? p.offset
        spans.push({ topic: t.name, partition: p.partitionIndex, start: p.offset, end })
      }
    }
    return spans.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition)
  } finally {
    await admin.close().catch(() => {})
  }
}

async function rewindEmbedded(options: RewindOptions, env: NodeJS.ProcessEnv): Promise<PartitionSpan[]> {
  const log = openEmbeddedLog({ path: embeddedLogPath({ dataDir: options.dataDir }, env) })
  try {
    log.ensureTopics(options.topics)
    const spans: PartitionSpan[] = []
    for (const topic of options.topics) {
      for (const { partition, end } of log.partitions(topic)) {
        spans.push({ topic, partition, start: log.startOffset(topic, partition), end })
      }
    }
    // Refused with a clear message when a live member holds the group; released at once (no heartbeats needed).
    const member = joinGroup(log, options.groupId, 10_000)
    try {
      commitOffsets(
        log,
        member,
        spans.map((s) => ({ topic: s.topic, partition: s.partition, offset: s.start }))
      )
    } finally {
      leaveGroup(log, member)
    }
    return spans
  } finally {
    log.close()
  }
}

/** Kafka protocol error ids (e.g. GROUP_ID_NOT_FOUND) anywhere in a @platformatic/kafka error tree. */
function protocolCodes(error: unknown, out: string[] = []): string[] {
  if (typeof error !== 'object' || error === null) return out
  const { apiId, errors } = error as { apiId?: unknown; errors?: unknown }
  if (typeof apiId === 'string') out.push(apiId)
  if (Array.isArray(errors)) for (const inner of errors) protocolCodes(inner, out)
  return out
}

function asRetriable(error: unknown, doing: string): unknown {
  if (error instanceof FatalError) return error
  return new RetriableError(`kafka: ${doing} failed: ${(error as Error)?.message ?? String(error)}`, { cause: error })
}
