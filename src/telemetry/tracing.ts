import type { Attributes, Context, Link, Span, SpanOptions, Tracer } from '@opentelemetry/api'
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import type { SpanExporter } from '@opentelemetry/sdk-trace-node'
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions'
import { errorMessage, FatalError } from '../errors.ts'
import type { Origin } from '../streams/envelope.ts'
import { extractContext } from './propagation.ts'

export const TRACER_NAME = 'sfm-streams'

/** The span names the runtime emits; dashboards and trace queries rely on them. */
export const SpanNames = {
  consume: (topic: string) => `consume ${topic}`,
  operator: (name: string) => `operator ${name}`,
  sinkWrite: (branch: string) => `sink ${branch} write`,
  commit: 'commit',
  produce: (topic: string) => `produce ${topic}`
} as const

/**
 * Messaging attribute names from the OpenTelemetry semantic conventions. They are still "incubating", and the
 * semantic-conventions package asks users to copy incubating names rather than import its unstable entry point.
 */
const ATTR_MESSAGING_SYSTEM = 'messaging.system'
const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name'
const ATTR_MESSAGING_DESTINATION_PARTITION_ID = 'messaging.destination.partition.id'
const ATTR_MESSAGING_KAFKA_OFFSET = 'messaging.kafka.offset'
const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type'
const ATTR_MESSAGING_CONSUMER_GROUP_NAME = 'messaging.consumer.group.name'
const ATTR_MESSAGING_BATCH_MESSAGE_COUNT = 'messaging.batch.message_count'

/** A batch write links to the spans of the messages in it; past this many, links cost more than they tell. */
const MAX_LINKS = 128

export interface TracingOptions {
  serviceName: string
  serviceVersion?: string
  /** Export spans here (tests pass an InMemorySpanExporter). Without it, OTLP/HTTP is used when configured. */
  exporter?: SpanExporter
}

export interface Tracing {
  /** False when neither an exporter nor an OTLP endpoint is configured: spans are non-recording no-ops. */
  readonly enabled: boolean
  /** Exports the spans ended so far. */
  forceFlush(): Promise<void>
  /** Flushes, stops exporting and unregisters the global tracer provider, context manager and propagator. */
  shutdown(): Promise<void>
}

let started = false

/**
 * Installs the global tracer provider, with a batch span processor in front of `exporter`, or of an OTLP/HTTP
 * exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (the exporter reads
 * those variables itself, as well as `OTEL_EXPORTER_OTLP_HEADERS`). With neither, nothing is installed: the API's
 * no-op tracer still carries parent span contexts through, so trace headers are forwarded downstream for free.
 */
export function startTracing(options: TracingOptions): Tracing {
  if (!options.serviceName) throw new FatalError('startTracing: serviceName is required')
  if (started) throw new FatalError('startTracing: tracing is already started in this process; shut it down first')
  const { OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT } = process.env
  const exporter =
    options.exporter ??
    (OTEL_EXPORTER_OTLP_ENDPOINT || OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? new OTLPTraceExporter() : undefined)
  if (exporter === undefined) {
    return { enabled: false, forceFlush: async () => {}, shutdown: async () => {} }
  }

  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: options.serviceName,
      ...(options.serviceVersion ? { [ATTR_SERVICE_VERSION]: options.serviceVersion } : {})
    }),
    spanProcessors: [new BatchSpanProcessor(exporter)]
  })
  provider.register()
  started = true
  let stopped = false
  return {
    enabled: true,
    forceFlush: () => provider.forceFlush(),
    async shutdown() {
      if (stopped) return
      stopped = true
      try {
        await provider.shutdown()
      } finally {
        trace.disable()
        context.disable()
        propagation.disable()
        started = false
      }
    }
  }
}

/**
 * The framework's tracer. Looked up on each call: the global provider can be replaced (tests start and stop
 * tracing), and a tracer cached from a disabled provider would keep writing to it.
 */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME)
}

/**
 * Starts the `consume <topic>` span of one received record, as a child of the context its headers carry, and
 * returns the context holding it (store it in the Delivery). End it with `endSpan` once the message is settled.
 */
