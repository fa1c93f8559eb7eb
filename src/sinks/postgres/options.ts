import { FatalError } from '../../errors.ts'
import { derivedName, parseTableName, type QualifiedName } from '../../postgres/identifiers.ts'
import { type ResolvedLayout, resolveLayout } from './layout.ts'
import type { PostgresConnectionOptions, PostgresSinkOptions, PostgresTableNames, PreparedRow } from './types.ts'

/** queryTimeoutMs defaults to statementTimeoutMs plus this: the server's timeout should fire first. */
export const QUERY_TIMEOUT_MARGIN_MS = 5_000

export const defaultPostgresSinkOptions = {
  poolSize: 4,
  statementTimeoutMs: 30_000,
  connectionTimeoutMs: 5_000,
  idleTimeoutMs: 30_000,
  applicationName: 'sfm-streams',
  migrate: true
} as const satisfies Partial<PostgresConnectionOptions>

/** The connection options as given: defaults for the rest; a connection string or a pool is required. */
export type PostgresConnectionInput = Partial<PostgresConnectionOptions> &
  ({ connectionString: string } | { pool: NonNullable<PostgresConnectionOptions['pool']> })

export type PostgresSinkInput<T, R extends PreparedRow> = PostgresConnectionInput &
  Pick<PostgresSinkOptions<T, R>, 'table' | 'layout' | 'ledgerTable'>

export interface ResolvedPostgresSinkOptions<T, R extends PreparedRow> extends PostgresSinkOptions<T, R> {
  readonly names: PostgresTableNames
  readonly resolvedLayout: ResolvedLayout<T, R>
}

function positiveInteger(options: Record<string, unknown>, key: string, max: number): void {
  const value = options[key]
  if (!Number.isSafeInteger(value) || (value as number) < 1 || (value as number) > max) {
    throw new FatalError(`postgres sink: ${key} must be an integer in 1..${max}, got ${JSON.stringify(value)}`)
  }
}

/**
 * The table and, with a ledger, the ledger table: in the table's schema unless qualified; by default
 * `<table>_events_processed`. `what` names the ledger option in messages.
 */
export function postgresTableNames(
  table: string,
  ledger: { readonly table?: string | undefined; readonly default?: string; readonly what?: string } | undefined
): PostgresTableNames {
  const main = parseTableName(table, 'table')
  if (ledger === undefined) return { table: main, ledger: undefined }
  const what = ledger.what ?? 'ledgerTable'
  let processed: QualifiedName
  if (ledger.table === undefined) {
    processed = parseTableName(ledger.default ?? derivedName(main.name, 'events_processed'), what)
    processed = { schema: main.schema, name: processed.name }
  } else {
    processed = parseTableName(ledger.table, what)
    if (processed.schema === undefined) processed = { schema: main.schema, name: processed.name }
  }
  if (processed.schema === main.schema && processed.name === main.name) {
    throw new FatalError(`postgres sink: ${what} must differ from table`)
  }
  return { table: main, ledger: processed }
}

/** Checks the connection options and fills in the defaults. */
export function resolveConnectionOptions<O extends PostgresConnectionInput>(input: O): O & PostgresConnectionOptions {
  if (typeof input !== 'object' || input === null) throw new FatalError('postgres sink: options must be an object')
  const merged = { ...defaultPostgresSinkOptions, ...input }
  // Derived rather than defaulted, so raising statementTimeoutMs alone stays valid.
  const options = {
    ...merged,
    queryTimeoutMs: merged.queryTimeoutMs ?? merged.statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS
  } as O & PostgresConnectionOptions
  if (options.pool === undefined) {
    if (typeof options.connectionString !== 'string' || options.connectionString.length === 0) {
      throw new FatalError('postgres sink: connectionString is required (e.g. postgresql://user@host:5432/db)')
    }
  }
  const record = options as unknown as Record<string, unknown>
  positiveInteger(record, 'poolSize', 1000)
  positiveInteger(record, 'statementTimeoutMs', 2_147_483_647)
  positiveInteger(record, 'queryTimeoutMs', 2_147_483_647)
  positiveInteger(record, 'connectionTimeoutMs', 2_147_483_647)
  positiveInteger(record, 'idleTimeoutMs', 2_147_483_647)
  if (options.queryTimeoutMs < options.statementTimeoutMs) {
    throw new FatalError(
      'postgres sink: queryTimeoutMs must be at least statementTimeoutMs, or the client gives up on statements ' +
        'the server is still running'
    )
  }
  if (typeof options.applicationName !== 'string') {
    throw new FatalError('postgres sink: applicationName must be a string')
  }
  if (typeof options.migrate !== 'boolean') throw new FatalError('postgres sink: migrate must be a boolean')
  for (const key of ['onOutcomes', 'onPoolError'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'function') {
      throw new FatalError(`postgres sink: ${key} must be a function`)
    }
  }
  return options
}

export function resolvePostgresSinkOptions<T, R extends PreparedRow>(
  input: PostgresSinkInput<T, R>
): ResolvedPostgresSinkOptions<T, R> {
  const options = resolveConnectionOptions(input)
  if (typeof options.table !== 'string') throw new FatalError('postgres sink: table must be a string')
  if (options.ledgerTable !== undefined && typeof options.ledgerTable !== 'string') {
    throw new FatalError('postgres sink: ledgerTable must be a string')
  }
  const resolvedLayout = resolveLayout(options.layout)
  const names = postgresTableNames(
    options.table,
    resolvedLayout.ledger === undefined ? undefined : { table: options.ledgerTable }
  )
  return { ...options, names, resolvedLayout }
}
