import { randomBytes } from 'node:crypto'
import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Admin } from '@platformatic/kafka'
import pg from 'pg'
import { deleteConnector, putConnector, repoConnectorConfig, waitForRunning } from './connect.ts'
import { brokers, createTopics, uniqueName } from './kafka.ts'

/** A private copy of the repository's JDBC sink (deploy/connect/memory-audit-jdbc-sink.json) and its table. */
export interface JdbcSink {
  topic: string
  connector: string
  table: string
  dlq: string
  db: pg.Client
}

export interface StartSinkOptions {
  /** Partitions of the topic this creates (ignored with `topic`). Default 1. */
  partitions?: number
  /** An existing topic to read (the caller made it); by default a new one is created. */
  topic?: string
}

/**
 * Registers the repository's sink config with its own topic, table, connector name and dead-letter topic, so tests
 * can share one Connect worker and one database; everything is removed when the test ends. Needs CONNECT_URL,
 * KAFKA_BROKERS and DATABASE_URL.
 */
export async function startSink(t: TestContext, options: StartSinkOptions = {}): Promise<JdbcSink> {
  const topic = options.topic ?? uniqueName('audit')
  const table = `audit_${randomBytes(4).toString('hex')}`
  const connector = `sfm-test-${topic}`
  const dlq = `${topic}.connect-dlq`
  const db = new pg.Client({ connectionString: process.env.DATABASE_URL })
  await db.connect()
  t.after(async () => {
    await deleteConnector(connector)
    await db.query(`DROP TABLE IF EXISTS "${table}"`).catch(() => {})
    await db.end()
    const admin = new Admin({ clientId: 'sfm-test-admin', bootstrapBrokers: brokers()! })
    await admin.deleteTopics({ topics: [dlq] }).catch(() => {})
    await admin.close()
  })
  if (options.topic === undefined) await createTopics(t, [topic], options.partitions ?? 1)
  const config = {
    ...repoConnectorConfig(),
    name: connector,
    topics: topic,
    'collection.name.format': table,
    'errors.deadletterqueue.topic.name': dlq
  }
  await putConnector(connector, config)
  await waitForRunning(connector)
  return { topic, connector, table, dlq, db }
}

/** One row of the sink's table (the columns of src/connect/audit-envelope.ts plus the Kafka coordinates key). */
export interface AuditRow {
  event_id: string
  memory_id: string
  namespace: string
  op: string
  outcome: string | null
  version: string
  processed_at: Date
  record: unknown
  __connect_topic: string
  __connect_partition: number
  __connect_offset: string
}

/** Waits until the sink's table holds at least `count` rows (it is created with the first batch) and returns them. */
export async function waitForRows(sink: JdbcSink, count: number, timeoutMs = 60_000): Promise<AuditRow[]> {
  const deadline = Date.now() + timeoutMs
  let seen = -1
  for (;;) {
    const result = await sink.db.query<AuditRow>(`SELECT * FROM "${sink.table}"`).catch((error: { code?: string }) => {
      if (error.code === '42P01') return { rows: [] as AuditRow[] } // undefined_table: no batch written yet
      throw error
    })
    seen = result.rows.length
    if (seen >= count) return result.rows
    if (Date.now() > deadline) throw new Error(`${sink.table}: ${seen} rows after ${timeoutMs} ms, expected ${count}`)
    await sleep(250)
  }
}
