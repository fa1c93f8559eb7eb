/**
 * The fence rule: an event changes a memory only if its `(version, timestamp)` is greater than the stored pair,
 * compared lexicographically. An equal pair is the same change again (a duplicate); a smaller one is stale. The
 * same comparison runs in SQL as `(m.version, m.event_ts) < (EXCLUDED.version, EXCLUDED.event_ts)`.
 */
export interface FencePair {
  /** `version ?? 0`. */
  readonly version: number
  /** Event timestamp, microseconds since the epoch. */
  readonly micros: bigint
}

export function compareFence(a: FencePair, b: FencePair): -1 | 0 | 1 {
  if (a.version !== b.version) return a.version < b.version ? -1 : 1
  if (a.micros !== b.micros) return a.micros < b.micros ? -1 : 1
  return 0
}
