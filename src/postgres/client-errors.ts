import type { Pool } from 'pg'

const ignore = (): void => {}
const guarded = new WeakSet<Pool>()

/**
 * Gives every client of `pool` a permanent 'error' listener from the moment it connects. pg-pool listens for errors
 * only on idle clients, so a checked-out client's 'error' event would otherwise crash the process
 * (brianc/node-postgres#2439, #3202). Attaching a listener after `pool.connect()` resolves is not enough: when the
 * server shuts down just as a new connection becomes ready, its ReadyForQuery and the termination (57P01) arrive in
 * one TCP chunk, and pg emits the error synchronously, before the awaiting code runs. The pool's 'connect' event fires
 * before the client is handed over, so a listener added there closes that gap. A query in flight still rejects with
 * the error, and the pool still drops a failed idle client, so the listener only has to exist.
 *
 * Affects clients connected after the call; idempotent per pool.
 */
export function guardClientErrors(pool: Pool): Pool {
  if (guarded.has(pool)) return pool
  guarded.add(pool)
  pool.on('connect', (client) => {
    client.on('error', ignore)
  })
  return pool
}
