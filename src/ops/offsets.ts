import { ErrorCodes, FatalError } from '../errors.ts'
import type { LogAccess } from './log.ts'

/**
 * Consumer-group offsets: where a group is on each partition and how far behind (`npm run topics -- offsets`), and
 * moving it (`reset-offsets`), refused while anyone consumes with the group.
 */
export interface GroupPartitionOffsets {
  readonly topic: string
  readonly partition: number
  /** The next offset the group reads; null when it committed nothing on this partition. */
  readonly committed: bigint | null
  readonly start: bigint
  readonly end: bigint
  /** Records the group has still to read: end − committed (end − start when nothing is committed). */
  readonly lag: bigint
}

export interface GroupOffsetsReport {
  readonly groupId: string
  /** Live members, one phrase each (empty: nobody consumes). */
  readonly members: string[]
  readonly partitions: GroupPartitionOffsets[]
}

export type ResetTarget = 'earliest' | 'latest' | { readonly time: number }

export interface OffsetReset {
  readonly topic: string
  readonly partition: number
  readonly from: bigint | null
  readonly to: bigint
}

async function requireGroup(access: LogAccess, groupId: string): Promise<void> {
  if (!(await access.groupExists(groupId))) {
    throw new FatalError(
      `consumer group ${groupId} does not exist on ${access.description}: check the id (a topology's groupId, e.g. ` +
        'SFM_MEMORY_GROUP or sfm-memory, with its prefix)',
      { code: ErrorCodes.CONFIG, details: { groupId } }
    )
  }
}

async function topicsOf(access: LogAccess, groupId: string, topics: readonly string[] | undefined): Promise<string[]> {
  if (topics && topics.length > 0) return [...topics]
  const committed = await access.groupTopics(groupId)
  if (committed.length === 0) {
    throw new FatalError(`consumer group ${groupId} has committed no offsets yet: name the topic with --topic`, {
      code: ErrorCodes.CONFIG,
      details: { groupId }
    })
  }
  return committed
}

/** The group's committed offset, the partition's start and end, and the lag, per partition of its topics. */
export async function groupOffsets(
  access: LogAccess,
  groupId: string,
  options: { topics?: readonly string[] } = {}
): Promise<GroupOffsetsReport> {
  await requireGroup(access, groupId)
  const topics = await topicsOf(access, groupId, options.topics)
  const partitions: GroupPartitionOffsets[] = []
  for (const topic of topics) {
    const offsets = await access.partitions(topic)
    const committed = await access.committed(groupId, topic)
    for (const p of offsets) {
      const c = committed.get(p.partition) ?? null
      const lag = p.end - (c ?? p.start)
      partitions.push({
        topic,
        partition: p.partition,
        committed: c,
        start: p.start,
        end: p.end,
        lag: lag < 0n ? 0n : lag
      })
    }
  }
  return { groupId, members: await access.liveMembers(groupId), partitions }
}

/**
 * Moves the group's committed offsets on its topics (or `topics`) to each partition's start, end, or first record at
 * or after a time. Refused, before anything changes, when the group does not exist or has live members (named).
 */
export async function resetGroupOffsets(
  access: LogAccess,
  groupId: string,
  to: ResetTarget,
  options: { topics?: readonly string[]; dryRun?: boolean } = {}
): Promise<{ resets: OffsetReset[]; applied: boolean }> {
  await requireGroup(access, groupId)
  const members = await access.liveMembers(groupId)
  if (members.length > 0) {
    throw new FatalError(
      `consumer group ${groupId} has ${members.length} live member(s): ${members.join('; ')} — stop them, then ` +
        'reset (nothing was changed)',
      { code: ErrorCodes.CONFIG, details: { groupId } }
    )
  }
  const topics = await topicsOf(access, groupId, options.topics)
  const resets: OffsetReset[] = []
  for (const topic of topics) {
    const offsets = await access.partitions(topic)
    const committed = await access.committed(groupId, topic)
    const atTime = typeof to === 'object' ? await access.offsetsForTime(topic, to.time) : undefined
    for (const p of offsets) {
      const target = to === 'earliest' ? p.start : to === 'latest' ? p.end : (atTime!.get(p.partition) ?? p.end)
      resets.push({ topic, partition: p.partition, from: committed.get(p.partition) ?? null, to: target })
    }
  }
  if (options.dryRun) return { resets, applied: false }
  for (const topic of topics) {
    const offsets = new Map(resets.filter((r) => r.topic === topic).map((r) => [r.partition, r.to]))
    await access.commit(groupId, topic, offsets)
  }
  return { resets, applied: true }
}

/** Where a shadow run starts on one partition, and whether that is the real group's committed offset. */
export interface ShadowStart {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly fromRealGroup: boolean
}

/**
 * Points a shadow run's group at where the real group stands, so the run shows what the real group would do next:
 * per partition the real group's committed offset, or — where it committed nothing — the partition's start or end,
 * as the real group would begin (`drainOldEvents`). Only the shadow group is written; the real one is only read.
 * Refused (FatalError) while the shadow group has live members (another shadow run).
 */
export async function seedShadowGroup(
  access: LogAccess,
  shadow: {
    readonly groupId: string
    readonly realGroupId: string
    readonly topics: readonly string[]
    readonly drainOldEvents: boolean
  }
): Promise<ShadowStart[]> {
  if (shadow.groupId === shadow.realGroupId) {
    throw new FatalError(`a shadow run must not consume as the real group ${shadow.realGroupId}`, {
      code: ErrorCodes.CONFIG
    })
  }
  const starts: ShadowStart[] = []
  for (const topic of shadow.topics) {
    const partitions = await access.partitions(topic)
    const committed = await access.committed(shadow.realGroupId, topic)
    const offsets = new Map<number, bigint>()
    for (const p of partitions) {
      const real = committed.get(p.partition)
      const offset = real ?? (shadow.drainOldEvents ? p.start : p.end)
      offsets.set(p.partition, offset)
      starts.push({ topic, partition: p.partition, offset, fromRealGroup: real !== undefined })
    }
    await access.commit(shadow.groupId, topic, offsets)
  }
  return starts
}
