import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import type { SpanContext } from '@opentelemetry/api'
import { context, ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api'
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-node'
import { PoisonError } from '../../src/errors.ts'
import type { Origin } from '../../src/streams/envelope.ts'
import { extractContext, injectContext } from '../../src/telemetry/propagation.ts'
import {
  endSpan,
  startConsumeSpan,
  startTracing,
  traceCommit,
  traceProduce,
  traceSinkWrite,
  withSpan
} from '../../src/telemetry/tracing.ts'

const upstream: SpanContext = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: TraceFlags.SAMPLED
}
const origin: Origin = { topic: 'memory.events', partition: 3, offset: 42n, leaderEpoch: 0, timestamp: 0n }
const upstreamHeaders = () => injectContext(trace.setSpanContext(ROOT_CONTEXT, upstream))

test('spans of one message: consume is a child of the headers, produce a child of consume', async (t) => {
  const exporter = new InMemorySpanExporter()
  const tracing = startTracing({ serviceName: 'telemetry-test', exporter })
  t.after(() => tracing.shutdown())
  assert.equal(tracing.enabled, true)

  const consumeCtx = startConsumeSpan(origin, upstreamHeaders(), 'group-a')
  const produced = await traceProduce('memory.latest', consumeCtx, (_span, ctx) => injectContext(ctx))
  await traceSinkWrite('pg', [consumeCtx], () => 'written')
  await assert.rejects(
    withSpan('operator validate', { parent: consumeCtx }, () => {
      throw new PoisonError('bad record')
    }),
    PoisonError
  )
  await traceCommit(() => {})
  endSpan(consumeCtx)
  await tracing.forceFlush()

  const spans = new Map(exporter.getFinishedSpans().map((span) => [span.name, span]))
  assert.deepEqual(
    [...spans.keys()].sort(),
    ['commit', 'consume memory.events', 'operator validate', 'produce memory.latest', 'sink pg write'].sort()
  )
  const consume = spans.get('consume memory.events')!
  assert.equal(consume.spanContext().traceId, upstream.traceId)
  assert.equal(consume.parentSpanContext?.spanId, upstream.spanId)
  assert.equal(consume.kind, SpanKind.CONSUMER)
  assert.equal(consume.attributes['messaging.destination.name'], 'memory.events')
  assert.equal(consume.attributes['messaging.kafka.offset'], 42)
  assert.equal(consume.resource.attributes['service.name'], 'telemetry-test')

  const produce = spans.get('produce memory.latest')!
  assert.equal(produce.parentSpanContext?.spanId, consume.spanContext().spanId)
  assert.equal(trace.getSpanContext(extractContext(produced))?.spanId, produce.spanContext().spanId)

  const sink = spans.get('sink pg write')!
  assert.equal(sink.parentSpanContext, undefined, 'a batch write is a root span…')
  assert.equal(sink.links[0]?.context.spanId, consume.spanContext().spanId, '…linked to its messages')

  const operator = spans.get('operator validate')!
  assert.equal(operator.status.code, SpanStatusCode.ERROR)
  assert.equal(operator.events[0]?.name, 'exception')
  assert.equal(spans.get('commit')!.parentSpanContext, undefined)
})

test('the span of withSpan is active inside fn', async (t) => {
  const exporter = new InMemorySpanExporter()
  const tracing = startTracing({ serviceName: 'telemetry-test', exporter })
  t.after(() => tracing.shutdown())
  await withSpan('outer', {}, async (outer) => {
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(trace.getActiveSpan(), outer)
    await withSpan('inner', {}, () => {})
  })
  await tracing.forceFlush()
  const [inner, outer] = exporter.getFinishedSpans()
  assert.equal(inner?.parentSpanContext?.spanId, outer?.spanContext().spanId)
  assert.throws(() => startTracing({ serviceName: 'twice', exporter }), /already started/)
})

test('without an exporter or endpoint, tracing is off but trace context is still forwarded', async () => {
  delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT
  delete process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
  const tracing = startTracing({ serviceName: 'telemetry-test' })
  assert.equal(tracing.enabled, false)
  const consumeCtx = startConsumeSpan(origin, upstreamHeaders())
  assert.equal(trace.getSpan(consumeCtx)?.isRecording(), false)
  const headers = await traceProduce('memory.latest', consumeCtx, (_span, ctx) => injectContext(ctx))
  assert.equal(trace.getSpanContext(extractContext(headers))?.traceId, upstream.traceId)
  assert.equal(context.active(), ROOT_CONTEXT)
  await tracing.shutdown()
})

test('OTEL_EXPORTER_OTLP_ENDPOINT exports spans over OTLP/HTTP', async (t) => {
  const requests: { method?: string; url?: string; type?: string; body: Buffer }[] = []
  const collector = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      requests.push({
        method: request.method,
        url: request.url,
        type: request.headers['content-type'],
        body: Buffer.concat(chunks)
      })
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve))
  t.after(() => collector.close())
  const { port } = collector.address() as AddressInfo
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = `http://127.0.0.1:${port}`
  t.after(() => delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT)

  const tracing = startTracing({ serviceName: 'telemetry-otlp-test' })
  assert.equal(tracing.enabled, true)
  endSpan(startConsumeSpan(origin, upstreamHeaders()))
  await tracing.shutdown()

  assert.equal(requests.length, 1)
  const [request] = requests
  assert.equal(request?.method, 'POST')
  assert.equal(request?.url, '/v1/traces')
  assert.match(request?.type ?? '', /^application\/json/)
  const body = request?.body.toString() ?? ''
  assert.ok(body.includes(upstream.traceId), 'the exported span carries the upstream trace id')
  assert.ok(body.includes('telemetry-otlp-test'))
})
