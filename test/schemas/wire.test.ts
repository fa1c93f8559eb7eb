/**
 * Confluent framing on the real broker and the real registry: register a schema, produce framed events, consume them
 * through a topology that validates by schema id, and produce framed output with a registry-aware Kafka sink.
 */
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, test } from 'node:test'
import { confluentRegistry } from '../../src/schemas/registry/confluent.ts'
import { frame } from '../../src/schemas/wire/framing.ts'
import { loadSchema } from '../../src/schemas.ts'
import { kafkaDeadLetter, kafkaSink } from '../../src/sinks/kafka/index.ts'
import { KafkaSource } from '../../src/sources/kafka/index.ts'
import { DeadLetterHeaders } from '../../src/streams/dead-letter.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { branch, defineTopology } from '../../src/streams/topology.ts'
import { envelopeOf, RecordingHost } from '../helpers/envelopes.ts'
import { brokers, createTopics, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'

const url = process.env.SCHEMA_REGISTRY_URL
const skip = !brokers()
  ? NO_KAFKA
  : !url
    ? 'SCHEMA_REGISTRY_URL is not set: start one with `npm run stack -- up --registry` and export it'
    : false
if (skip) process.stderr.write(`test/schemas/wire.test.ts: skipped: ${skip}\n`)

const event = (id: string) => ({
  event_id: randomUUID(),
  id,
  namespace: 'default',
  type: 'note',
  timestamp: '2026-01-01T00:00:00Z',
  payload: { text: `hello ${id}` }
})

async function registered(subject: string): Promise<{ id: number; schema: object }> {
  const { schema } = await loadSchema('memory.event')
  const client = confluentRegistry(url!, { timeoutMs: 10_000 })
  const done = await client.register(subject, 1, JSON.stringify(schema))
  assert.ok(done.id !== undefined)
  return { id: done.id, schema }
}

describe('Confluent wire format with a real registry', { skip }, () => {
  test('framed events are validated by schema id; unframed, unknown-id and invalid ones go to the DLQ', async (t) => {
    const subject = uniqueName('sfm-wire')
    const { id, schema } = await registered(subject)
    const names = { input: uniqueName('wire-in'), out: uniqueName('wire-out'), dlq: uniqueName('wire-dlq') }
    await createTopics(t, [names.input, names.out, names.dlq], 1)

    const valid = Array.from({ length: 5 }, (_, i) => event(`m${i}`))
    const { namespace: _n, ...invalid } = event('bad')
    const invalidBytes = frame(id, Buffer.from(JSON.stringify(invalid)))
    await produce([
      ...valid
        .slice(0, 2)
        .map((e) => ({ topic: names.input, key: e.id, value: frame(id, Buffer.from(JSON.stringify(e))) })),
      { topic: names.input, key: 'invalid', value: invalidBytes },
      { topic: names.input, key: 'unknown', value: frame(2_147_480_000, Buffer.from(JSON.stringify(event('u')))) },
      { topic: names.input, key: 'plain', value: JSON.stringify(event('p')) },
      ...valid
        .slice(2)
        .map((e) => ({ topic: names.input, key: e.id, value: frame(id, Buffer.from(JSON.stringify(e))) }))
    ])

    const source = new KafkaSource({
      topics: [names.input],
      groupId: uniqueName('wire-group'),
      registry: { url: url! },
      sessionTimeout: 6000,
      heartbeatInterval: 500
    })
    const topology = defineTopology<unknown>({
      name: 'wire',
      source,
      pipeline: source.decoder(),
      branches: {
        out: branch(
          kafkaSink({ topic: names.out, brokers: brokers()!, registry: { registry: { url: url! }, subject, schema } }),
          { batch: { maxCount: 10, maxWaitMs: 20 } }
        )
      },
      deadLetter: kafkaDeadLetter({ topic: names.dlq, brokers: brokers()! }),
      settings: { commitIntervalMs: 200, drainTimeoutMs: 5_000 }
    })
    const summary = await new Runtime(topology, { untilIdleMs: 1500 }).run()
    assert.equal(summary.deadLettered, 3)

    const letters = new Map((await readTopic(names.dlq, 3)).map((l) => [l.key, l]))
    assert.equal(letters.size, 3)
    const reason = (key: string) => letters.get(key)?.headers.get(DeadLetterHeaders.ERROR_MESSAGE) ?? ''
    const stage = (key: string) => letters.get(key)?.headers.get(DeadLetterHeaders.STAGE)
    assert.equal(stage('invalid'), 'validate')
    assert.match(reason('invalid'), /schema validation failed: .*namespace/)
    assert.equal(letters.get('invalid')?.value, invalidBytes.toString(), 'the DLQ keeps the framed bytes')
    assert.equal(stage('unknown'), 'validate')
    assert.match(reason('unknown'), /schema id 2147480000 is unknown to the schema registry/)
    assert.equal(stage('plain'), 'decode')
    assert.match(reason('plain'), /not in the Confluent wire format .*first byte 0x7b \(plain JSON\?\)/)

    const out = await readTopic(names.out, 5)
    assert.equal(out.length, 5)
    for (const record of out) {
      const bytes = Buffer.from(record.value!)
      assert.equal(bytes[0], 0, 'magic byte')
      assert.equal(bytes.readInt32BE(1), id, 'the registered schema id')
    }
    assert.deepEqual(
      out.map((r) => (JSON.parse(Buffer.from(r.value!).subarray(5).toString()) as { id: string }).id),
      valid.map((e) => e.id)
    )
  })

  test('the framing sink fails an invalid value alone, as poison, and refuses a schema that is not registered', async (t) => {
    const subject = uniqueName('sfm-wire-sink')
    const { schema } = await registered(subject)
    const topic = uniqueName('wire-sink')
    await createTopics(t, [topic], 1)
    const sink = kafkaSink<unknown>({
      topic,
      brokers: brokers()!,
      registry: { registry: { url: url! }, subject, schema }
    })
    t.after(() => sink.close?.())
    await sink.open?.({ topology: 't', branch: 'b', signal: new AbortController().signal })
    const host = new RecordingHost()
    const batch = [event('a'), { id: 'no-event-id' }, event('c')].map((value) =>
      envelopeOf(host, '{}').withValue(value)
    )
    const result = await sink.write(batch, { topology: 't', branch: 'b', signal: new AbortController().signal })
    assert.equal(result?.failures?.length, 1)
    assert.equal(result?.failures?.[0]?.index, 1)
    // The first error only (validation stops there): here a missing required property.
    assert.match(
      String(result?.failures?.[0]?.error),
      /does not match schema id \d+: \/: must have required property '\w+'$/
    )
    const failure = result?.failures?.[0]?.error as { kind?: string } | undefined
    assert.equal(failure?.kind, 'poison')
    assert.equal((await readTopic(topic, 2)).length, 2)

    const unregistered = kafkaSink<unknown>({
      topic,
      brokers: brokers()!,
      registry: { registry: { url: url! }, subject, schema: { ...schema, description: 'not registered' } }
    })
    assert.ok(unregistered.open)
    await assert.rejects(unregistered.open({ topology: 't', branch: 'b', signal: new AbortController().signal }), {
      name: 'FatalError',
      message: /is not registered under subject .*npm run schemas -- register/
    })
    await unregistered.close?.()
  })
})
