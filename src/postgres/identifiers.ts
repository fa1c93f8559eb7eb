import { createHash } from 'node:crypto'
import { FatalError } from '../errors.ts'

/** PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes; we refuse longer names instead of colliding. */
export const MAX_IDENTIFIER_BYTES = 63

/** A table name, optionally schema-qualified. Names are taken literally (case and all), then quoted. */
export interface QualifiedName {
  readonly schema: string | undefined
  readonly name: string
}

/** Quotes one identifier: wraps in double quotes and doubles embedded quotes, like `quote_ident`. */
export function quoteIdent(identifier: string): string {
  if (identifier.length === 0) throw new FatalError('an SQL identifier cannot be empty')
  if (identifier.includes('\u0000')) throw new FatalError('an SQL identifier cannot contain NUL')
  if (Buffer.byteLength(identifier) > MAX_IDENTIFIER_BYTES) {
    throw new FatalError(`SQL identifier longer than ${MAX_IDENTIFIER_BYTES} bytes: ${JSON.stringify(identifier)}`)
  }
  return `"${identifier.replaceAll('"', '""')}"`
}

/** `schema.table` or `table`; a second dot is refused (we do not guess which dot separates). */
export function parseTableName(value: string, what = 'table'): QualifiedName {
  const parts = value.split('.')
  if (parts.length > 2 || parts.some((p) => p.length === 0)) {
    throw new FatalError(`${what} must be "name" or "schema.name", got ${JSON.stringify(value)}`)
  }
  const name = parts.length === 2 ? parts[1]! : parts[0]!
  const schema = parts.length === 2 ? parts[0] : undefined
  // Quote once to check length and characters early, at configuration time.
  quoteIdent(name)
  if (schema !== undefined) quoteIdent(schema)
  return { schema, name }
}

export function quoteQualified(name: QualifiedName): string {
  return name.schema === undefined ? quoteIdent(name.name) : `${quoteIdent(name.schema)}.${quoteIdent(name.name)}`
}

/** The unquoted `schema.name` text, for logs and the `schema_migrations.target` column. */
export function displayName(name: QualifiedName): string {
  return name.schema === undefined ? name.name : `${name.schema}.${name.name}`
}

/**
 * A derived object name (`<table>_<suffix>`, for indexes and constraints) that fits in 63 bytes: long table names
 * are shortened and given a hash suffix so two long names cannot truncate to the same identifier.
 */
export function derivedName(table: string, suffix: string): string {
  const full = `${table}_${suffix}`
  if (Buffer.byteLength(full) <= MAX_IDENTIFIER_BYTES) return full
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 8)
  let head = table
  while (Buffer.byteLength(`${head}_${hash}_${suffix}`) > MAX_IDENTIFIER_BYTES) head = head.slice(0, -1)
  return `${head}_${hash}_${suffix}`
}
