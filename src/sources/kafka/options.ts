import { ErrorCodes, FatalError } from '../../errors.ts'
import { kafkaConnectionOptions, parseBrokers } from '../../kafka/connection.ts'
import type { KafkaSourceOptions } from './types.ts'

/** Moved to src/kafka/connection.ts (every Kafka client reads KAFKA_BROKERS); re-exported for existing imports. */
export { parseBrokers }

export const defaultKafkaSourceOptions = {
  clientId: 'sfm-streams',
  highWaterMark: 1024,
  maxBytes: 16 * 1024 * 1024,
  // Kafka's max.partition.fetch.bytes: a fetch spreads over the partitions (see KafkaSourceOptions).
  maxBytesPerPartition: 1024 * 1024,
  maxWaitTime: 500,
  sessionTimeout: 10_000,
  heartbeatInterval: 1_000,
  rebalanceTimeout: 30_000,
  reconnectBackoffMs: 250,
  reconnectBackoffMaxMs: 5_000,
  topicGoneMs: 5_000,
  lagIntervalMs: 5_000
} satisfies Partial<KafkaSourceOptions>

export type ResolvedKafkaSourceOptions = Required<Omit<KafkaSourceOptions, 'registry'>> &
  Pick<KafkaSourceOptions, 'registry'>

export function parseBoolean(value: string | undefined, variable: string, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback
  if (/^(1|true|yes|on)$/i.test(value)) return true
  if (/^(0|false|no|off)$/i.test(value)) return false
  throw new FatalError(`${variable}: expected true or false, got "${value}"`, { code: ErrorCodes.CONFIG })
}

/** Fills defaults from the environment and checks everything; throws FatalError naming what is wrong. */
export function resolveKafkaSourceOptions(
  options: KafkaSourceOptions,
  env: NodeJS.ProcessEnv = process.env
): ResolvedKafkaSourceOptions {
  const brokers = options.brokers ?? parseBrokers(env.KAFKA_BROKERS)
  if (brokers.length === 0) {
    throw new FatalError('no Kafka brokers: set KAFKA_BROKERS=host:port[,host:port] (or pass brokers)', {
      code: ErrorCodes.CONFIG
    })
  }
  if (!Array.isArray(options.topics) || options.topics.length === 0 || options.topics.some((t) => !t)) {
    throw new FatalError('kafka source: topics must name at least one topic', { code: ErrorCodes.CONFIG })
  }
  if (!options.groupId) throw new FatalError('kafka source: groupId is required', { code: ErrorCodes.CONFIG })
  const resolved: ResolvedKafkaSourceOptions = {
    ...defaultKafkaSourceOptions,
    ...options,
    brokers,
    connection: options.connection ?? kafkaConnectionOptions(env),
    drainOldEvents: options.drainOldEvents ?? parseBoolean(env.DRAIN_OLD_EVENTS, 'DRAIN_OLD_EVENTS', true)
  }
  const positive = [
    'highWaterMark',
    'maxBytes',
    'maxBytesPerPartition',
    'sessionTimeout',
    'heartbeatInterval',
    'rebalanceTimeout',
    'reconnectBackoffMs',
    'reconnectBackoffMaxMs'
  ] as const
  for (const key of positive) {
    const value = resolved[key]
    if (!Number.isInteger(value) || value < 1) {
      throw new FatalError(`kafka source: ${key} must be a positive integer, got ${value}`, { code: ErrorCodes.CONFIG })
    }
  }
  if (!Number.isInteger(resolved.topicGoneMs) || resolved.topicGoneMs < 0) {
    throw new FatalError(`kafka source: topicGoneMs must be a whole number ≥ 0, got ${resolved.topicGoneMs}`, {
      code: ErrorCodes.CONFIG
    })
  }
  if (resolved.reconnectBackoffMaxMs < resolved.reconnectBackoffMs) {
    throw new FatalError('kafka source: reconnectBackoffMaxMs must be at least reconnectBackoffMs', {
      code: ErrorCodes.CONFIG
    })
  }
  if (resolved.heartbeatInterval >= resolved.sessionTimeout) {
    throw new FatalError('kafka source: heartbeatInterval must be below sessionTimeout', { code: ErrorCodes.CONFIG })
  }
  return resolved
}
