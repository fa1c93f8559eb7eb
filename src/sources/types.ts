import type { Origin } from '../streams/envelope.ts'

export interface TopicPartition {
  readonly topic: string
  readonly partition: number
}

/** One partition's records at rewind time: offsets `[start, end)`, what a pass from the start reads. */
export interface PartitionSpan extends TopicPartition {
  readonly start: bigint
  readonly end: bigint
}

/** One message as a source hands it over: raw bytes plus where it came from. */
export interface SourceMessage {
  readonly key: Buffer | undefined
  readonly value: Buffer
  readonly headers: ReadonlyMap<string, Buffer>
  readonly origin: Origin
}

/** Commit `offset` (the next offset to read) for a partition. */
export interface CommitRequest extends TopicPartition {
  readonly offset: bigint
  readonly leaderEpoch: number
}

/** What a source tells the runtime about group membership. */
export interface SourceListener {
  /** A rebalance is starting: commit what is safe now, before partitions move. */
  rebalancing(): void
  /** The member's assignment after a (re)join. Partitions not listed are no longer ours. */
  assigned(partitions: readonly TopicPartition[]): void
  /** Consumer lag as the client last measured it: topic → lag per partition index (-1: not assigned here). */
  lag?(lag: ReadonlyMap<string, readonly bigint[]>): void
  /**
   * The source lost its broker (a restart, a leader move, a network cut) and holds: `next` waits, nothing is skipped,
   * and it reconnects after `delayMs`. Called before each wait; `attempt` counts from 1 per outage.
   */
  reconnecting?(error: unknown, attempt: number, delayMs: number): void
  /** The source is reading again after `reconnecting`: held `heldMs` in all, over `attempts` attempts. */
  reconnected?(heldMs: number, attempts: number): void
}

/**
 * A pull-based source: the runtime calls `next` only when its in-flight window has room, which is what bounds
 * memory. Sources never commit by themselves; `commit` is called by the runtime's commit coordinator.
 */
export interface Source {
  readonly kind: string
  /** One line for the start banner, e.g. `kafka memory.events (group sfm-memory) at 127.0.0.1:9092`. */
  readonly description: string
  /** Caps how many messages the source buffers ahead of `next` (called before `open`). */
  limitBuffer?(messages: number): void
  /**
   * Shadow mode (before `open`): consume under a group of its own, derived from the real one, so that nothing this
   * run commits moves the real group. Returns both names and the topics. Sources without groups lack it.
   */
  shadow?(): ShadowGroup
  open(listener: SourceListener): Promise<void>
  /** The next message, or undefined once the source has ended or `signal` aborted. */
  next(signal: AbortSignal): Promise<SourceMessage | undefined>
  /**
   * Optional fast path: a message the source already holds, taken synchronously, or undefined when none is buffered
   * right now (which says nothing about the end: `next` tells that, and throws the source's errors). The runtime
   * calls it, after an awaited `next`, only while its in-flight window has room, so it drains what one fetch
   * delivered without a promise per message.
   */
  tryNext?(): SourceMessage | undefined
  commit(offsets: readonly CommitRequest[]): Promise<void>
  close(): Promise<void>
}

/** The groups of a shadow run: the derived one it consumes with, and the real one it never commits for. */
export interface ShadowGroup {
  readonly groupId: string
  readonly realGroupId: string
  readonly topics: readonly string[]
  /** Where the real group starts on a partition it has committed nothing for: earliest (true) or latest. */
  readonly drainOldEvents: boolean
}

/** The group a shadow run of `groupId` consumes with. */
export function shadowGroupId(groupId: string): string {
  return `${groupId}.shadow`
}
