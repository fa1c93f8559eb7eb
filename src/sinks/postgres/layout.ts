import { FatalError } from '../../errors.ts'
import { quoteIdent } from '../../postgres/identifiers.ts'
import type { ColumnType, ColumnValue, PostgresTableLayout, PreparedRow } from './types.ts'

const TYPES: ReadonlySet<string> = new Set(['text', 'uuid', 'bool', 'jsonb', 'float8', 'int8', 'int4', 'timestamptz'])

/** Names the statement uses for its own unnested parameters (`i.ord`, `i.winner`, …): no column may take them. */
const RESERVED_ALIASES: ReadonlySet<string> = new Set(['ord', 'winner', 'deleted', 'event_id'])

/**
 * PostgreSQL's reserved key words and those that cannot name a column unquoted (the documentation's appendix "SQL
 * Key Words", reserved and "reserved (can be function or type)").
 */
const KEYWORDS: ReadonlySet<string> = new Set(
  (
    'all analyse analyze and any array as asc asymmetric both case cast check collate column constraint create ' +
    'current_catalog current_date current_role current_time current_timestamp current_user default deferrable desc ' +
    'distinct do else end except false fetch for foreign from grant group having in initially intersect into ' +
    'lateral leading limit localtime localtimestamp not null offset on only or order placing primary references ' +
    'returning select session_user some symmetric system_user table then to trailing true union unique user using ' +
    'variadic when where window with authorization binary collation concurrently cross current_schema freeze full ' +
    'ilike inner is isnull join left like natural notnull outer overlaps right similar tablesample verbose'
  ).split(' ')
)

/** A column name for the statement: bare when PostgreSQL reads it unquoted as itself, quoted otherwise. */
export function columnName(name: string): string {
  const quoted = quoteIdent(name)
  return /^[a-z_][a-z0-9_]*$/.test(name) && !KEYWORDS.has(name) ? name : quoted
}

/** One data column of a resolved layout: its SQL name, type and accessor. */
export interface DataColumn<R extends PreparedRow> {
  readonly sql: string
  readonly type: ColumnType
  readonly value: (row: R) => ColumnValue
  /** NULL in a tombstone. */
  readonly cleared: boolean
}

/** Where each column of the table gets its value: from a data parameter, the fence, or the ledger id. */
export type ColumnSource<R extends PreparedRow> =
  | { readonly kind: 'data'; readonly column: DataColumn<R> }
  | { readonly kind: 'version' | 'time' | 'ledger'; readonly sql: string }

/** A layout checked, with its column names ready for SQL. */
export interface ResolvedLayout<T, R extends PreparedRow> {
  readonly key: string
  /** The table's columns after the key, in order (tombstone and writtenAt excluded). */
  readonly columns: readonly ColumnSource<R>[]
  readonly data: readonly DataColumn<R>[]
  readonly fence: { readonly version: string; readonly time: string } | undefined
  readonly tombstone: string | undefined
  readonly ledger: { readonly type: 'uuid' | 'text' } | undefined
  readonly writtenAt: string | undefined
  readonly item: string
  readonly prepare: PostgresTableLayout<T, R>['prepare']
}

function fail(message: string): never {
  throw new FatalError(`postgres sink: layout: ${message}`)
}

export function resolveLayout<T, R extends PreparedRow>(layout: PostgresTableLayout<T, R>): ResolvedLayout<T, R> {
  if (typeof layout !== 'object' || layout === null) fail('must be an object')
  if (typeof layout.prepare !== 'function') fail('prepare must be a function')
  if (!Array.isArray(layout.columns)) fail('columns must be an array')
  const names = new Set<string>()
  const claim = (name: unknown, what: string): string => {
    if (typeof name !== 'string') fail(`${what} must be a column name`)
    if (names.has(name)) fail(`column ${JSON.stringify(name)} appears twice`)
    if (RESERVED_ALIASES.has(name) && name !== layout.ledger?.column) {
      fail(`column name ${JSON.stringify(name)} is reserved by the statement (${[...RESERVED_ALIASES].join(', ')})`)
    }
    names.add(name)
    return columnName(name)
  }
  const key = claim(layout.key, 'key')
  const fence = layout.fence
  const clear = new Set(layout.tombstone?.clear ?? [])
  const roles = new Map<string, 'version' | 'time' | 'ledger'>()
  if (fence !== undefined) {
    roles.set(fence.version, 'version')
    roles.set(fence.time, 'time')
  }
  if (layout.ledger?.column !== undefined) roles.set(layout.ledger.column, 'ledger')
  const columns: ColumnSource<R>[] = []
  const data: DataColumn<R>[] = []
  for (const column of layout.columns) {
    const sql = claim(column?.name, 'every column')
    const role = roles.get(column.name)
    if (role !== undefined) {
      if (column.type !== undefined || column.value !== undefined) {
        fail(`column ${column.name} is the ${role === 'ledger' ? 'ledger id' : `fence ${role}`}: no type or value`)
      }
      columns.push({ kind: role, sql })
      roles.delete(column.name)
      continue
    }
    if (typeof column.type !== 'string' || !TYPES.has(column.type)) {
      fail(`column ${column.name}: type must be one of ${[...TYPES].join(', ')}`)
    }
    if (typeof column.value !== 'function') fail(`column ${column.name}: value must be a function`)
    const resolved: DataColumn<R> = { sql, type: column.type, value: column.value, cleared: clear.has(column.name) }
    clear.delete(column.name)
    data.push(resolved)
    columns.push({ kind: 'data', column: resolved })
  }
  for (const [name, role] of roles) fail(`the ${role} column ${name} is not in columns`)
  if (clear.size > 0) fail(`tombstone.clear names columns that are not data columns: ${[...clear].join(', ')}`)
  const tombstone = layout.tombstone === undefined ? undefined : claim(layout.tombstone.column, 'tombstone.column')
  const writtenAt = layout.writtenAt === undefined ? undefined : claim(layout.writtenAt, 'writtenAt')
  const ledgerType = layout.ledger?.type ?? 'uuid'
  if (ledgerType !== 'uuid' && ledgerType !== 'text') fail('ledger.type must be uuid or text')
  return {
    key,
    columns,
    data,
    fence: fence === undefined ? undefined : { version: columnName(fence.version), time: columnName(fence.time) },
    tombstone,
    ledger: layout.ledger === undefined ? undefined : { type: ledgerType },
    writtenAt,
    item: typeof layout.item === 'string' ? layout.item : 'row',
    prepare: layout.prepare
  }
}
