/**
 * The dev/test stack itself (scripts/stack.ts): the broker it runs must be a KRaft Kafka 4.x that really stores and
 * serves records, and the database must answer. Run through `npm test`, or with KAFKA_BROKERS / DATABASE_URL set.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { type TestContext, test } from 'node:test'
import {
  Admin,
  apiVersionsV4,
  Connection,
  Consumer,
  MessagesStreamModes,
  Producer,
  stringDeserializers,
  stringSerializers
} from '@platformatic/kafka'
import pg from 'pg'

const brokers = process.env.KAFKA_BROKERS
const databaseUrl = process.env.DATABASE_URL
assert.ok(brokers, 'KAFKA_BROKERS is not set: run `npm test`, or `npm run stack -- up` and export what it prints')
assert.ok(databaseUrl, 'DATABASE_URL is not set: run `npm test`, or `npm run stack -- up` and export what it prints')
const bootstrapBrokers = brokers.split(',')

const FETCH_API_KEY = 1

/**
 * node:test runs `t.after` hooks in the order they were added, and a failing one skips the rest; clients must close
 * last-opened first (the admin deletes the topic before it closes), each even when another failed.
 */
function deferrer(t: TestContext): (cleanup: () => unknown) => void {
  const cleanups: (() => unknown)[] = []
  t.after(async () => {
    const errors: unknown[] = []
    for (const cleanup of cleanups.reverse())
      await Promise.resolve()
        .then(cleanup)
        .catch((e: unknown) => errors.push(e))
    if (errors.length > 0) throw new AggregateError(errors, 'cleanup failed')
  })
  return (cleanup) => cleanups.push(cleanup)
}

test('the broker is a KRaft-mode Apache Kafka 4.x', async (t) => {
  const [host, port] = bootstrapBrokers[0]!.split(':')
  const defer = deferrer(t)
  const connection = new Connection('sfm-stack-test')
  defer(() => connection.close())
  await connection.connect(host!, Number(port))
  const versions = await apiVersionsV4.api.async(connection, 'sfm-stack-test', '1.0.0')

  // Only KRaft clusters finalize `metadata.version`; a ZooKeeper-mode broker (3.x and older) has no such feature.
  const features = new Map((versions.finalizedFeatures ?? []).map((f) => [f.name, f.maxVersionLevel]))
  assert.ok(features.has('metadata.version'), `no finalized metadata.version: not KRaft (${[...features.keys()]})`)
  // Kafka 4.0 dropped Fetch v0-v3 (KIP-896); every 3.x broker still accepts v0.
  const fetch = versions.apiKeys.find((api) => api.apiKey === FETCH_API_KEY)
  assert.ok(fetch, 'the broker does not list the Fetch API')
  assert.ok(fetch.minVersion >= 4, `Fetch min version ${fetch.minVersion}: a pre-4.0 broker`)

  const admin = new Admin({ clientId: 'sfm-stack-test', bootstrapBrokers })
  defer(() => admin.close())
  const metadata = await admin.metadata({ topics: [] })
  assert.match(metadata.id, /^[A-Za-z0-9_-]{22}$/, 'a KRaft cluster id is a base64url UUID')
  assert.equal(metadata.brokers.size, 1, 'the dev stack is a single broker')
  const [broker] = [...metadata.brokers.values()]
  assert.equal(`${broker!.host}:${broker!.port}`, bootstrapBrokers[0], 'the broker advertises the address we use')
})

test('a record produced to a new topic is consumed back', async (t) => {
  const defer = deferrer(t)
  const topic = `sfm-stack-test-${randomUUID()}`
  const admin = new Admin({ clientId: 'sfm-stack-test', bootstrapBrokers })
  defer(() => admin.close())
  await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 })
  defer(() => admin.deleteTopics({ topics: [topic] }))

  const producer = new Producer({
    clientId: 'sfm-stack-test',
    bootstrapBrokers,
    serializers: stringSerializers,
    acks: -1
  })
  defer(() => producer.close())
  const key = randomUUID()
  const value = JSON.stringify({ hello: 'stack', at: Date.now() })
  const sent = await producer.send({ messages: [{ topic, key, value, headers: { kind: 'probe' } }] })
  assert.equal(sent.offsets?.[0]?.offset, 0n)

  const consumer = new Consumer({
    clientId: 'sfm-stack-test',
    groupId: `sfm-stack-test-${randomUUID()}`,
    bootstrapBrokers,
    deserializers: stringDeserializers,
    autocommit: false
  })
  defer(() => consumer.close(true))
  const stream = await consumer.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST, maxWaitTime: 500 })
  defer(() => stream.close())

  const received = await Promise.race([
    (async () => {
      for await (const message of stream) return message
      throw new Error('the stream ended before any message arrived')
    })(),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no message within 30s')), 30_000).unref())
  ])
  assert.equal(received.topic, topic)
  assert.equal(received.key, key)
  assert.equal(received.value, value)
  assert.equal(received.offset, 0n)
  assert.equal(received.headers.get('kind'), 'probe')
  await received.commit()
  const committed = await consumer.listCommittedOffsets({ topics: [{ topic, partitions: [0] }] })
  assert.equal(committed.get(topic)?.[0], 1n, 'the commit reached the group coordinator')
})

test('PostgreSQL answers on DATABASE_URL, in the sfm database', async (t) => {
  const client = new pg.Client({ connectionString: databaseUrl })
  t.after(() => client.end())
  await client.connect()
  const { rows } = await client.query<{ version: string; database: string }>(
    'select version() as version, current_database() as database'
  )
  assert.match(rows[0]!.version, /^PostgreSQL \d+/)
  assert.equal(rows[0]!.database, new URL(databaseUrl).pathname.slice(1))
})
