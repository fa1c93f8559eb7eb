import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import type { Pool, PoolClient } from 'pg'
import { ErrorKinds, FatalError, SfmError } from '../../errors.ts'
import { toSinkError } from '../../postgres/errors.ts'
import { derivedName, displayName, type QualifiedName, quoteIdent, quoteQualified } from '../../postgres/identifiers.ts'
import { checkout } from './pool.ts'
import type { PostgresTableNames } from './types.ts'

/**
 * Versioned SQL migrations (`NNNN_name.sql` in a layout's folder), rendered for the configured tables and applied in
 * order, all in one transaction under an advisory lock, so two runners (two sink instances starting together) neither
 * race nor see a half-migrated schema. Applied versions are recorded per target table in `schema_migrations` in the
 * table's schema, with a checksum of the file: editing an applied migration is refused, add a new one.
 */

export const MIGRATIONS_TABLE = 'schema_migrations'
/** First key of the two-key advisory lock ("SFM"); the second is hashtext(schema). */
const LOCK_CLASS = 0x53464d

const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/

/** The words a migration names the table and the ledger with (`{{table}}`, `{{table_name:suffix}}`, …). */
export interface Placeholders {
  readonly table: string
  readonly ledger: string
}
const DEFAULT_PLACEHOLDERS: Placeholders = { table: 'table', ledger: 'ledger' }

export interface Migration {
  readonly version: number
  readonly name: string
  readonly checksum: string
  readonly template: string
}

export interface MigrationResult {
  /** Fully resolved names (schema included). */
  readonly names: PostgresTableNames
  /** `NNNN_name` of the migrations this run applied. */
  readonly applied: readonly string[]
}

export async function loadMigrations(dir: URL): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort()
  const migrations: Migration[] = []
  for (const file of files) {
    const match = FILE_PATTERN.exec(file)
    if (match === null) throw new FatalError(`migration file ${file} must be named NNNN_lower_snake.sql`)
    const template = await readFile(new URL(file, dir), 'utf8')
    const version = Number(match[1])
    if (migrations.some((m) => m.version === version)) throw new FatalError(`two migrations have version ${version}`)
    const checksum = createHash('sha256').update(template).digest('hex')
    migrations.push({ version, name: `${match[1]}_${match[2]}`, checksum, template })
  }
  return migrations
}

/** Substitutes the quoted table names; every other byte of the file is kept as written. */
export function renderMigration(
  template: string,
  names: PostgresTableNames,
  placeholders: Placeholders = DEFAULT_PLACEHOLDERS
): string {
  const words = `${placeholders.table}|${placeholders.ledger}|${placeholders.table}_name|${placeholders.ledger}_name`
  const pattern = new RegExp(`\\{\\{(${words})(?::([a-z0-9_]+))?\\}\\}`, 'g')
  return template.replace(pattern, (_all, key: string, suffix: string | undefined) => {
    const isTable = key === placeholders.table || key === `${placeholders.table}_name`
    const table = isTable ? names.table : names.ledger
    if (table === undefined) throw new FatalError(`migration placeholder {{${key}}}: the layout has no ledger`)
    if (key.endsWith('_name')) {
      if (suffix === undefined) throw new FatalError(`migration placeholder {{${key}}} needs a suffix`)
      return quoteIdent(derivedName(table.name, suffix))
    }
    return quoteQualified(table)
  })
}

/** Fills in unqualified schemas with the connection's current schema, so every statement names its schema. */
export async function resolveSchemas(client: PoolClient, names: PostgresTableNames): Promise<PostgresTableNames> {
  if (names.table.schema !== undefined && (names.ledger === undefined || names.ledger.schema !== undefined)) {
    return names
  }
  const { rows } = await client.query<{ schema: string | null }>('SELECT current_schema() AS schema')
  const current = rows[0]?.schema
  if (current === null || current === undefined) {
    throw new FatalError('postgres sink: no current schema (empty search_path); qualify the table as schema.name')
  }
  const fill = (n: QualifiedName): QualifiedName => ({ schema: n.schema ?? current, name: n.name })
  return { table: fill(names.table), ledger: names.ledger === undefined ? undefined : fill(names.ledger) }
}

