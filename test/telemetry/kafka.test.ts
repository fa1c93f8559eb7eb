import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { test } from 'node:test'
import type { SpanContext } from '@opentelemetry/api'
import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api'
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-node'
import type { Message } from '@platformatic/kafka'
import { Admin, Consumer, Producer, stringDeserializer, stringSerializer } from '@platformatic/kafka'
import { waitForLeaders } from '../../src/kafka/topics.ts'
import { Metric, Metrics } from '../../src/telemetry/metrics.ts'
import { extractContext, injectContext } from '../../src/telemetry/propagation.ts'
import { endSpan, startConsumeSpan, startTracing } from '../../src/telemetry/tracing.ts'

const brokers = process.env.KAFKA_BROKERS?.split(',').filter(Boolean) ?? []
const skip = brokers.length === 0 ? 'KAFKA_BROKERS is not set (start the stack: npm run stack -- up)' : false
if (skip) console.log(`# skipping Kafka telemetry test: ${skip}`)

test('trace context crosses a real Kafka hop in record headers', { skip, timeout: 60_000 }, async (t) => {
  const topic = `test.telemetry.${randomUUID()}`
  const clientId = 'sfm-telemetry-test'
  const admin = new Admin({ clientId, bootstrapBrokers: brokers })
  t.after(async () => {
    await admin.deleteTopics({ topics: [topic] }).catch(() => {})
    await admin.close()
  })
  await admin.createTopics({ topics: [topic], partitions: 1, replicas: 1 })
  await waitForLeaders(admin, [topic])

  const exporter = new InMemorySpanExporter()
  const tracing = startTracing({ serviceName: 'telemetry-kafka-test', exporter })
  t.after(() => tracing.shutdown())

  const sent: SpanContext = {
    traceId: randomUUID().replaceAll('-', ''),
    spanId: randomUUID().replaceAll('-', '').slice(0, 16),
    traceFlags: TraceFlags.SAMPLED
  }
  // String header keys on both sides (see propagation.ts): the project's Kafka header convention.
  const producer = new Producer<Buffer, Buffer, string, Buffer>({
    clientId,
    bootstrapBrokers: brokers,
    serializers: { headerKey: stringSerializer }
  })
  t.after(() => producer.close())
  await producer.send({
    messages: [
      {
        topic,
        value: Buffer.from('{}'),
        headers: injectContext(trace.setSpanContext(ROOT_CONTEXT, sent), new Map([['source', Buffer.from('test')]]))
      }
    ]
  })

  const consumer = new Consumer<Buffer, Buffer, string, Buffer>({
    clientId,
    groupId: `sfm-telemetry-${randomUUID()}`,
    bootstrapBrokers: brokers,
    deserializers: { headerKey: stringDeserializer },
    maxWaitTime: 500
  })
  t.after(() => consumer.close(true))
  const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: false })
  // Not `for await … break`: leaving the loop destroys the stream, and the lag report below needs it alive.
  const [received] = (await once(stream, 'data')) as [Message<Buffer, Buffer, string, Buffer>]
  assert.equal(received.headers.get('source')?.toString(), 'test')

  const extracted = trace.getSpanContext(extractContext(received.headers))
  assert.equal(extracted?.traceId, sent.traceId)
  assert.equal(extracted?.spanId, sent.spanId)

  const origin = {
    topic: received.topic,
    partition: received.partition,
    offset: received.offset,
    leaderEpoch: received.leaderEpoch,
    timestamp: received.timestamp
  }
  endSpan(startConsumeSpan(origin, received.headers))
  await tracing.forceFlush()
  const [span] = exporter.getFinishedSpans()
  assert.equal(span?.name, `consume ${topic}`)
  assert.equal(span?.spanContext().traceId, sent.traceId)
  assert.equal(span?.parentSpanContext?.spanId, sent.spanId)

  // The consumer's lag report feeds the lag gauge.
  await received.commit()
  const metrics = new Metrics({ topology: 'telemetry-test' })
  t.after(() => metrics.close())
  metrics.setLag(await consumer.getLag({ topics: [topic] }))
  assert.equal(await metrics.value(Metric.CONSUMER_LAG, { topic, partition: '0' }), 0)
})
