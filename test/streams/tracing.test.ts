import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { context, SpanKind, trace } from '@opentelemetry/api'
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base'
import { pipe } from 'rxjs'
import { kafkaDeadLetter, kafkaSink } from '../../src/sinks/kafka/index.ts'
import { KafkaSource } from '../../src/sources/kafka/index.ts'
import { decodeJson } from '../../src/streams/operators/decode-json.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { branch, defineTopology } from '../../src/streams/topology.ts'
import { Metrics } from '../../src/telemetry/metrics.ts'
import { injectContext } from '../../src/telemetry/propagation.ts'
import { telemetryObserver } from '../../src/telemetry/runtime-observer.ts'
import { startTracing, tracer } from '../../src/telemetry/tracing.ts'
import { brokers, createTopics, NO_KAFKA, produce, readTopic, uniqueName } from '../helpers/kafka.ts'

describe('trace context through a topology', { skip: brokers() ? false : NO_KAFKA }, () => {
  test('a produce → consume → produce hop keeps the trace; spans for consume, sink write and commit', async (t) => {
    const exporter = new InMemorySpanExporter()
    const tracing = startTracing({ serviceName: 'sfm-test', exporter })
    t.after(() => tracing.shutdown())
    const names = { input: uniqueName('tin'), output: uniqueName('tout'), dlq: uniqueName('tdlq') }
    await createTopics(t, [names.input, names.output, names.dlq], 1)

    const upstream = tracer().startSpan('upstream produce', { kind: SpanKind.PRODUCER })
    const headers = injectContext(trace.setSpan(context.active(), upstream))
    upstream.end()
    await produce([{ topic: names.input, key: 'a', value: '{"hello":"world"}', headers }])

    const metrics = new Metrics({ topology: 'traced' })
    const observer = telemetryObserver(metrics)
    t.after(() => {
      observer.dispose()
      return metrics.close()
    })
    const topology = defineTopology<unknown>({
      name: 'traced',
      source: new KafkaSource({ topics: [names.input], groupId: uniqueName('tgroup') }),
      pipeline: pipe(decodeJson()),
      branches: { out: branch(kafkaSink({ topic: names.output })) },
      deadLetter: kafkaDeadLetter({ topic: names.dlq }),
      settings: { commitIntervalMs: 100 }
    })
    await new Runtime(topology, { observer, untilIdleMs: 1_000 }).run()
    await tracing.forceFlush()

    const traceId = upstream.spanContext().traceId
    const spans = exporter.getFinishedSpans()
    const consume = spans.find((s) => s.name === `consume ${names.input}`)
    assert.ok(consume, `a consume span (got ${spans.map((s) => s.name).join(', ')})`)
    assert.equal(consume.spanContext().traceId, traceId)
    assert.equal(consume.parentSpanContext?.spanId, upstream.spanContext().spanId)
    const write = spans.find((s) => s.name === 'sink out write')
    assert.ok(write)
    assert.ok(
      write.links.some((l) => l.context.spanId === consume.spanContext().spanId),
      'sink span links the message'
    )
    assert.ok(spans.some((s) => s.name === 'commit'))

    const [relayed] = await readTopic(names.output, 1)
    assert.match(
      relayed?.headers.get('traceparent') ?? '',
      new RegExp(`^00-${traceId}-`),
      'the trace continues downstream'
    )
    assert.equal(await metrics.value('sfm_messages_consumed_total', { topic: names.input }), 1)
  })
})
