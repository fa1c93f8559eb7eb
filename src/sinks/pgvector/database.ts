import { mkdir } from 'node:fs/promises'
import type { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import { redact } from '../../logger.ts'
import { binaryParameters } from '../../pglite/parameters.ts'
import { acquirePglite, displayFolder } from '../../pglite/shared.ts'
import { guardClientErrors } from '../../postgres/client-errors.ts'

/**
 * The few things the pgvector store needs from a database, so one store serves a server PostgreSQL (through a
 * `pg.Pool`) and the embedded PGlite. Both speak the same SQL and raise errors with a SQLSTATE `code`, so the
 * Postgres sink's error classification (errors.ts) applies to both.
 */
export interface SqlDatabase {
  readonly kind: 'pg' | 'pglite'
  /** Where it is, without secrets. */
  readonly description: string
  /** One statement with bound parameters. */
  query<R>(text: string, params?: readonly unknown[]): Promise<R[]>
  /** Several statements, no parameters, in one implicit transaction (DDL). */
  exec(sql: string): Promise<void>
  /** Runs `work` in one transaction on one connection (so `SET LOCAL` applies to its queries). */
  transaction<T>(work: (query: QueryFn) => Promise<T>): Promise<T>
  close(): Promise<void>
}

export type QueryFn = <R>(text: string, params?: readonly unknown[]) => Promise<R[]>

export interface PgDatabaseOptions {
  /** Required unless `pool` is given. */
  connectionString?: string
  /** An existing pool; then `close` leaves it open. */
  pool?: pg.Pool
  poolSize?: number
  /** Server-side limit per statement. */
  statementTimeoutMs?: number
  connectionTimeoutMs?: number
}

export function pgDatabase(options: PgDatabaseOptions): SqlDatabase {
  const owned = options.pool === undefined
  const pool = guardClientErrors(
    options.pool ??
      new pg.Pool({
        connectionString: options.connectionString,
        max: options.poolSize ?? 4,
        statement_timeout: options.statementTimeoutMs ?? 30_000,
        query_timeout: (options.statementTimeoutMs ?? 30_000) + 5_000,
        connectionTimeoutMillis: options.connectionTimeoutMs ?? 5_000,
        application_name: 'sfm-pgvector',
        keepAlive: true
      })
  )
  // Without a listener, an idle client's error (server restarted) would crash the process; the next query reconnects.
  const onError = (): void => {}
  pool.on('error', onError)
  return {
    kind: 'pg',
    description: `pgvector at ${redact(options.connectionString ?? 'the given pool')}`,
    async query<R>(text: string, params?: readonly unknown[]) {
      const result = await pool.query(text, params as unknown[] | undefined)
      return result.rows as R[]
    },
    async exec(sql: string) {
      await pool.query(sql)
    },
    async transaction<T>(work: (query: QueryFn) => Promise<T>) {
      const client = await pool.connect()
      let broken = false
      try {
        await client.query('BEGIN')
        const result = await work(async <R>(text: string, params?: readonly unknown[]) => {
          const r = await client.query(text, params as unknown[] | undefined)
          return r.rows as R[]
        })
        await client.query('COMMIT')
        return result
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true
        })
        throw error
      } finally {
        client.release(broken)
      }
    },
    async close() {
      pool.off('error', onError)
      if (owned) await pool.end()
    }
  }
}

/**
 * PGlite (PostgreSQL compiled to WebAssembly, in this process) with the pgvector extension. `dataDir` undefined
 * keeps the database in memory. A folder must have one owner process: prefer `sharedPgliteDatabase`, which locks
 * it and shares the instance with the KV sink.
 */
export async function pgliteDatabase(dataDir?: string): Promise<SqlDatabase & { readonly pglite: PGlite }> {
  // Loaded on demand: the WebAssembly module costs memory and a few seconds of start-up that other stores never pay.
  const { PGlite } = await import('@electric-sql/pglite')
  const { vector } = await import('@electric-sql/pglite-pgvector')
  if (dataDir !== undefined) await mkdir(dataDir, { recursive: true })
  const db = await PGlite.create({ ...(dataDir === undefined ? {} : { dataDir }), extensions: { vector } })
  return wrapPglite(db, `pgvector in PGlite at ${dataDir ?? 'memory'}`, async () => {
    if (!db.closed) await db.close()
  })
}

/**
 * pgvector in the PGlite of `<dataDir>/pg` (default SFM_DATA_DIR or ./.sfm-data), shared in this process with the
 * KV sink and locked against other processes (src/pglite/shared.ts). `close` releases this process's reference.
 */
export async function sharedPgliteDatabase(dataDir?: string): Promise<SqlDatabase & { readonly pglite: PGlite }> {
  const shared = await acquirePglite(dataDir)
  return wrapPglite(shared.db, `pgvector in PGlite at ${displayFolder(shared.folder)}`, () => shared.release())
}

function wrapPglite(
  db: PGlite,
  description: string,
  close: () => Promise<void>
): SqlDatabase & { readonly pglite: PGlite } {
  const options = binaryParameters(db)
  return {
    kind: 'pglite',
    description,
    pglite: db,
    async query<R>(text: string, params?: readonly unknown[]) {
      const result = await db.query<R>(text, params as unknown[] | undefined, options)
      return result.rows
    },
    async exec(sql: string) {
      await db.exec(sql)
    },
    async transaction<T>(work: (query: QueryFn) => Promise<T>) {
      return db.transaction((tx) =>
        work(async <R>(text: string, params?: readonly unknown[]) => {
          const r = await tx.query<R>(text, params as unknown[] | undefined, options)
          return r.rows
        })
      )
    },
    close
  }
}
