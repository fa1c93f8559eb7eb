import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { test } from 'node:test'
import pg from 'pg'
import { guardClientErrors } from '../../src/postgres/client-errors.ts'
import { createPool } from '../../src/sinks/postgres/pool.ts'

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5)
  header.write(type, 0, 'latin1')
  header.writeInt32BE(body.length + 4, 1)
  return Buffer.concat([header, body])
}

/** ErrorResponse fields: type byte, then a C string; a final zero byte. */
function errorResponse(fields: Record<string, string>): Buffer {
  const parts = Object.entries(fields).map(([k, v]) => Buffer.from(`${k}${v}\0`, 'utf8'))
  return message('E', Buffer.concat([...parts, Buffer.from([0])]))
}

/**
 * A server that accepts the startup message, then answers AuthenticationOk, ReadyForQuery and a FATAL 57P01 in one
 * write: what a PostgreSQL being shut down can send to a connection that just became ready.
 */
async function shuttingDownServer(): Promise<{ server: Server; url: string }> {
  const server = createServer((socket: Socket) => {
    socket.once('data', () => {
      const auth = Buffer.alloc(4)
      socket.write(
        Buffer.concat([
          message('R', auth),
          message('Z', Buffer.from('I')),
          errorResponse({
            S: 'FATAL',
            V: 'FATAL',
            C: '57P01',
            M: 'terminating connection due to administrator command'
          })
        ])
      )
      socket.end()
    })
    socket.on('error', () => {})
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { server, url: `postgres://u:p@127.0.0.1:${address.port}/db` }
}

/** Any uncaught exception while `work` runs (the node test runner would otherwise pin it on the test). */
async function uncaughtDuring(work: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = []
  const record = (error: unknown): void => {
    seen.push(error)
  }
  const previous = process.listeners('uncaughtException')
  process.removeAllListeners('uncaughtException')
  process.on('uncaughtException', record)
  try {
    await work()
    // Let the socket's close and any late events run.
    await new Promise((r) => setTimeout(r, 100))
  } finally {
    process.off('uncaughtException', record)
    for (const listener of previous) process.on('uncaughtException', listener)
  }
  return seen
}

async function connectAndRelease(pool: pg.Pool): Promise<void> {
  const client = await pool.connect()
  // By now the termination has already arrived: the client is unusable and goes back as broken.
  client.release(true)
}

test('a termination arriving with ReadyForQuery in one chunk crashes an unguarded pool: the case is real', async (t) => {
  const { server, url } = await shuttingDownServer()
  t.after(() => server.close())
  const pool = new pg.Pool({ connectionString: url, max: 1 })
  pool.on('error', () => {})
  t.after(() => pool.end().catch(() => {}))
  const seen = await uncaughtDuring(() => connectAndRelease(pool))
  assert.equal(seen.length, 1, 'pg emits the error on the handed-over client, with no listener')
  assert.equal((seen[0] as { code?: string }).code, '57P01')
})

test('guardClientErrors: the same termination is absorbed; the pool drops the client and connects again', async (t) => {
  const { server, url } = await shuttingDownServer()
  t.after(() => server.close())
  const pool = guardClientErrors(new pg.Pool({ connectionString: url, max: 1 }))
  pool.on('error', () => {})
  t.after(() => pool.end().catch(() => {}))
  const seen = await uncaughtDuring(async () => {
    await connectAndRelease(pool)
    await connectAndRelease(pool)
  })
  assert.deepEqual(seen, [])
  assert.equal(pool.totalCount, 0, 'the broken clients are gone')
  assert.equal(guardClientErrors(pool), pool, 'guarding twice adds nothing')
  assert.equal(pool.listenerCount('connect'), 1)
})

test('createPool guards its pool', async (t) => {
  const { server, url } = await shuttingDownServer()
  t.after(() => server.close())
  const pool = createPool({
    connectionString: url,
    poolSize: 1,
    statementTimeoutMs: 5_000,
    queryTimeoutMs: 10_000,
    connectionTimeoutMs: 5_000,
    idleTimeoutMs: 10_000,
    applicationName: 'test'
  })
  pool.on('error', () => {})
  t.after(() => pool.end().catch(() => {}))
  const seen = await uncaughtDuring(() => connectAndRelease(pool))
  assert.deepEqual(seen, [])
})
