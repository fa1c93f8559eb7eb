import { type Admin, ConfigResourceTypes, IncrementalAlterConfigOperationTypes } from '@platformatic/kafka'
import { prefixTopic } from '../config.ts'
import { ErrorCodes, FatalError, RetriableError } from '../errors.ts'

/**
 * The framework's Kafka topics as code: the single source of truth that `npm run topics -- apply` reconciles
 * against a cluster and that deployment manifests (e.g. Strimzi KafkaTopic resources) are generated from. Change a
 * topic here, never by hand on a broker: `apply` would report the drift and put it back.
 */
export const TopicNames = {
  EVENTS: 'memory.events',
  LATEST: 'memory.latest',
  AUDIT: 'memory.audit',
  EMBEDDING_REQUESTS: 'embedding.requests',
  EMBEDDING_RESPONSES: 'embedding.responses',
  DLQ: 'memory.dlq'
} as const
export type TopicName = (typeof TopicNames)[keyof typeof TopicNames]

const HOUR_MS = 3_600_000
const DAY_MS = 24 * HOUR_MS

/**
 * Largest record batch a topic accepts. The broker default (1 MiB + 12 bytes) would refuse a single 1 MiB event
 * (the produce CLI's line limit) once key, headers and batch framing are added, and the DLQ must accept anything a
 * source topic accepted plus the error headers it adds.
 */
const MAX_MESSAGE_BYTES = String(2 * 1024 * 1024)

/**
 * `partitions: 'events'` means "as many as memory.events": every topic keyed by memory id has the same count so
 * the same id lands on the same partition number everywhere (co-partitioned), which keeps per-id order across the
 * pipeline and lets a consumer join them partition by partition.
 */
export interface TopicSpecTemplate {
  readonly name: TopicName
  readonly description: string
  readonly partitions: 'events' | number
  readonly configs: Readonly<Record<string, string>>
}

/** Topic configs without `min.insync.replicas`, which follows the replication factor (see `minInsyncReplicasFor`). */
export const TOPIC_SPECS = [
  {
    name: TopicNames.EVENTS,
    description: 'Memory write events, keyed by memory id. The pipeline input; replayable for a week.',
    partitions: 'events',
    configs: {
      'cleanup.policy': 'delete',
      'retention.ms': String(7 * DAY_MS),
      'max.message.bytes': MAX_MESSAGE_BYTES
    }
  },
  {
    name: TopicNames.LATEST,
    description: 'Latest state per memory id (null value = deleted). Compacted: a new consumer rebuilds the view.',
    partitions: 'events',
    configs: {
      'cleanup.policy': 'compact',
      // Compact once 10% of the log is superseded (default 50%): the view is re-read on every rebuild, so keep it
      // close to one record per id at the price of some extra cleaner I/O.
      'min.cleanable.dirty.ratio': '0.1',
      // The active segment is never compacted; rolling hourly (default 7 d) bounds how long duplicates linger.
      'segment.ms': String(HOUR_MS),
      // Tombstones stay a day so a consumer that is less than a day behind still sees the delete.
      'delete.retention.ms': String(DAY_MS),
      'max.message.bytes': MAX_MESSAGE_BYTES
    }
  },
  {
    name: TopicNames.AUDIT,
    description: 'Append-only audit trail of every accepted write. Kept one year; archive elsewhere for longer.',
    partitions: 'events',
    configs: {
      // Bounded (365 d) rather than infinite: the trail holds personal data and a single broker's disk is finite;
      // longer legal retention belongs in an archive (object storage / tiered storage), not in an unbounded log.
      'cleanup.policy': 'delete',
      'retention.ms': String(365 * DAY_MS),
      'retention.bytes': '-1',
      'max.message.bytes': MAX_MESSAGE_BYTES
    }
  },
  {
    name: TopicNames.EMBEDDING_REQUESTS,
    description: 'Texts waiting for an embedding, keyed by memory id. A week covers an embedder outage.',
    partitions: 'events',
    configs: {
      'cleanup.policy': 'delete',
      'retention.ms': String(7 * DAY_MS),
      'max.message.bytes': MAX_MESSAGE_BYTES
    }
  },
  {
    name: TopicNames.EMBEDDING_RESPONSES,
    description: 'Embedding vectors, keyed by memory id, for the vector-store sink.',
    partitions: 'events',
    configs: {
      'cleanup.policy': 'delete',
      'retention.ms': String(7 * DAY_MS),
      'max.message.bytes': MAX_MESSAGE_BYTES
    }
  },
  {
    name: TopicNames.DLQ,
    description: 'Dead letters: the original record plus error headers. Kept 30 days for inspection and redrive.',
    // Low volume and no cross-topic join: a few partitions are plenty and keep redrive simple.
    partitions: 3,
    configs: {
      'cleanup.policy': 'delete',
      'retention.ms': String(30 * DAY_MS),
      'max.message.bytes': MAX_MESSAGE_BYTES
    }
  }
] as const satisfies readonly TopicSpecTemplate[]