export function startConsumeSpan(origin: Origin, headers: ReadonlyMap<string, Buffer>, groupId?: string): Context {
  const parent = extractContext(headers)
  // Off: the extracted context already holds the remote span context, which is all a no-op span would carry.
  if (!started) return parent
  const attributes: Attributes = {
    [ATTR_MESSAGING_SYSTEM]: 'kafka',
    [ATTR_MESSAGING_OPERATION_TYPE]: 'process',
    [ATTR_MESSAGING_DESTINATION_NAME]: origin.topic,
    [ATTR_MESSAGING_DESTINATION_PARTITION_ID]: String(origin.partition),
    [ATTR_MESSAGING_KAFKA_OFFSET]: Number(origin.offset)
  }
  if (groupId) attributes[ATTR_MESSAGING_CONSUMER_GROUP_NAME] = groupId
  const span = tracer().startSpan(SpanNames.consume(origin.topic), { kind: SpanKind.CONSUMER, attributes }, parent)
  return trace.setSpan(parent, span)
}

/** Ends the span held by `ctx` (a consume span), marking it failed when `error` is given. */
export function endSpan(ctx: Context, error?: unknown): void {
  const span = trace.getSpan(ctx)
  if (span === undefined) return
  if (error !== undefined) recordError(span, error)
  span.end()
}

export interface WithSpanOptions extends SpanOptions {
  /** Parent context; the active context when omitted. */
  parent?: Context
  /** Contexts of related spans (e.g. the messages of a batch); at most 128 are linked. */
  linkTo?: readonly Context[]
}

/**
 * Runs `fn` inside a new span (active for its duration), records a thrown error on it and ends it. `fn` receives
 * the span and its context, e.g. to inject the context into the headers of a record it produces.
 */
export async function withSpan<T>(
  name: string,
  options: WithSpanOptions,
  fn: (span: Span, ctx: Context) => Promise<T> | T
): Promise<T> {
  const { parent = context.active(), linkTo, ...spanOptions } = options
  if (linkTo !== undefined && linkTo.length > 0) spanOptions.links = toLinks(linkTo, spanOptions.links)
  const span = tracer().startSpan(name, spanOptions, parent)
  const ctx = trace.setSpan(parent, span)
  try {
    return await context.with(ctx, fn, undefined, span, ctx)
  } catch (error) {
    recordError(span, error)
    throw error
  } finally {
    span.end()
  }
}

/** `sink <branch> write`: one span per batch write, linked to the consume spans of the batch's messages. */
export function traceSinkWrite<T>(
  branch: string,
  messages: readonly Context[],
  fn: (span: Span, ctx: Context) => Promise<T> | T
): Promise<T> {
  return withSpan(
    SpanNames.sinkWrite(branch),
    {
      kind: SpanKind.CLIENT,
      parent: ROOT_CONTEXT,
      linkTo: messages,
      attributes: { 'sfm.branch': branch, [ATTR_MESSAGING_BATCH_MESSAGE_COUNT]: messages.length }
    },
    fn
  )
}

/** `produce <topic>`: a child of `parent`; inject the `ctx` passed to `fn` into the produced record's headers. */
export function traceProduce<T>(
  topic: string,
  parent: Context,
  fn: (span: Span, ctx: Context) => Promise<T> | T
): Promise<T> {
  return withSpan(
    SpanNames.produce(topic),
    {
      kind: SpanKind.PRODUCER,
      parent,
      attributes: {
        [ATTR_MESSAGING_SYSTEM]: 'kafka',
        [ATTR_MESSAGING_OPERATION_TYPE]: 'send',
        [ATTR_MESSAGING_DESTINATION_NAME]: topic
      }
    },
    fn
  )
}

/** `commit`: an offset commit, a root span (it covers many messages of many traces). */
export function traceCommit<T>(fn: (span: Span, ctx: Context) => Promise<T> | T): Promise<T> {
  return withSpan(SpanNames.commit, { kind: SpanKind.CLIENT, parent: ROOT_CONTEXT }, fn)
}

function toLinks(contexts: readonly Context[], existing: Link[] = []): Link[] {
  // Building links is wasted work when nothing records them.
  if (!started) return existing
  const links = [...existing]
  for (const ctx of contexts) {
    if (links.length >= MAX_LINKS) break
    const spanContext = trace.getSpanContext(ctx)
    if (spanContext !== undefined) links.push({ context: spanContext })
  }
  return links
}

function recordError(span: Span, error: unknown): void {
  if (error instanceof Error) span.recordException(error)
  span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) })
}
