import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { SpanContext } from '@opentelemetry/api'
import { createTraceState, propagation, ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api'
import { extractContext, injectContext, PROPAGATION_HEADERS } from '../../src/telemetry/propagation.ts'

const spanContext: SpanContext = {
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  spanId: '00f067aa0ba902b7',
  traceFlags: TraceFlags.SAMPLED,
  traceState: createTraceState('vendor=abc')
}

test('a span context survives inject → Kafka headers → extract', () => {
  const headers = injectContext(trace.setSpanContext(ROOT_CONTEXT, spanContext), new Map([['k', Buffer.from('v')]]))
  assert.equal(headers.get('traceparent')?.toString(), '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
  assert.equal(headers.get('tracestate')?.toString(), 'vendor=abc')
  assert.equal(headers.get('k')?.toString(), 'v', 'other headers are kept')

  const extracted = trace.getSpanContext(extractContext(headers))
  assert.ok(extracted)
  assert.equal(extracted.traceId, spanContext.traceId)
  assert.equal(extracted.spanId, spanContext.spanId)
  assert.equal(extracted.traceFlags, TraceFlags.SAMPLED)
  assert.equal(extracted.isRemote, true)
  assert.equal(extracted.traceState?.get('vendor'), 'abc')
})

test('baggage travels with the trace context', () => {
  const baggage = propagation.createBaggage({ tenant: { value: 'acme' } })
  const ctx = propagation.setBaggage(trace.setSpanContext(ROOT_CONTEXT, spanContext), baggage)
  const headers = injectContext(ctx)
  assert.equal(headers.get('baggage')?.toString(), 'tenant=acme')
  assert.equal(propagation.getBaggage(extractContext(headers))?.getEntry('tenant')?.value, 'acme')
  assert.deepEqual([...PROPAGATION_HEADERS].sort(), ['baggage', 'traceparent', 'tracestate'])
})

test('headers without (valid) trace context extract to the root context', () => {
  assert.equal(extractContext(new Map()), ROOT_CONTEXT)
  const garbage = new Map([['traceparent', Buffer.from('00-zz-yy-01')]])
  assert.equal(trace.getSpanContext(extractContext(garbage)), undefined)
  const allZero = new Map([['traceparent', Buffer.from(`00-${'0'.repeat(32)}-${'0'.repeat(16)}-01`)]])
  assert.equal(trace.getSpanContext(extractContext(allZero)), undefined)
})

test('oversized header values are ignored before parsing', () => {
  const headers = injectContext(trace.setSpanContext(ROOT_CONTEXT, spanContext))
  headers.set('baggage', Buffer.from(`big=${'x'.repeat(9000)}`))
  const ctx = extractContext(headers)
  assert.equal(trace.getSpanContext(ctx)?.traceId, spanContext.traceId)
  assert.equal(propagation.getBaggage(ctx), undefined)
})

test('injecting a new span replaces stale trace headers; injecting no span forwards them', () => {
  const source = injectContext(trace.setSpanContext(ROOT_CONTEXT, spanContext))

  const forwarded = injectContext(ROOT_CONTEXT, new Map(source))
  assert.deepEqual(forwarded, source)

  const child: SpanContext = { traceId: spanContext.traceId, spanId: '1111111111111111', traceFlags: 1 }
  const replaced = injectContext(trace.setSpanContext(ROOT_CONTEXT, child), new Map(source))
  assert.equal(replaced.get('traceparent')?.toString(), `00-${spanContext.traceId}-1111111111111111-01`)
  assert.equal(replaced.has('tracestate'), false, 'the old tracestate does not outlive its traceparent')
})
