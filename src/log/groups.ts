import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import { ErrorCodes, FatalError } from '../errors.ts'
import type { EmbeddedLog } from './embedded-log.ts'

/**
 * Consumer groups of the embedded log, simplified to one member per group per file: the member owns every
 * partition of its topics, so there is no rebalance protocol. A second member of the same group is refused while
 * the first is alive — sharing would mean splitting partitions between processes, which a single laptop runner does
 * not need and which a cluster does better. Use a different group id to read the same topics twice.
 *
 * Liveness is a lease row (`group_members`) with a heartbeat. A member is gone when its heartbeat is older than the
 * session timeout, or at once when its pid is on this host and no longer exists (so a runner restarted after kill -9
 * does not wait). Commits check the lease in the same transaction: a member that lost its group (it was paused
 * past the session timeout and someone took over) cannot overwrite the new member's offsets.
 */
export interface GroupMember {
  readonly groupId: string
  readonly memberId: string
  readonly pid: number
  readonly host: string
}

export interface OffsetCommit {
  readonly topic: string
  readonly partition: number
  /** The next offset to read. */
  readonly offset: bigint
}

type Row = Record<string, unknown>

/** Whether a process with this pid exists on this host (EPERM: it exists, but belongs to someone else). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * The group's member while it is alive (same rule as `joinGroup`: heartbeat within the session timeout, and on this
 * host a pid that still exists), else undefined. For tools that must not move a group someone consumes with.
 */
export function liveMember(log: EmbeddedLog, groupId: string, sessionTimeoutMs: number): GroupMember | undefined {
  const row = log.query(`reading members of group ${groupId}`, () =>
    log.statement('SELECT * FROM group_members WHERE group_id = ?').get(groupId)
  ) as Row | undefined
  if (!row) return undefined
  const pid = Number(row.pid)
  const host = String(row.host)
  const age = Date.now() - Number(row.heartbeat_at)
  const gone = age > sessionTimeoutMs || (host === hostname() && pid !== process.pid && !processExists(pid))
  return gone ? undefined : { groupId, memberId: String(row.member_id), pid, host }
}

/** Joins `groupId` as its only member, or throws a FatalError naming the live member that holds it. */
export function joinGroup(log: EmbeddedLog, groupId: string, sessionTimeoutMs: number): GroupMember {
  const member: GroupMember = { groupId, memberId: randomUUID(), pid: process.pid, host: hostname() }
  return log.transaction(`joining group ${groupId}`, () => {
    const now = Date.now()
    const current = log.statement('SELECT * FROM group_members WHERE group_id = ?').get(groupId) as Row | undefined
    if (current) {
      const pid = Number(current.pid)
      const host = String(current.host)
      const age = now - Number(current.heartbeat_at)
      const gone = age > sessionTimeoutMs || (host === member.host && pid !== process.pid && !processExists(pid))
      if (!gone) {
        throw new FatalError(
          `consumer group ${groupId} of the embedded log ${log.path} is held by pid ${pid} on ${host} ` +
            `(heartbeat ${Math.max(0, Math.round(age / 1000))} s ago): the embedded log allows one member per ` +
            'group — stop that runner first, or use another group id',
          { code: ErrorCodes.CONFIG, details: { groupId, pid, host } }
        )
      }
    }
    log
      .statement(
        `INSERT INTO group_members (group_id, member_id, pid, host, joined_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (group_id) DO UPDATE SET member_id = excluded.member_id, pid = excluded.pid,
           host = excluded.host, joined_at = excluded.joined_at, heartbeat_at = excluded.heartbeat_at`
      )
      .run(groupId, member.memberId, member.pid, member.host, now, now)
    return member
  })
}

function lost(log: EmbeddedLog, member: GroupMember): FatalError {
  const now = log.statement('SELECT pid, host FROM group_members WHERE group_id = ?').get(member.groupId) as
    | Row
    | undefined
  const by = now ? ` by pid ${String(now.pid)} on ${String(now.host)}` : ''
  return new FatalError(
    `consumer group ${member.groupId} of the embedded log ${log.path} was taken over${by} (this process missed ` +
      'its heartbeats for longer than the session timeout): stopping without committing',
    { code: ErrorCodes.INTERNAL, details: { groupId: member.groupId } }
  )
}

/** Renews the lease; throws a FatalError if another member took the group. */
export function heartbeat(log: EmbeddedLog, member: GroupMember): void {
  log.transaction(`heartbeat of group ${member.groupId}`, () => {
    const changed = log
      .statement('UPDATE group_members SET heartbeat_at = ? WHERE group_id = ? AND member_id = ?')
      .run(Date.now(), member.groupId, member.memberId)
    if (Number(changed.changes) === 0) throw lost(log, member)
  })
}

/** Gives the group up (on a clean close), so the next member joins at once. */
export function leaveGroup(log: EmbeddedLog, member: GroupMember): void {
  log.transaction(`leaving group ${member.groupId}`, () => {
    log.statement('DELETE FROM group_members WHERE group_id = ? AND member_id = ?').run(member.groupId, member.memberId)
  })
}

/** Committed offsets of a group: topic → partition → next offset to read. */
export function committedOffsets(log: EmbeddedLog, groupId: string, topics: readonly string[]) {
  const out = new Map<string, Map<number, bigint>>()
  log.query(`reading offsets of group ${groupId}`, () => {
    const statement = log.statement('SELECT partition, offset FROM group_offsets WHERE group_id = ? AND topic = ?')
    for (const topic of topics) {
      const partitions = new Map<number, bigint>()
      for (const row of statement.all(groupId, topic) as Row[]) {
        partitions.set(Number(row.partition), BigInt(row.offset as number))
      }
      out.set(topic, partitions)
    }
  })
  return out
}

/** Commits offsets in one transaction, after checking that `member` still holds the group. Renews the lease. */
export function commitOffsets(log: EmbeddedLog, member: GroupMember, offsets: readonly OffsetCommit[]): void {
  if (offsets.length === 0) return
  log.transaction(`committing offsets of group ${member.groupId}`, () => {
    const now = Date.now()
    const held = log
      .statement('UPDATE group_members SET heartbeat_at = ? WHERE group_id = ? AND member_id = ?')
      .run(now, member.groupId, member.memberId)
    if (Number(held.changes) === 0) throw lost(log, member)
    const upsert = log.statement(
      `INSERT INTO group_offsets (group_id, topic, partition, offset, committed_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (group_id, topic, partition) DO UPDATE SET offset = excluded.offset,
         committed_at = excluded.committed_at`
    )
    for (const o of offsets) upsert.run(member.groupId, o.topic, o.partition, o.offset, now)
  })
}