/** A concrete topic to reconcile. */
export interface TopicSpec {
  readonly name: string
  readonly partitions: number
  readonly replicationFactor: number
  readonly configs: Readonly<Record<string, string>>
}

export interface TopicSpecsOptions {
  /**
   * Prepended with a dot (`t123` → `t123.memory.events`, src/config.ts `prefixTopic`) so tests and tenants get an
   * isolated set. Default: `SFM_TOPIC_PREFIX`, as the topologies use it.
   */
  prefix?: string
  /** Partitions of memory.events and the topics co-partitioned with it. Default: `SFM_EVENTS_PARTITIONS` or 6. */
  partitions?: number
  /** Default: `SFM_REPLICATION_FACTOR` or 1 (the single-broker dev stack). */
  replicationFactor?: number
  /** Default: derived from the replication factor (see `minInsyncReplicasFor`). */
  minInsyncReplicas?: number
  env?: NodeJS.ProcessEnv
}

export const defaultTopicSpecsOptions = {
  prefix: '',
  partitions: 6,
  replicationFactor: 1
} satisfies Partial<TopicSpecsOptions>

/** Kafka's limit on topic names. */
const MAX_TOPIC_NAME = 249
const MAX_PARTITIONS = 10_000

/**
 * With acks=all, `min.insync.replicas` is how many copies must exist before a write is acknowledged. RF 3 → 2 is
 * the usual choice (one broker may be down, writes still durable on two); RF 1 or 2 → 1, because requiring every
 * replica would stop all writes whenever one broker restarts.
 */
export function minInsyncReplicasFor(replicationFactor: number): number {
  return Math.max(1, Math.min(2, replicationFactor - 1))
}

function positiveInteger(value: number | string | undefined, what: string, max: number): number | undefined {
  if (value === undefined || value === '') return undefined
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new FatalError(`${what}: expected an integer from 1 to ${max}, got "${value}"`, { code: ErrorCodes.CONFIG })
  }
  return n
}

/** The concrete specs for a cluster: prefix, partition count and replication applied, all validated. */
export function topicSpecs(options: TopicSpecsOptions = {}): TopicSpec[] {
  const env = options.env ?? process.env
  const prefix = options.prefix ?? env.SFM_TOPIC_PREFIX ?? defaultTopicSpecsOptions.prefix
  if (prefix && !/^[A-Za-z0-9._-]+$/.test(prefix)) {
    throw new FatalError(`topic prefix "${prefix}" may only contain letters, digits, ".", "_" and "-"`, {
      code: ErrorCodes.CONFIG
    })
  }
  const partitions =
    positiveInteger(options.partitions, 'partitions', MAX_PARTITIONS) ??
    positiveInteger(env.SFM_EVENTS_PARTITIONS, 'SFM_EVENTS_PARTITIONS', MAX_PARTITIONS) ??
    defaultTopicSpecsOptions.partitions
  const replicationFactor =
    positiveInteger(options.replicationFactor, 'replication factor', 32) ??
    positiveInteger(env.SFM_REPLICATION_FACTOR, 'SFM_REPLICATION_FACTOR', 32) ??
    defaultTopicSpecsOptions.replicationFactor
  const minInsync =
    positiveInteger(options.minInsyncReplicas, 'min.insync.replicas', 32) ?? minInsyncReplicasFor(replicationFactor)
  if (minInsync > replicationFactor) {
    throw new FatalError(
      `min.insync.replicas ${minInsync} exceeds the replication factor ${replicationFactor}: no write could succeed`,
      { code: ErrorCodes.CONFIG }
    )
  }
  return TOPIC_SPECS.map((template: TopicSpecTemplate) => {
    const name = prefixTopic(prefix, template.name)
    if (name.length > MAX_TOPIC_NAME) {
      throw new FatalError(`topic name "${name}" is longer than Kafka's ${MAX_TOPIC_NAME} characters`, {
        code: ErrorCodes.CONFIG
      })
    }
    return {
      name,
      partitions: template.partitions === 'events' ? partitions : template.partitions,
      replicationFactor,
      configs: { ...template.configs, 'min.insync.replicas': String(minInsync) }
    }
  })
}

