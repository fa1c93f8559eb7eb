import pg, { type Pool, type PoolClient } from 'pg'
import { SfmError } from '../../errors.ts'
import { guardClientErrors } from '../../postgres/client-errors.ts'
import { toSinkError } from '../../postgres/errors.ts'
import type { PostgresConnectionOptions } from './types.ts'

export function createPool(
  options: Pick<
    PostgresConnectionOptions,
    | 'connectionString'
    | 'poolSize'
    | 'statementTimeoutMs'
    | 'queryTimeoutMs'
    | 'connectionTimeoutMs'
    | 'idleTimeoutMs'
    | 'applicationName'
  >
): Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.poolSize,
    // Sent as startup parameters: every connection of the pool has them, no SET round trip.
    statement_timeout: options.statementTimeoutMs,
    query_timeout: options.queryTimeoutMs,
    connectionTimeoutMillis: options.connectionTimeoutMs,
    idleTimeoutMillis: options.idleTimeoutMs,
    application_name: options.applicationName,
    keepAlive: true
  })
  return guardClientErrors(pool)
}

/**
 * A checked-out client; `release(true)` closes it instead of returning it to the pool. `release` settles once the
 * client is back: at once for pg; for the PGlite pool (pglite-pool.ts), whose lease is a transaction, after its COMMIT,
 * rejecting with the COMMIT's error. A caller that does not await it has the rejection ignored.
 */
export interface Checkout {
  readonly client: PoolClient
  release(broken: boolean): Promise<void>
}

const ignore = (): void => {}

/**
 * Checks a client out of the pool with an 'error' listener attached while it is out, for pools made elsewhere:
 * pg-pool listens for errors only on idle clients (brianc/node-postgres#2439, #3202). Pools made here are guarded
 * from the moment each client connects (src/postgres/client-errors.ts), which also covers the instant between the
 * hand-over and this listener.
 */
export async function checkout(pool: Pool, what: string): Promise<Checkout> {
  let client: PoolClient
  try {
    client = await pool.connect()
  } catch (error) {
    throw error instanceof SfmError ? error : toSinkError(error, `${what}: cannot connect`)
  }
  client.on('error', ignore)
  let released = false
  return {
    client,
    release(broken) {
      if (released) return Promise.resolve()
      released = true
      // Kept while a destroyed client finishes closing; it is garbage afterwards anyway.
      if (!broken) client.off('error', ignore)
      // pg's release returns nothing; a PGlite lease returns its commit (see Checkout).
      const ended = (client.release(broken) as unknown as Promise<void> | undefined) ?? Promise.resolve()
      ended.catch(ignore)
      return ended
    }
  }
}
