import type { Pool } from 'pg'
import { FatalError } from '../errors.ts'
import {
  displayName,
  loadMigrations as loadFrom,
  type Migration,
  migrate as migrateTables,
  type PostgresConnectionInput,
  type PostgresSink,
  type PostgresTableLayout,
  type PostgresTableNames,
  postgresSink,
  postgresTableNames,
  type QualifiedName,
  renderMigration as renderFor,
  resolveConnectionOptions
} from '../sinks/postgres/index.ts'
import type { MemoryEvent } from './event.ts'
import { type PreparedEvent, prepareEvent } from './prepare.ts'

/**
 * The memories table: one configuration of the generic PostgreSQL sink (src/sinks/postgres). One row per memory id,
 * changed only by events that pass the fence `(version, timestamp)`, deletes kept as tombstones (payload NULL,
 * `deleted_at` set), event ids recorded in `memory_events_processed` for deduplication. The table's SQL is
 * migrations/0001_create_memories.sql; src/sinks/postgres/README.md describes the sink.
 */
export const DEFAULT_TABLE = 'memories'
export const DEFAULT_PROCESSED_TABLE = 'memory_events_processed'

const MIGRATIONS = {
  dir: new URL('./migrations/', import.meta.url),
  // The words the migration files were written with: their checksums are recorded in applied databases.
  placeholders: { table: 'memories', ledger: 'processed' }
} as const

export const memoriesLayout: PostgresTableLayout<MemoryEvent, PreparedEvent> = {
  key: 'id',
  columns: [
    { name: 'namespace', type: 'text', value: (e) => e.namespace },
    { name: 'type', type: 'text', value: (e) => e.type },
    { name: 'payload', type: 'jsonb', value: (e) => e.payload },
    { name: 'importance', type: 'float8', value: (e) => e.importance },
    { name: 'version' },
    { name: 'event_id' },
    { name: 'event_ts' }
  ],
  fence: { version: 'version', time: 'event_ts' },
  tombstone: { column: 'deleted_at', clear: ['payload'] },
  ledger: { column: 'event_id' },
  writtenAt: 'updated_at',
  item: 'memory event',
  prepare: prepareEvent,
  migrations: MIGRATIONS
}

/** The memories table and its processed event ids, with their schemas once resolved. */
export interface TableNames {
  readonly memories: QualifiedName
  readonly processed: QualifiedName
}

export type MemoriesSinkInput = PostgresConnectionInput & {
  /** Memories table, `name` or `schema.name`, taken literally (no case folding). Default `memories`. */
  table?: string
  /**
   * Processed event ids table, in the memories table's schema unless qualified. Default `memory_events_processed`
   * next to a table named `memories`, otherwise `<table>_events_processed`, so two materializations of the same
   * events in one schema never mistake each other's events for duplicates.
   */
  processedTable?: string
}

/** The processed table sits next to the memories table unless qualified; see `MemoriesSinkInput`. */
export function tableNames(table: string, processedTable?: string): TableNames {
  return memoryNames(generic(table, processedTable))
}

function generic(table: string, processedTable: string | undefined): PostgresTableNames {
  const named = postgresTableNames(table, { what: 'processedTable' })
  const fallback = named.table.name === DEFAULT_TABLE ? DEFAULT_PROCESSED_TABLE : undefined
  return postgresTableNames(table, {
    table: processedTable,
    what: 'processedTable',
    ...(fallback === undefined ? {} : { default: fallback })
  })
}

function memoryNames(names: PostgresTableNames): TableNames {
  return { memories: names.table, processed: names.ledger! }
}

export interface MemoriesSink extends Omit<PostgresSink<MemoryEvent, PreparedEvent>, 'names'> {
  /** Table names with their schema resolved; available after `open`. */
  readonly names: TableNames | undefined
}

/** The memories table's sink: `postgresSink` with `memoriesLayout`. */
export function memoriesSink(input: MemoriesSinkInput): MemoriesSink {
  if (typeof input !== 'object' || input === null) throw new FatalError('postgres sink: options must be an object')
  const { table = DEFAULT_TABLE, processedTable, ...rest } = input
  if (typeof table !== 'string') throw new FatalError('postgres sink: table must be a string')
  if (processedTable !== undefined && typeof processedTable !== 'string') {
    throw new FatalError('postgres sink: processedTable must be a string')
  }
  resolveConnectionOptions(rest as PostgresConnectionInput)
  const names = generic(table, processedTable)
  const sink = postgresSink({
    ...(rest as PostgresConnectionInput),
    table,
    ledgerTable: names.ledger === undefined ? undefined : displayName(names.ledger),
    layout: memoriesLayout
  })
  return {
    kind: sink.kind,
    get names() {
      const resolved = sink.names
      return resolved === undefined ? undefined : memoryNames(resolved)
    },
    get counts() {
      return sink.counts
    },
    open: (context) => sink.open(context),
    write: (batch, context) => sink.write(batch, context),
    readRows: (keys, what) => sink.readRows(keys, what),
    close: () => sink.close()
  }
}

/** The memories migrations (migrations/). */
export function loadMigrations(): Promise<Migration[]> {
  return loadFrom(MIGRATIONS.dir)
}

/** A memories migration rendered for `names`. */
export function renderMigration(template: string, names: TableNames): string {
  return renderFor(template, { table: names.memories, ledger: names.processed }, MIGRATIONS.placeholders)
}

/** Applies the pending memories migrations for `names`; safe to call concurrently and repeatedly. */
export async function migrate(
  pool: Pool,
  names: TableNames,
  migrations?: readonly Migration[]
): Promise<{ readonly names: TableNames; readonly applied: readonly string[] }> {
  const result = await migrateTables(
    pool,
    { table: names.memories, ledger: names.processed },
    migrations ?? (await loadMigrations()),
    MIGRATIONS.placeholders
  )
  return { names: memoryNames(result.names), applied: result.applied }
}
