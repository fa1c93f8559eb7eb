import type { Pool } from 'pg'
import type { FencePair, Outcome } from '../../streams/fence.ts'
import type { WriteResult } from '../types.ts'
import type { QualifiedName } from './identifiers.ts'

/** What writing one event did to the `memories` table (the fence rule's outcomes, src/streams/fence.ts). */
export { type Outcome, Outcomes } from '../../streams/fence.ts'

export interface OutcomeCounts {
  applied: number
  fenced: number
  duplicate: number
  /** Items reported in `failures`. */
  failed: number
}

export interface PostgresSinkOptions {
  /** `postgresql://user@host:port/db`. Required unless `pool` is given. */
  connectionString?: string
  /** An existing pool to use instead of creating one; the sink then does not end it on close. */
  pool?: Pool
  /** Memories table, `name` or `schema.name`, taken literally (no case folding). Default `memories`. */
  table: string
  /**
   * Processed event ids table, in the memories table's schema unless qualified. Default `memory_events_processed`
   * next to a table named `memories`, otherwise `<table>_events_processed`, so two materializations of the same
   * events in one schema never mistake each other's events for duplicates.
   */
  processedTable?: string
  /** Connections in the pool. */
  poolSize: number
  /** Server-side `statement_timeout` per statement. */
  statementTimeoutMs: number
  /** Client-side limit per query (covers a silent network); at least `statementTimeoutMs`, default it + 5 s. */
  queryTimeoutMs: number
  /** Limit for opening a connection. */
  connectionTimeoutMs: number
  /** Idle connections are closed after this long. */
  idleTimeoutMs: number
  /** `application_name`, visible in pg_stat_activity. */
  applicationName: string
  /** Apply pending migrations in `open`. */
  migrate: boolean
  /** Called for every write with the outcome of each written item (index in the batch, outcome). */
  onOutcomes?: (outcomes: readonly (Outcome | undefined)[], counts: OutcomeCounts) => void
  /** Errors of idle pool clients (e.g. the server restarted). They are retried on the next write anyway. */
  onPoolError?: (error: Error) => void
}

export interface PostgresWriteResult extends WriteResult {
  /** Per item of the batch: its outcome, or undefined when it is in `failures`. */
  readonly outcomes: readonly (Outcome | undefined)[]
  readonly counts: OutcomeCounts
  /**
   * Per item of the batch: the event as written (payload JSON text, canonical timestamp), or undefined when it
   * failed before the database. For an `applied` item it is the row's new state, so memory.latest is built from it
   * instead of reading the row back.
   */
  readonly prepared: readonly (PreparedEvent | undefined)[]
}

export interface TableNames {
  readonly memories: QualifiedName
  readonly processed: QualifiedName
}

/** An event checked and converted for the database: what the reduce step and the statement need. */
export interface PreparedEvent extends FencePair {
  /** Position in the batch. */
  readonly index: number
  readonly id: string
  readonly eventId: string
  readonly namespace: string
  readonly type: string | null
  /** JSON text of the payload; null for deletes. */
  readonly payload: string | null
  readonly importance: number | null
  /** Canonical UTC timestamp text (see event-time.ts). */
  readonly timestamp: string
  readonly deleted: boolean
}

/** One row of the memories table, as `fold` computes it and the tests read it. */
export interface MemoryRow {
  readonly id: string
  readonly namespace: string
  readonly type: string | null
  /** Parsed payload; null for a tombstone. */
  readonly payload: unknown
  readonly importance: number | null
  readonly version: number
  readonly eventId: string
  /** Canonical UTC timestamp text. */
  readonly eventTs: string
  /** Tombstones: the delete event's timestamp; otherwise null. */
  readonly deletedAt: string | null
}
