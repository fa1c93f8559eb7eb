import { TOPIC_SPECS, type TopicSpec, topicSpecs } from '../kafka/topics.ts'

/** A topic of the embedded log: partitions and retention, as its row in `topics`. */
export interface EmbeddedTopicConfig {
  readonly name: string
  readonly partitions: number
  readonly cleanupPolicy: 'delete' | 'compact' | 'compact,delete'
  /** Records older than this are removed by `retain` (null: kept forever). */
  readonly retentionMs: number | null
  /** Per partition, as Kafka's `retention.bytes` (null: unlimited). */
  readonly retentionBytes: number | null
  /** How long a tombstone survives compaction. */
  readonly deleteRetentionMs: number
}

const DAY_MS = 86_400_000

function positiveOrNull(value: string | undefined): number | null {
  if (value === undefined) return null
  const n = Number(value)
  return Number.isSafeInteger(n) && n > 0 ? n : null
}

/** The embedded form of a Kafka topic spec: same partitions, same retention and cleanup policy. */
export function embeddedTopicConfig(spec: Pick<TopicSpec, 'name' | 'partitions' | 'configs'>): EmbeddedTopicConfig {
  const policy = spec.configs['cleanup.policy']
  return {
    name: spec.name,
    partitions: spec.partitions,
    cleanupPolicy: policy === 'compact' || policy === 'compact,delete' ? policy : 'delete',
    retentionMs: positiveOrNull(spec.configs['retention.ms']),
    retentionBytes: positiveOrNull(spec.configs['retention.bytes']),
    deleteRetentionMs: positiveOrNull(spec.configs['delete.retention.ms']) ?? DAY_MS
  }
}

/**
 * The config of one of the framework's topics (src/kafka/topics.ts) by its name — bare (`memory.events`) or with a
 * prefix (`P.memory.events`, the one rule of `SFM_TOPIC_PREFIX` and `npm run topics -- --prefix`: src/config.ts
 * `prefixTopic`) — or undefined for any other name. The embedded log creates these on first use, as
 * `npm run topics -- apply` would on a cluster; any other topic must be created explicitly
 * (`EmbeddedLog.createTopic`), so a typo fails loudly.
 */
export function knownTopicConfig(name: string, env: NodeJS.ProcessEnv = process.env): EmbeddedTopicConfig | undefined {
  const template = TOPIC_SPECS.find((t) => name === t.name || name.endsWith(`.${t.name}`))
  if (!template) return undefined
  const spec = topicSpecs({ env, prefix: '' }).find((s) => s.name === template.name)
  return spec ? embeddedTopicConfig({ ...spec, name }) : undefined
}
