import type { Pool } from 'pg'
import type { PoisonError } from '../../errors.ts'
import type { QualifiedName } from '../../postgres/identifiers.ts'
import type { Envelope } from '../../streams/envelope.ts'
import type { FencedEvent, Outcome } from '../../streams/fence.ts'
import type { WriteResult } from '../types.ts'

/** What writing one value did to its row (the fence rule's outcomes, src/streams/fence.ts). */
export { type Outcome, Outcomes } from '../../streams/fence.ts'

export interface OutcomeCounts {
  applied: number
  fenced: number
  duplicate: number
  /** Items reported in `failures`. */
  failed: number
}

/**
 * A value checked and converted for the table by the layout's `prepare`: what the reduce step and the statement
 * need; the layout's columns read the rest of the row from it. `id` is the key column's value. `eventId` is the
 * value's identity, recorded in the ledger (with `ledger`); two items of one batch with the same `eventId` count once
 * either way. `version` and `micros` are the fence pair (with `fence`; otherwise any value, e.g. 0 and 0n: the last
 * item of a key in the batch wins).
 */
export interface PreparedRow extends FencedEvent {
  /** Position in the batch. */
  readonly index: number
  /** A delete: leaves a tombstone (with `tombstone`); ignored otherwise. */
  readonly deleted: boolean
}

/** PostgreSQL types a column can have; each is sent as a binary array (src/postgres/binary-array.ts). */
export type ColumnType = 'text' | 'uuid' | 'bool' | 'jsonb' | 'float8' | 'int8' | 'int4' | 'timestamptz'

/**
 * A column's value for a row: text (text, uuid), JSON text (jsonb, already serialised, or its UTF-8 bytes, e.g. a
 * member of the message as received), a number (float8, int8, int4), microseconds since the epoch (timestamptz, see
 * src/event-time.ts), a boolean, or null.
 */
export type ColumnValue = string | number | bigint | boolean | Uint8Array | null

/**
 * One column of the table, in table order. A data column has a type and reads its value from the prepared row; the
 * fence columns and the ledger column name only (their values are the row's `version`, `micros`, `eventId`).
 */
export interface PostgresColumn<R extends PreparedRow> {
  readonly name: string
  readonly type?: ColumnType
  readonly value?: (row: R) => ColumnValue
}

/**
 * How values of type `T` become rows of one table, after Debezium's JDBC sink: upsert by `key` (`INSERT … ON
 * CONFLICT (key) DO UPDATE`), with the fence, tombstones and the idempotency ledger as options. The domain configures
 * it (the memories table is src/memory/memories.ts).
 */
export interface PostgresTableLayout<T, R extends PreparedRow> {
  /** The primary key column (text); its value is the prepared row's `id`. */
  readonly key: string
  /** The other columns, in table order (the key, tombstone and `writtenAt` columns are not listed). */
  readonly columns: readonly PostgresColumn<R>[]
  /**
   * The ordering columns: a row changes only if `(version, time)` of the value is greater than the stored pair (the
   * fence rule, src/streams/fence.ts); an equal pair is a duplicate. `version` is int8, `time` timestamptz. Without a
   * fence, every value overwrites its row.
   */
  readonly fence?: { readonly version: string; readonly time: string }
  /**
   * Deletes leave a tombstone: `column` (timestamptz) set to the fence time (now() without a fence) and the `clear`
   * columns NULL, so a late, older value cannot bring the row back. Without it, `deleted` is ignored.
   */
  readonly tombstone?: { readonly column: string; readonly clear?: readonly string[] }
  /**
   * The idempotency ledger: every value's `eventId` is recorded in a table of its own (`event_id`, `processed_at`;
   * its type is `type`, default uuid), and a value seen before is a duplicate. `column`: also store the id in this
   * column of the row (listed in `columns`).
   */
  readonly ledger?: { readonly type?: 'uuid' | 'text'; readonly column?: string }
  /** A timestamptz column set to now() whenever the sink writes the row (processing time). */
  readonly writtenAt?: string
  /** What one value is called in error messages (default `row`), e.g. `memory event`. */
  readonly item?: string
  /**
   * Checks one value and converts it once; a PoisonError sends this item alone to the DLQ. The envelope gives the
   * message the value came from (e.g. `delivery.rawMemberOf`, to reuse JSON text as received).
   */
  readonly prepare: (value: T, index: number, envelope: Envelope<T>) => R | PoisonError
  /**
   * Versioned SQL migrations (`NNNN_name.sql` in `dir`) applied at open with `migrate: true`. Placeholders
   * `{{table}}`, `{{ledger}}` (and `{{table_name:suffix}}`, `{{ledger_name:suffix}}` for derived names), or the names
   * given in `placeholders`. Without migrations the table must exist.
   */
  readonly migrations?: {
    readonly dir: URL
    readonly placeholders?: { readonly table: string; readonly ledger: string }
  }
}

/** The connection and behaviour options of a PostgreSQL sink, whatever its table. */
export interface PostgresConnectionOptions {
  /** `postgresql://user@host:port/db`. Required unless `pool` is given. */
  connectionString?: string
  /** An existing pool to use instead of creating one; the sink then does not end it on close. */
  pool?: Pool
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

export interface PostgresSinkOptions<T, R extends PreparedRow> extends PostgresConnectionOptions {
  /** The table, `name` or `schema.name`, taken literally (no case folding). */
  table: string
  /** What a row is: key, columns, fence, tombstones, ledger. */
  layout: PostgresTableLayout<T, R>
  /** The ledger table (with `layout.ledger`), in the table's schema unless qualified. Default `<table>_events_processed`. */
  ledgerTable?: string
}

export interface PostgresWriteResult<R extends PreparedRow = PreparedRow> extends WriteResult {
  /** Per item of the batch: its outcome, or undefined when it is in `failures`. */
  readonly outcomes: readonly (Outcome | undefined)[]
  readonly counts: OutcomeCounts
  /**
   * Per item of the batch: the row as prepared (and, for an `applied` item, as written), or undefined when it failed
   * before the database. A caller builds what follows from the write from it instead of reading the row back.
   */
  readonly prepared: readonly (R | undefined)[]
}

/** The sink's tables with their schema resolved. */
export interface PostgresTableNames {
  readonly table: QualifiedName
  readonly ledger: QualifiedName | undefined
}
