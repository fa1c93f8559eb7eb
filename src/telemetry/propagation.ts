import type { Context, TextMapGetter, TextMapSetter } from '@opentelemetry/api'
import { isSpanContextValid, ROOT_CONTEXT, trace } from '@opentelemetry/api'
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core'

/**
 * W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage carried in Kafka record headers, as UTF-8
 * values under lower-case string keys (the OpenTelemetry messaging convention for Kafka).
 *
 * The propagator is our own instance rather than the global one, so that context flows through the pipeline even
 * when tracing is off: a message produced downstream keeps the traceparent of the message it came from.
 *
 * Header keys are strings on both sides: consumers deserialize header keys with `stringDeserializer` and producers
 * serialize them with `stringSerializer` (`serializers: { headerKey: stringSerializer }`). @platformatic/kafka's
 * default header-key serde is the identity on Buffers, and a Map keyed by Buffers cannot be looked up by name.
 */
const propagator = new CompositePropagator({
  propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()]
})

/** The header names this module reads and writes. */
export const PROPAGATION_HEADERS: readonly string[] = propagator.fields()

/**
 * Header values are producer-controlled. W3C caps baggage at 8192 bytes and tracestate at 512 characters, so
 * anything larger is not a valid header and is ignored before it is parsed.
 */
const MAX_HEADER_BYTES = 8192

const getter: TextMapGetter<ReadonlyMap<string, Buffer>> = {
  keys(carrier) {
    return [...carrier.keys()]
  },
  get(carrier, key) {
    const value = carrier.get(key)
    if (value === undefined || value.length > MAX_HEADER_BYTES) return undefined
    return value.toString('utf8')
  }
}

const setter: TextMapSetter<Map<string, Buffer>> = {
  set(carrier, key, value) {
    carrier.set(key, Buffer.from(value, 'utf8'))
  }
}

/** The remote context (span context and baggage) carried by a record's headers; `ROOT_CONTEXT` when there is none. */
export function extractContext(headers: ReadonlyMap<string, Buffer>, parent: Context = ROOT_CONTEXT): Context {
  return propagator.extract(parent, headers, getter)
}

/**
 * Writes `context`'s span context and baggage into `headers` and returns them. When `context` has no valid span,
 * headers already present (copied from a source record) are left as they are, so the upstream trace is forwarded.
 */
export function injectContext(context: Context, headers: Map<string, Buffer> = new Map()): Map<string, Buffer> {
  const spanContext = trace.getSpanContext(context)
  if (spanContext !== undefined && isSpanContextValid(spanContext)) {
    // A new span replaces the whole trace identity: a stale tracestate or baggage from the source record must not
    // survive next to the new traceparent (the propagators only write the fields they have values for).
    for (const field of PROPAGATION_HEADERS) headers.delete(field)
  }
  propagator.inject(context, headers, setter)
  return headers
}
