/**
 * The generic PostgreSQL sink in a topology that has nothing to do with memories: orders upserted by order id into a
 * table of their own, built only from the public API and run on the embedded log, against PostgreSQL and PGlite.
 * The orders layout uses the options: a fence (revision, updated), tombstones (cancelled orders) and the ledger.
 * A second layout with none of them (last write wins) shows the bare upsert.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { type TestContext, test } from 'node:test'
import { PGlite } from '@electric-sql/pglite'
import type pg from 'pg'
import { pipe } from 'rxjs'
import {
  branch,
  decodeJson,
  defineTopology,
  ErrorCodes,
  kafkaDeadLetter,
  logSource,
  PoisonError,
  type PostgresTableLayout,
  type PreparedRow,
  parseEventTime,
  pglitePool,
  postgresSink,
  Runtime
} from 'somafractal-streams'
import { openLog, readAll, tempDataDir } from '../../helpers/embedded-log.ts'
import { databaseUrl, envelopes, testSchema } from './helpers.ts'

interface Order {
  order_id: string
  change_id: string
  revision: number
  at: string
  status: 'open' | 'cancelled'
  customer?: string
  total?: number
  lines?: unknown[]
}

interface PreparedOrder extends PreparedRow {
  readonly customer: string | null
  readonly total: number | null
  readonly lines: string | null
}

const orders: PostgresTableLayout<Order, PreparedOrder> = {
  key: 'order_id',
  columns: [
    { name: 'customer', type: 'text', value: (o) => o.customer },
    { name: 'total', type: 'float8', value: (o) => o.total },
    { name: 'lines', type: 'jsonb', value: (o) => o.lines },
    { name: 'revision' },
    { name: 'updated' },
    { name: 'change_id' }
  ],
  fence: { version: 'revision', time: 'updated' },
  tombstone: { column: 'cancelled_at', clear: ['lines'] },
  ledger: { type: 'text', column: 'change_id' },
  item: 'order',
  prepare(order, index) {
    const time = parseEventTime(order.at)
    if (typeof order.order_id !== 'string' || typeof time === 'string' || !Number.isSafeInteger(order.revision)) {
      return new PoisonError('order cannot be stored', { code: ErrorCodes.VALIDATION, details: { index } })
    }
    const cancelled = order.status === 'cancelled'
    return {
      index,
      id: order.order_id,
      eventId: order.change_id,
      version: order.revision,
      micros: time.micros,
      deleted: cancelled,
      customer: order.customer ?? null,
      total: order.total ?? null,
      lines: cancelled ? null : JSON.stringify(order.lines ?? [])
    }
  }
}

const ORDERS_DDL = (table: string, ledger: string) => `
  CREATE TABLE ${table} (order_id text PRIMARY KEY, customer text, total float8, lines jsonb, revision bigint NOT NULL,
    updated timestamptz NOT NULL, change_id text NOT NULL, cancelled_at timestamptz);
  CREATE TABLE ${ledger} (event_id text PRIMARY KEY, processed_at timestamptz NOT NULL DEFAULT now());`

async function targets(t: TestContext): Promise<{ name: string; pool?: pg.Pool; schema: string; read: pg.Pool }[]> {
  const { schema, pool } = await testSchema(t, 'sfm_orders')
  const db = await PGlite.create()
  t.after(() => db.close())
  return [
    { name: 'server', schema, read: pool },
    { name: 'pglite', pool: pglitePool(db), schema: 'public', read: pglitePool(db) }
  ]
}

test('an orders topology on the generic PostgreSQL sink: fence, tombstones, ledger (PostgreSQL and PGlite)', async (t) => {
  for (const target of await targets(t)) {
    const table = `${target.schema}.orders`
    await target.read.query(ORDERS_DDL(`"${target.schema}".orders`, `"${target.schema}".order_changes`))
    const dir = tempDataDir(t)
    const log = openLog(t, dir)
    for (const name of ['orders', 'orders.dlq']) log.createTopic({ name, partitions: 2 })
    const order = (o: Partial<Order> & Pick<Order, 'order_id' | 'revision'>): Order => ({
      change_id: randomUUID(),
      at: '2026-01-01T00:00:00Z',
      status: 'open',
      customer: 'c1',
      total: 10,
      lines: [{ sku: 'a', qty: 1 }],
      ...o
    })
    const changes = [
      order({ order_id: 'o1', revision: 1 }),
      order({ order_id: 'o1', revision: 3, total: 30 }),
      order({ order_id: 'o1', revision: 2, total: 20 }), // stale: fenced
      order({ order_id: 'o2', revision: 1, total: 5 }),
      order({ order_id: 'o2', revision: 2, status: 'cancelled' }), // tombstone
      order({ order_id: 'o2', revision: 1, total: 6, at: '2026-01-01T00:00:01Z' }), // older than the tombstone
      order({ order_id: 'o3', revision: 1, at: 'yesterday' }) // poison: to the DLQ
    ]
    const value = (v: unknown) => Buffer.from(JSON.stringify(v))
    const records = changes.map((c) => ({ topic: 'orders', key: value(c.order_id), value: value(c) }))
    // A redelivered change (same change_id): the ledger makes it a duplicate.
    records.push({ topic: 'orders', key: value('o1'), value: value(changes[0]) })
    log.append(records)

    const outcomes: string[] = []
    const connection = target.pool === undefined ? { connectionString: databaseUrl() } : { pool: target.pool }
    const sink = postgresSink({
      ...connection,
      table,
      ledgerTable: 'order_changes',
      layout: orders,
      onOutcomes: (list) => outcomes.push(...list.filter((o) => o !== undefined))
    })
    const options = { target: 'embedded', dataDir: dir } as const
    const topology = defineTopology<Order>({
      name: 'orders',
      source: logSource({ topics: ['orders'], groupId: 'orders', ...options }),
      // decodeJson yields unknown values; the sink's prepare checks what it needs.
      pipeline: pipe(decodeJson({ maxBytes: 1 << 16, maxDepth: 16 })) as never,
      branches: { orders: branch(sink, { batch: { maxCount: 3, maxWaitMs: 10 } }) },
      deadLetter: kafkaDeadLetter({ topic: 'orders.dlq', ...options }),
      settings: { commitIntervalMs: 50, drainTimeoutMs: 5_000 }
    })
    const summary = await new Runtime(topology, { untilIdleMs: 300 }).run()
    await sink.close()

    assert.equal(summary.reason, 'idle', target.name)
    assert.equal(readAll(log, 'orders.dlq').length, 1, `${target.name}: the order with a bad time is dead-lettered`)
    const { rows } = await target.read.query(
      `SELECT order_id, total, lines, revision::int AS revision, cancelled_at IS NOT NULL AS cancelled
         FROM "${target.schema}".orders ORDER BY order_id`
    )
    assert.deepEqual(
      rows,
      [
        { order_id: 'o1', total: 30, lines: [{ sku: 'a', qty: 1 }], revision: 3, cancelled: false },
        { order_id: 'o2', total: 10, lines: null, revision: 2, cancelled: true }
      ],
      target.name
    )
    const ledger = await target.read.query(`SELECT count(*)::int AS n FROM "${target.schema}".order_changes`)
    assert.equal(ledger.rows[0].n, 6, `${target.name}: every stored change once in the ledger`)
    // How many are applied or fenced depends on which changes share a batch; the stale ones are fenced either way.
    assert.equal(outcomes.length, 7, target.name)
    assert.equal(outcomes.filter((o) => o === 'duplicate').length, 1, `${target.name}: the redelivered change`)
    assert.ok(
      outcomes.filter((o) => o === 'fenced').length >= 2,
      `${target.name}: o1 revision 2, o2 after its tombstone`
    )
    assert.ok(outcomes.filter((o) => o === 'applied').length >= 2, target.name)
  }
})

test('a layout without fence, tombstones or ledger: the last value of a key wins', async (t) => {
  const { schema, pool } = await testSchema(t, 'sfm_orders')
  await pool.query(`CREATE TABLE "${schema}".totals (order_id text PRIMARY KEY, total float8)`)
  interface Total extends PreparedRow {
    readonly total: number
  }
  const layout: PostgresTableLayout<{ id: string; total: number }, Total> = {
    key: 'order_id',
    columns: [{ name: 'total', type: 'float8', value: (r) => r.total }],
    prepare: (v, index) => ({
      index,
      id: v.id,
      eventId: String(index),
      version: 0,
      micros: 0n,
      deleted: false,
      total: v.total
    })
  }
  const sink = postgresSink({ connectionString: databaseUrl(), table: `${schema}.totals`, layout })
  t.after(() => sink.close())
  // envelopes() reads only `id` of what it wraps.
  const wrap = (values: { id: string; total: number }[]) => envelopes(values as never) as never
  const first = await sink.write(
    wrap([
      { id: 'a', total: 1 },
      { id: 'a', total: 2 },
      { id: 'b', total: 3 }
    ])
  )
  assert.deepEqual(
    first.outcomes,
    ['fenced', 'applied', 'applied'],
    'the earlier value of a in the batch is superseded'
  )
  const second = await sink.write(wrap([{ id: 'b', total: 1 }]))
  assert.deepEqual(second.outcomes, ['applied'], 'without a fence a smaller value overwrites too')
  const { rows } = await pool.query(`SELECT order_id, total FROM "${schema}".totals ORDER BY order_id`)
  assert.deepEqual(rows, [
    { order_id: 'a', total: 2 },
    { order_id: 'b', total: 1 }
  ])
  assert.deepEqual(await sink.readRows(['a', 'x']), [{ order_id: 'a', total: 2 }])
})