export const TopicActions = {
  CREATE: 'create',
  ALTER: 'alter',
  UP_TO_DATE: 'up-to-date',
  REFUSED: 'refused'
} as const
export type TopicAction = (typeof TopicActions)[keyof typeof TopicActions]

export interface ConfigChange {
  readonly name: string
  /** Current value on the broker (`null` when unset / unknown). */
  readonly from: string | null
  readonly to: string
}

export interface TopicChange {
  readonly topic: string
  readonly action: TopicAction
  readonly spec: TopicSpec
  /** Set when the partition count changes (create: from 0). */
  readonly partitions?: { readonly from: number; readonly to: number }
  readonly configs: readonly ConfigChange[]
  /** Why a change was refused. */
  readonly reasons: readonly string[]
}

export interface ReconcileResult {
  readonly changes: readonly TopicChange[]
  /** False for a dry run, or when a refusal stopped everything from being applied. */
  readonly applied: boolean
  /** False when any topic needs a change this tool will not make (shrinking, replication). */
  readonly ok: boolean
  /** One line per topic, in the diff notation (`+`, `~`, `=`, `!`). */
  readonly lines: readonly string[]
}

export interface ReconcileOptions {
  /** Compute and return the diff without changing anything. */
  dryRun?: boolean
  /** How long to wait for created / grown topics to have a leader on every partition. Default 30 s. */
  readyTimeoutMs?: number
}

/** Only the parts of the Admin client reconcile uses. */
export type TopicAdmin = Pick<
  Admin,
  | 'listTopics'
  | 'metadata'
  | 'listOffsets'
  | 'describeConfigs'
  | 'createTopics'
  | 'createPartitions'
  | 'incrementalAlterConfigs'
>

const configText = (configs: Readonly<Record<string, string>>) =>
  Object.entries(configs)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')

export function formatChange(change: TopicChange): string {
  switch (change.action) {
    case TopicActions.CREATE:
      return `+ create ${change.topic} partitions=${change.spec.partitions} replication-factor=${change.spec.replicationFactor} ${configText(change.spec.configs)}`
    case TopicActions.ALTER: {
      const parts: string[] = []
      if (change.partitions) parts.push(`partitions ${change.partitions.from} -> ${change.partitions.to}`)
      for (const c of change.configs) parts.push(`${c.name} ${c.from ?? '(unset)'} -> ${c.to}`)
      return `~ alter ${change.topic} ${parts.join(', ')}`
    }
    case TopicActions.UP_TO_DATE:
      return `= ${change.topic} up to date`
    default:
      return `! ${change.topic}: ${change.reasons.join('; ')}`
  }
}

