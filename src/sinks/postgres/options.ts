import { FatalError } from '../../errors.ts'
import { derivedName, parseTableName, type QualifiedName } from './identifiers.ts'
import type { PostgresSinkOptions, TableNames } from './types.ts'

export const DEFAULT_TABLE = 'memories'
export const DEFAULT_PROCESSED_TABLE = 'memory_events_processed'

/** queryTimeoutMs defaults to statementTimeoutMs plus this: the server's timeout should fire first. */
export const QUERY_TIMEOUT_MARGIN_MS = 5_000

export const defaultPostgresSinkOptions = {
  table: DEFAULT_TABLE,
  poolSize: 4,
  statementTimeoutMs: 30_000,
  connectionTimeoutMs: 5_000,
  idleTimeoutMs: 30_000,
  applicationName: 'sfm-streams',
  migrate: true
} as const satisfies Partial<PostgresSinkOptions>

export type PostgresSinkInput = Partial<PostgresSinkOptions> &
  ({ connectionString: string } | { pool: NonNullable<PostgresSinkOptions['pool']> })

export interface ResolvedPostgresSinkOptions extends PostgresSinkOptions {
  readonly names: TableNames
}

function positiveInteger(options: Record<string, unknown>, key: string, max: number): void {
  const value = options[key]
  if (!Number.isSafeInteger(value) || (value as number) < 1 || (value as number) > max) {
    throw new FatalError(`postgres sink: ${key} must be an integer in 1..${max}, got ${JSON.stringify(value)}`)
  }
}

/** The processed table sits next to the memories table unless qualified; see `PostgresSinkOptions`. */
export function tableNames(table: string, processedTable?: string): TableNames {
  const memories = parseTableName(table, 'table')
  let processed: QualifiedName
  if (processedTable === undefined) {
    const name =
      memories.name === DEFAULT_TABLE ? DEFAULT_PROCESSED_TABLE : derivedName(memories.name, 'events_processed')
    processed = parseTableName(name, 'processedTable')
    processed = { schema: memories.schema, name: processed.name }
  } else {
    processed = parseTableName(processedTable, 'processedTable')
    if (processed.schema === undefined) processed = { schema: memories.schema, name: processed.name }
  }
  if (processed.schema === memories.schema && processed.name === memories.name) {
    throw new FatalError('postgres sink: processedTable must differ from table')
  }
  return { memories, processed }
}

export function resolvePostgresSinkOptions(input: PostgresSinkInput): ResolvedPostgresSinkOptions {
  if (typeof input !== 'object' || input === null) throw new FatalError('postgres sink: options must be an object')
  const merged = { ...defaultPostgresSinkOptions, ...input }
  // Derived rather than defaulted, so raising statementTimeoutMs alone stays valid.
  const options = {
    ...merged,
    queryTimeoutMs: merged.queryTimeoutMs ?? merged.statementTimeoutMs + QUERY_TIMEOUT_MARGIN_MS
  } as PostgresSinkOptions
  if (options.pool === undefined) {
    if (typeof options.connectionString !== 'string' || options.connectionString.length === 0) {
      throw new FatalError('postgres sink: connectionString is required (e.g. postgresql://user@host:5432/db)')
    }
  }
  if (typeof options.table !== 'string') throw new FatalError('postgres sink: table must be a string')
  if (options.processedTable !== undefined && typeof options.processedTable !== 'string') {
    throw new FatalError('postgres sink: processedTable must be a string')
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
  return { ...options, names: tableNames(options.table, options.processedTable) }
}