async function ensureSchema(client: PoolClient, schema: string): Promise<void> {
  // Checked first: CREATE SCHEMA IF NOT EXISTS still needs the CREATE privilege on the database.
  const { rows } = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema])
  if (rows.length === 0) await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`)
}

/** Applies the pending `migrations` for `names`; safe to call concurrently and repeatedly. */
export async function migrate(
  pool: Pool,
  names: PostgresTableNames,
  migrations: readonly Migration[],
  placeholders: Placeholders = DEFAULT_PLACEHOLDERS
): Promise<MigrationResult> {
  const all = migrations
  const out = await checkout(pool, 'postgres migrations')
  const client = out.client
  let failed: unknown
  try {
    const resolved = await resolveSchemas(client, names)
    const schema = resolved.table.schema!
    const ledger = `${quoteIdent(schema)}.${quoteIdent(MIGRATIONS_TABLE)}`
    const target = displayName(resolved.table)
    await client.query('BEGIN')
    try {
      // Held to the end of the transaction. Keyed by schema: the ledger table and CREATE … IF NOT EXISTS (which
      // is not safe against a concurrent create of the same name) are per schema.
      await client.query('SELECT pg_advisory_xact_lock($1::int4, hashtext($2))', [LOCK_CLASS, schema])
      await ensureSchema(client, schema)
      if (resolved.ledger !== undefined && resolved.ledger.schema !== schema) {
        await ensureSchema(client, resolved.ledger.schema!)
      }
      await client.query(`CREATE TABLE IF NOT EXISTS ${ledger} (
        target text NOT NULL,
        version integer NOT NULL,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (target, version)
      )`)
      let done: Map<number, { name: string; checksum: string }>
      try {
        const { rows } = await client.query<{ version: number; name: string; checksum: string }>(
          `SELECT version, name, checksum FROM ${ledger} WHERE target = $1`,
          [target]
        )
        done = new Map(rows.map((r) => [r.version, r]))
      } catch (error) {
        throw new FatalError(
          `postgres migrations: ${schema}.${MIGRATIONS_TABLE} exists but is not ours (expected columns target, ` +
            'version, name, checksum); use another schema',
          { cause: error }
        )
      }
      const applied: string[] = []
      for (const migration of all) {
        const previous = done.get(migration.version)
        if (previous !== undefined) {
          if (previous.checksum !== migration.checksum) {
            throw new FatalError(
              `postgres migrations: ${migration.name} changed after it was applied to ${target}; ` +
                'add a new migration instead of editing an applied one'
            )
          }
          continue
        }
        try {
          await client.query(renderMigration(migration.template, resolved, placeholders))
        } catch (error) {
          const wrapped = toSinkError(error, `postgres migration ${migration.name} failed on ${target}`)
          // A migration that fails on data or syntax will fail again: stop instead of retrying forever.
          throw wrapped.kind === ErrorKinds.RETRIABLE ? wrapped : new FatalError(wrapped.message, { cause: error })
        }
        await client.query(`INSERT INTO ${ledger} (target, version, name, checksum) VALUES ($1, $2, $3, $4)`, [
          target,
          migration.version,
          migration.name,
          migration.checksum
        ])
        applied.push(migration.name)
      }
      await client.query('COMMIT')
      return { names: resolved, applied }
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {})
      throw error
    }
  } catch (error) {
    failed = error
    if (error instanceof SfmError) throw error
    throw toSinkError(error, 'postgres migrations')
  } finally {
    // After a failure the connection may be broken or mid-transaction: do not return it to the pool.
    out.release(failed !== undefined)
  }
}