/** Compares specs with the cluster. Reads only. */
export async function planTopics(admin: TopicAdmin, specs: readonly TopicSpec[]): Promise<TopicChange[]> {
  const names = new Set(specs.map((s) => s.name))
  if (names.size !== specs.length) {
    throw new FatalError('topic specs name the same topic twice', { code: ErrorCodes.CONFIG })
  }
  const existing = new Set((await admin.listTopics()).filter((t) => names.has(t)))
  const existingNames = [...existing]
  const metadata = await admin.metadata({ topics: existingNames, forceUpdate: true })
  const described = new Map<string, Map<string, string | null>>()
  if (existingNames.length > 0) {
    const configs = await admin.describeConfigs({
      resources: specs
        .filter((s) => existing.has(s.name))
        .map((s) => ({
          resourceType: ConfigResourceTypes.TOPIC,
          resourceName: s.name,
          configurationKeys: Object.keys(s.configs)
        }))
    })
    for (const resource of configs) {
      described.set(
        resource.resourceName,
        new Map(resource.configs.map((c): [string, string | null] => [c.name, c.value ?? null]))
      )
    }
  }
  const brokers = metadata.brokers.size

  return specs.map((spec): TopicChange => {
    const reasons: string[] = []
    if (spec.replicationFactor > brokers) {
      reasons.push(
        `replication factor ${spec.replicationFactor} needs at least as many brokers, the cluster has ${brokers}`
      )
    }
    if (!existing.has(spec.name)) {
      if (reasons.length > 0) return { topic: spec.name, action: TopicActions.REFUSED, spec, configs: [], reasons }
      return {
        topic: spec.name,
        action: TopicActions.CREATE,
        spec,
        partitions: { from: 0, to: spec.partitions },
        configs: Object.entries(spec.configs).map(([name, to]) => ({ name, from: null, to })),
        reasons
      }
    }
    const topic = metadata.topics.get(spec.name)
    if (!topic) throw new FatalError(`topic ${spec.name} is listed but has no metadata`, { code: ErrorCodes.INTERNAL })
    const current = topic.partitionsCount
    if (current > spec.partitions) {
      reasons.push(
        `cannot shrink from ${current} to ${spec.partitions} partitions (Kafka cannot remove partitions: keep ${current} with --partitions ${current}, or recreate the topic)`
      )
    }
    const replicas = topic.partitions[0]?.replicas.length ?? 0
    if (replicas !== spec.replicationFactor) {
      reasons.push(
        `replication factor is ${replicas}, spec says ${spec.replicationFactor} (change it with a partition reassignment, not with this tool)`
      )
    }
    const actual = described.get(spec.name) ?? new Map<string, string | null>()
    const configs = Object.entries(spec.configs)
      .filter(([name, to]) => !sameConfigValue(actual.get(name) ?? null, to))
      .map(([name, to]) => ({ name, from: actual.get(name) ?? null, to }))
    if (reasons.length > 0) return { topic: spec.name, action: TopicActions.REFUSED, spec, configs, reasons }
    const grow = current < spec.partitions ? { from: current, to: spec.partitions } : undefined
    if (!grow && configs.length === 0) {
      return { topic: spec.name, action: TopicActions.UP_TO_DATE, spec, configs, reasons }
    }
    return {
      topic: spec.name,
      action: TopicActions.ALTER,
      spec,
      ...(grow ? { partitions: grow } : {}),
      configs,
      reasons
    }
  })
}

/** The broker may print a number differently than we wrote it (e.g. `0.10` vs `0.1`). */
function sameConfigValue(actual: string | null, wanted: string): boolean {
  if (actual === wanted) return true
  if (actual === null) return false
  const a = Number(actual)
  const b = Number(wanted)
  return actual.trim() !== '' && Number.isFinite(a) && Number.isFinite(b) && a === b
}

/**
 * Makes the cluster match the specs: creates missing topics, adds partitions, sets configs that differ (configs
 * the specs do not mention are left alone). Idempotent. Refuses, and then applies nothing at all, when a topic
 * would need fewer partitions or another replication factor; `ok` is false and the lines say why.
 */
export async function reconcileTopics(
  admin: TopicAdmin,
  specs: readonly TopicSpec[],
  options: ReconcileOptions = {}
): Promise<ReconcileResult> {
  const changes = await planTopics(admin, specs)
  const lines = changes.map(formatChange)
  const ok = changes.every((c) => c.action !== TopicActions.REFUSED)
  if (options.dryRun || !ok) return { changes, applied: false, ok, lines }

  // One request per topic: CreateTopics takes one config list for all the topics of a request.
  const creates = changes.filter((c) => c.action === TopicActions.CREATE)
  await Promise.all(
    creates.map((c) =>
      admin.createTopics({
        topics: [c.topic],
        partitions: c.spec.partitions,
        replicas: c.spec.replicationFactor,
        configs: Object.entries(c.spec.configs).map(([name, value]) => ({ name, value }))
      })
    )
  )
  const alters = changes.filter((c) => c.action === TopicActions.ALTER)
  const grows = alters.filter((c) => c.partitions !== undefined)
  if (grows.length > 0) {
    await admin.createPartitions({ topics: grows.map((c) => ({ name: c.topic, count: c.partitions!.to })) })
  }
  const reconfigured = alters.filter((c) => c.configs.length > 0)
  if (reconfigured.length > 0) {
    // Incremental, so configs outside the spec (set by an operator on purpose) survive; AlterConfigs would reset them.
    await admin.incrementalAlterConfigs({
      resources: reconfigured.map((c) => ({
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: c.topic,
        configs: c.configs.map((cfg) => ({
          name: cfg.name,
          configOperation: IncrementalAlterConfigOperationTypes.SET,
          value: cfg.to
        }))
      }))
    })
  }
  const touched = [...creates, ...alters].map((c) => c.spec)
  await waitUntilApplied(admin, touched, options.readyTimeoutMs ?? 30_000)
  return { changes, applied: true, ok, lines }
}

