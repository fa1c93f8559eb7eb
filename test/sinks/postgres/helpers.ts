import { randomBytes, randomUUID } from 'node:crypto'
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net'
import type { TestContext } from 'node:test'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'
import type { MemoryEvent } from '../../../src/memory/event.ts'
import type { MemoryRow } from '../../../src/memory/fold.ts'
import { pglitePool } from '../../../src/sinks/postgres/pglite-pool.ts'
import { Delivery, type DeliveryHost, Envelope } from '../../../src/streams/envelope.ts'

export function databaseUrl(): string {
  const url = process.env.DATABASE_URL
  if (url === undefined || url === '') {
    throw new Error('DATABASE_URL is not set: start the stack (npm run stack -- up) and export `npm run stack -- env`')
  }
  return url
}

/** A fresh schema for one test, dropped with everything in it afterwards, and a small pool for assertions. */
export async function testSchema(t: TestContext, prefix = 'sfm_pg'): Promise<{ schema: string; pool: pg.Pool }> {
  const schema = `${prefix}_${randomBytes(6).toString('hex')}`
  const pool = new pg.Pool({ connectionString: databaseUrl(), max: 2 })
  pool.on('error', () => {})
  await pool.query(`CREATE SCHEMA "${schema}"`)
  t.after(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    await pool.end()
  })
  return { schema, pool }
}

/**
 * The two databases a writer test runs on: the PostgreSQL server (a pool of `max` connections, tables in `schema`)
 * and an in-process PGlite (tables in `public`); `prefix` qualifies a table name. Both are closed after the test.
 */
export async function serverAndPglite(
  t: TestContext,
  schema: string,
  max = 1
): Promise<{ name: 'server' | 'pglite'; pool: pg.Pool; prefix: string }[]> {
  const serverPool = new pg.Pool({ connectionString: databaseUrl(), max })
  serverPool.on('error', () => {})
  t.after(() => serverPool.end())
  const db = await PGlite.create()
  t.after(() => db.close())
  return [
    { name: 'server', pool: serverPool, prefix: `${schema}.` },
    { name: 'pglite', pool: pglitePool(db), prefix: 'public.' }
  ]
}

/** Records what the runtime would be told: a sink must neither settle nor dead-letter envelopes itself. */
export function recordingHost(): DeliveryHost & { readonly calls: string[] } {
  const calls: string[] = []
  return {
    calls,
    done() {
      calls.push('done')
    },
    deadLetter(_delivery, _error, stage) {
      calls.push(`deadLetter:${stage}`)
    },
    dropped(_delivery, reason) {
      calls.push(`dropped:${reason}`)
    }
  }
}

let offset = 0n

export function envelopes(
  events: readonly MemoryEvent[],
  host: DeliveryHost = recordingHost()
): Envelope<MemoryEvent>[] {
  return events.map((event) => {
    const raw = Buffer.from(JSON.stringify(event))
    const delivery = new Delivery(host, {
      origin: { topic: 'memory.events', partition: 0, offset: offset++, leaderEpoch: 0, timestamp: 0n },
      key: Buffer.from(event.id),
      raw,
      headers: new Map()
    })
    return new Envelope(delivery, event)
  })
}

export function memoryEvent(fields: Partial<MemoryEvent> & { id: string }): MemoryEvent {
  return {
    event_id: randomUUID(),
    namespace: 'ns',
    type: 'note',
    timestamp: '2025-01-01T00:00:00.000000Z',
    payload: { text: `memory ${fields.id}` },
    ...fields
  }
}

/** The memories table as MemoryRow values, timestamps in the canonical text form fold() uses. */
export async function readMemories(pool: pg.Pool, table: string, idPrefix = ''): Promise<Map<string, MemoryRow>> {
  const ts = (column: string): string =>
    `to_char(${column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ${column}`
  const { rows } = await pool.query<{
    id: string
    namespace: string
    type: string | null
    payload: unknown
    importance: number | null
    version: string
    event_id: string
    event_ts: string
    deleted_at: string | null
  }>(
    `SELECT id, namespace, type, payload, importance, version, event_id, ${ts('event_ts')}, ${ts('deleted_at')}
     FROM ${table} WHERE starts_with(id, $1)`,
    [idPrefix]
  )
  return new Map(
    rows.map((r) => [
      r.id,
      {
        id: r.id,
        namespace: r.namespace,
        type: r.type,
        payload: r.payload,
        importance: r.importance,
        version: Number(r.version),
        eventId: r.event_id,
        eventTs: r.event_ts,
        deletedAt: r.deleted_at
      }
    ])
  )
}

/** Holds a row lock on `id` in its own transaction until the returned function is called. */
export async function lockRow(pool: pg.Pool, table: string, id: string): Promise<() => Promise<void>> {
  const client = await pool.connect()
  await client.query('BEGIN')
  const { rowCount } = await client.query(`SELECT 1 FROM ${table} WHERE id = $1 FOR UPDATE`, [id])
  if (rowCount !== 1) throw new Error(`no row ${id} to lock`)
  return async () => {
    await client.query('ROLLBACK')
    client.release()
  }
}

/** Waits until a backend of `applicationName` is blocked on a lock; returns its pid. */
export async function waitForLockWait(
  pool: pg.Pool,
  applicationName: string,
  timeoutMs = 5_000,
  exclude: readonly number[] = []
): Promise<number> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const { rows } = await pool.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
       WHERE application_name = $1 AND wait_event_type = 'Lock' AND NOT pid = ANY($2::int4[])`,
      [applicationName, exclude]
    )
    if (rows[0] !== undefined) return rows[0].pid
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`no backend of ${applicationName} waited on a lock within ${timeoutMs} ms`)
}

/** A TCP proxy in front of the database, to make it vanish and come back without stopping the shared server. */
export class DatabaseProxy {
  readonly #target: { host: string; port: number }
  #server: Server | undefined
  readonly #sockets = new Set<Socket>()
  port = 0

  constructor(databaseUrl: string) {
    const url = new URL(databaseUrl)
    this.#target = { host: url.hostname || '127.0.0.1', port: Number(url.port || 5432) }
  }

  /** The database URL, pointed at the proxy. */
  url(databaseUrl: string): string {
    const url = new URL(databaseUrl)
    url.hostname = '127.0.0.1'
    url.port = String(this.port)
    return url.toString()
  }

  async start(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.#target.port, this.#target.host)
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket)
        socket.on('close', () => this.#sockets.delete(socket))
        socket.on('error', () => {})
      }
      client.pipe(upstream).pipe(client)
      client.on('close', () => upstream.destroy())
      upstream.on('close', () => client.destroy())
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.port, '127.0.0.1', () => resolve())
    })
    this.port = (server.address() as AddressInfo).port
    this.#server = server
  }

  /** Refuses new connections and cuts the open ones. */
  async stop(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const socket of this.#sockets) socket.destroy()
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
