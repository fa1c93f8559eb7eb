import type { EmbeddedLog } from './embedded-log.ts'

/**
 * Retention of the embedded log, per topic as its row in `topics` says (taken from src/kafka/topics.ts):
 *
 * - `retention_ms` (policy `delete`): the oldest records are removed up to the first one younger than the limit —
 *   always a prefix of the partition, as Kafka deletes whole old segments, so the log start offset only moves
 *   forward and what remains is contiguous.
 * - `retention_bytes` (per partition): the oldest records are removed until key + value bytes fit.
 * - policy `compact`: of the keyed records, only the latest per key is kept, and a tombstone (NULL value) is
 *   dropped once older than `delete_retention_ms`. Unlike Kafka, the head is compacted too — a consumer that is
 *   behind sees the latest value of a key, never an older one.
 *
 * Each partition is cleaned in its own short transaction, so producers wait milliseconds, not a whole pass. A
 * consumer group whose committed offset falls below the new start resumes at the start (Kafka's
 * `auto.offset.reset=earliest`); the retention window is the bound on how long a runner may stay away.
 */
export interface RetentionOptions {
  /** Default: every topic. */
  topics?: readonly string[]
  /** Default: `Date.now()`. */
  now?: number
  /** Free pages returned to the file system per pass (PRAGMA incremental_vacuum); 0: none. Default 16384. */
  vacuumPages?: number
}

export interface RetentionResult {
  /** Records removed, per `topic:partition`. */
  readonly removed: ReadonlyMap<string, number>
  readonly total: number
  readonly seconds: number
}

type Row = Record<string, unknown>

export function retain(log: EmbeddedLog, options: RetentionOptions = {}): RetentionResult {
  const started = performance.now()
  const now = options.now ?? Date.now()
  const names = options.topics ?? log.topics().map((t) => t.name)
  const removed = new Map<string, number>()
  let total = 0
  for (const name of names) {
    const topic = log.topic(name)
    if (!topic) continue
    for (const { partition } of log.partitions(name)) {
      const count = log.transaction(`retention of ${name}:${partition}`, () => {
        let n = 0
        if (topic.cleanupPolicy !== 'compact' && topic.retentionMs !== null) {
          n += deleteBefore(log, name, partition, firstYoungerThan(log, name, partition, now - topic.retentionMs))
        }
        if (topic.retentionBytes !== null) n += trimToBytes(log, name, partition, topic.retentionBytes)
        if (topic.cleanupPolicy !== 'delete') n += compact(log, name, partition, now - topic.deleteRetentionMs)
        return n
      })
      if (count > 0) {
        removed.set(`${name}:${partition}`, count)
        total += count
      }
    }
  }
  const pages = options.vacuumPages ?? 16_384
  if (total > 0 && pages > 0) {
    log.transaction('returning free pages', () => log.db.exec(`PRAGMA incremental_vacuum(${Math.floor(pages)})`))
  }
  return { removed, total, seconds: (performance.now() - started) / 1000 }
}

/** The first offset whose timestamp is at or after `cutoff` (scans from the start, so costs what it removes). */
function firstYoungerThan(log: EmbeddedLog, topic: string, partition: number, cutoff: number): bigint {
  const row = log
    .statement(
      'SELECT offset FROM records WHERE topic = ? AND partition = ? AND timestamp >= ? ORDER BY offset LIMIT 1'
    )
    .get(topic, partition, cutoff) as Row | undefined
  if (row) return BigInt(row.offset as number)
  const end = log
    .statement('SELECT next_offset FROM partitions WHERE topic = ? AND partition = ?')
    .get(topic, partition) as Row
  return BigInt(end.next_offset as number)
}

function deleteBefore(log: EmbeddedLog, topic: string, partition: number, offset: bigint): number {
  const result = log
    .statement('DELETE FROM records WHERE topic = ? AND partition = ? AND offset < ?')
    .run(topic, partition, offset)
  return Number(result.changes)
}

function trimToBytes(log: EmbeddedLog, topic: string, partition: number, limit: number): number {
  const state = log
    .statement('SELECT bytes FROM partitions WHERE topic = ? AND partition = ?')
    .get(topic, partition) as Row
  let excess = Number(state.bytes) - limit
  if (excess <= 0) return 0
  let cut: bigint | undefined
  const rows = log
    .statement(
      `SELECT offset, coalesce(length(CAST(key AS BLOB)), 0) + coalesce(length(CAST(value AS BLOB)), 0) AS size
         FROM records WHERE topic = ? AND partition = ? ORDER BY offset`
    )
    .iterate(topic, partition) as Iterable<Row>
  for (const row of rows) {
    excess -= Number(row.size)
    cut = BigInt(row.offset as number) + 1n
    if (excess <= 0) break
  }
  return cut === undefined ? 0 : deleteBefore(log, topic, partition, cut)
}

function compact(log: EmbeddedLog, topic: string, partition: number, tombstoneCutoff: number): number {
  // CAST: a key written as TEXT by one program and as BLOB by another is the same key (same bytes).
  const superseded = log
    .statement(
      `DELETE FROM records WHERE rowid IN (
         SELECT rowid FROM (
           SELECT rowid, row_number() OVER (PARTITION BY CAST(key AS BLOB) ORDER BY offset DESC) AS newer
             FROM records WHERE topic = ? AND partition = ? AND key IS NOT NULL)
          WHERE newer > 1)`
    )
    .run(topic, partition)
  const tombstones = log
    .statement(
      `DELETE FROM records WHERE topic = ? AND partition = ? AND key IS NOT NULL AND value IS NULL AND timestamp < ?`
    )
    .run(topic, partition, tombstoneCutoff)
  return Number(superseded.changes) + Number(tombstones.changes)
}