/**
 * The admin APIs return once the controller has recorded a change; each broker applies it from the metadata log a
 * little later (on a busy broker, e.g. one deleting topics, DescribeConfigs showed the old value for a while). Wait
 * until the cluster shows every change and every partition has a leader, so that a producer started right after
 * `apply` finds its topic and an immediate second `apply` reports everything up to date.
 */
async function waitUntilApplied(admin: TopicAdmin, specs: readonly TopicSpec[], timeoutMs: number): Promise<void> {
  if (specs.length === 0) return
  const names = specs.map((s) => s.name)
  await waitUntilNone('topic changes not visible', names, timeoutMs, async (pending) => {
    try {
      const leaderless = await leaderlessTopics(admin, names)
      const plan = await planTopics(admin, specs)
      return [
        ...new Set([...leaderless, ...plan.filter((c) => c.action !== TopicActions.UP_TO_DATE).map((c) => c.topic)])
      ]
    } catch {
      // A topic created a moment ago may still be unknown to the broker that answers; try again.
      return pending
    }
  })
}

/**
 * The topics of `names` the cluster does not show yet, that have a partition without a leader, or whose leaders do
 * not serve them yet. The last is asked with ListOffsets, which the leader's replica manager answers: a KRaft broker
 * updates its metadata cache (what Metadata answers) before it makes itself the partition's leader, and in between
 * a produce meets NOT_LEADER_OR_FOLLOWER (seen in bench/memory-kv.ts's setup after the metadata showed every
 * leader: "failed after 5000 acknowledged messages", the idempotent producer's retry then refused with
 * OUT_OF_ORDER_SEQUENCE_NUMBER).
 */
export async function leaderlessTopics(
  admin: Pick<Admin, 'metadata' | 'listOffsets'>,
  names: readonly string[]
): Promise<string[]> {
  const metadata = await admin.metadata({ topics: [...names], forceUpdate: true })
  const led = (name: string) => metadata.topics.get(name)?.partitions.every((p) => p.leader >= 0) === true
  const leaderless = names.filter((name) => !led(name))
  const probe = names.filter(led)
  if (probe.length === 0) return leaderless
  try {
    await admin.listOffsets({
      topics: probe.map((name) => ({
        name,
        partitions: metadata.topics
          .get(name)!
          .partitions.map((_p, partitionIndex) => ({ partitionIndex, timestamp: -1n }))
      }))
    })
    return leaderless
  } catch {
    return [...leaderless, ...probe]
  }
}

/**
 * Waits until every partition of `names` has a leader. CreateTopics returns once the controller has recorded the
 * topic; a producer that starts at once can meet NOT_LEADER_OR_FOLLOWER on a partition whose leader is not in place
 * yet and give up after its retries (seen in bench/memory-kv.ts's setup: "failed after 3000 acknowledged messages").
 */
export async function waitForLeaders(
  admin: Pick<Admin, 'metadata' | 'listOffsets'>,
  names: readonly string[],
  timeoutMs = 30_000
): Promise<void> {
  await waitUntilNone('topics without a leader', names, timeoutMs, async (pending) => {
    try {
      return await leaderlessTopics(admin, names)
    } catch {
      // One topic still unknown to the broker that answers fails the whole request: ask topic by topic, so that
      // the others count as ready once they are and a timeout names only the missing ones.
      const still: string[] = []
      for (const name of pending) still.push(...(await leaderlessTopics(admin, [name]).catch(() => [name])))
      return still
    }
  })
}

/**
 * Asks `pendingNow` (given the previous answer) every 100 ms which of `names` are not ready, until none is; after
 * `timeoutMs` throws a RetriableError saying `what` and naming the ones still pending.
 */
async function waitUntilNone(
  what: string,
  names: readonly string[],
  timeoutMs: number,
  pendingNow: (previous: readonly string[]) => Promise<readonly string[]>
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let pending: readonly string[] = names
  for (;;) {
    pending = await pendingNow(pending)
    if (pending.length === 0) return
    if (Date.now() > deadline) {
      throw new RetriableError(`${what} after ${timeoutMs} ms: ${pending.join(', ')}`, { code: ErrorCodes.TIMEOUT })
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}
