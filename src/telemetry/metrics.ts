import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Attributes, Counter, Histogram, Meter, ObservableResult } from '@opentelemetry/api'
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus'
import { resourceFromAttributes } from '@opentelemetry/resources'
import type { MetricData } from '@opentelemetry/sdk-metrics'
import { DataPointType, MeterProvider } from '@opentelemetry/sdk-metrics'
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions'
import { FatalError, SfmError } from '../errors.ts'
import type { DropReason } from '../streams/envelope.ts'
import { HotHistogram } from './hot-histogram.ts'

/** Every metric the framework exports. Dashboards and alerts may only reference these names. */
export const Metric = {
  CONSUMER_LAG: 'sfm_consumer_lag',
  MESSAGES_CONSUMED: 'sfm_messages_consumed_total',
  PROCESSING_SECONDS: 'sfm_processing_seconds',
  BATCH_SIZE: 'sfm_batch_size',
  BATCH_BYTES: 'sfm_batch_bytes',
  SINK_WRITE_SECONDS: 'sfm_sink_write_seconds',
  SINK_RETRIES: 'sfm_sink_retries_total',
  SINK_HELD_SECONDS: 'sfm_sink_held_seconds',
  DLQ: 'sfm_dlq_total',
  DROPPED: 'sfm_dropped_total',
  COMMIT_SECONDS: 'sfm_commit_seconds',
  COMMITS: 'sfm_commits_total',
  COMMITTED_OFFSET: 'sfm_committed_offset',
  PRODUCER_LATENCY_SECONDS: 'sfm_producer_latency_seconds',
  INFLIGHT_MESSAGES: 'sfm_inflight_messages',
  INFLIGHT_BYTES: 'sfm_inflight_bytes',
  POSTGRES_ROWS: 'sfm_postgres_rows_total',
  POSTGRES_BATCH_SECONDS: 'sfm_postgres_batch_seconds',
  EMBED_SECONDS: 'sfm_embed_seconds',
  EMBEDDED_TEXTS: 'sfm_embedded_texts_total',
  VECTOR_UPSERTS: 'sfm_vector_upserts_total',
  VECTOR_POINTS_PER_REQUEST: 'sfm_vector_points_per_request',
  PARITY_DIFFERENCES: 'sfm_parity_differences'
} as const
export type MetricName = (typeof Metric)[keyof typeof Metric]
export const METRIC_NAMES: readonly MetricName[] = Object.values(Metric)

/**
 * Histograms also export `<name>_bucket`, `<name>_sum` and `<name>_count` series; a dashboard may reference those.
 */
export const HISTOGRAM_NAMES: readonly MetricName[] = [
  Metric.PROCESSING_SECONDS,
  Metric.BATCH_SIZE,
  Metric.BATCH_BYTES,
  Metric.SINK_WRITE_SECONDS,
  Metric.COMMIT_SECONDS,
  Metric.PRODUCER_LATENCY_SECONDS,
  Metric.POSTGRES_BATCH_SECONDS,
  Metric.EMBED_SECONDS,
  Metric.VECTOR_POINTS_PER_REQUEST
]

export const CommitOutcomes = { OK: 'ok', ERROR: 'error' } as const
export type CommitOutcome = (typeof CommitOutcomes)[keyof typeof CommitOutcomes]

export const VectorOps = { UPSERT: 'upsert', DELETE: 'delete' } as const
export type VectorOp = (typeof VectorOps)[keyof typeof VectorOps]

export const RowOutcomes = { APPLIED: 'applied', FENCED: 'fenced', DUPLICATE: 'duplicate' } as const
export type RowOutcome = (typeof RowOutcomes)[keyof typeof RowOutcomes]

/** Latencies from a millisecond (a local commit) to a minute (a sink retrying through an outage). */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const SIZE_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]
const POINTS_BUCKETS = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
const BYTES_BUCKETS = [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]

export interface MetricsOptions {
  /** Added as the `topology` label to every series. */
  topology: string
  serviceName?: string
  /** Serve `GET /metrics` on this port (0 picks a free one). No server when omitted. */
  port?: number
  /** Interface to listen on; loopback by default so metrics are not exposed beyond the host unless asked. */
  host?: string
}

const defaults = { host: '127.0.0.1', serviceName: 'sfm-streams' } as const satisfies Partial<MetricsOptions>

export interface SinkWriteSample {
  /** Messages in the batch. */
  messages: number
  /** Wire bytes of the batch's messages. */
  bytes: number
  seconds: number
}

export interface Inflight {
  messages: number
  bytes: number
}

/**
 * The runtime's metrics: OpenTelemetry instruments on a private MeterProvider (no global state, so several
 * topologies or tests can each own one), read by a Prometheus pull exporter. Label values are bounded: topics,
 * partitions, branches and stages come from the topology; never offsets, keys or ids.
 */
export class Metrics {
  readonly topology: string
  readonly #provider: MeterProvider
  readonly #exporter: PrometheusExporter
  readonly #serializer = new PrometheusSerializer(undefined, false, undefined, false, true)
  readonly #base: Attributes
  #server: Server | undefined
  #lag: ReadonlyMap<string, readonly bigint[]> = new Map()
  readonly #committed = new Map<string, { topic: string; partition: number; offset: bigint }>()
  #inflight: (() => Inflight) | undefined
  #parity: ReadonlyMap<string, number> = new Map()
  #held: (() => ReadonlyMap<string, number>) | undefined

  /** Per topic, records received: counted here, read by an observable counter when scraped (called per record). */
  readonly #consumed = new Map<string, { count: number }>()
  readonly #processing: HotHistogram
  readonly #batchSize: Histogram
  readonly #batchBytes: Histogram
  readonly #sinkWrite: Histogram
  readonly #sinkRetries: Counter
  readonly #dlq: Counter
  readonly #dropped: Counter
  readonly #commitSeconds: Histogram
  readonly #commits: Counter
  readonly #producerLatency: Histogram
  readonly #postgresRows: Counter
  readonly #postgresBatch: Histogram
  readonly #embedSeconds: Histogram
  readonly #embeddedTexts: Counter
  readonly #vectorUpserts: Counter
  readonly #vectorPoints: Histogram

  constructor(options: Omit<MetricsOptions, 'port' | 'host'>) {
    if (!options.topology) throw new FatalError('metrics: topology is required')
    this.topology = options.topology
    this.#base = { topology: options.topology }
    // The exporter is only a MetricReader here: it never listens itself, because it cannot bind port 0 (it treats
    // 0 as "unset" and falls back to 9464) nor report the port it bound. We serve its request handler instead.
    this.#processing = new HotHistogram({
      name: Metric.PROCESSING_SECONDS,
      description: 'From receipt of a record until every sink acknowledged it',
      unit: 's',
      boundaries: SECONDS_BUCKETS,
      attributes: this.#base
    })
    this.#exporter = new PrometheusExporter({
      preventServerStart: true,
      withoutScopeInfo: true,
      metricProducers: [this.#processing]
    })
    this.#provider = new MeterProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName ?? defaults.serviceName }),
      readers: [this.#exporter]
    })
    const meter = this.#provider.getMeter('sfm-streams')
    const seconds = (name: string, description: string) =>
      meter.createHistogram(name, { description, unit: 's', advice: { explicitBucketBoundaries: SECONDS_BUCKETS } })

    meter
      .createObservableCounter(Metric.MESSAGES_CONSUMED, { description: 'Records received from Kafka' })
      .addCallback((result) => {
        for (const [topic, { count }] of this.#consumed) result.observe(count, { ...this.#base, topic })
      })
    this.#batchSize = meter.createHistogram(Metric.BATCH_SIZE, {
      description: 'Messages per sink write',
      advice: { explicitBucketBoundaries: SIZE_BUCKETS }
    })
    this.#batchBytes = meter.createHistogram(Metric.BATCH_BYTES, {
      description: 'Wire bytes per sink write',
      unit: 'By',
      advice: { explicitBucketBoundaries: BYTES_BUCKETS }
    })
    this.#sinkWrite = seconds(Metric.SINK_WRITE_SECONDS, 'Duration of one sink batch write attempt')
    this.#sinkRetries = meter.createCounter(Metric.SINK_RETRIES, { description: 'Sink batch writes retried' })
    this.#dlq = meter.createCounter(Metric.DLQ, { description: 'Records written to the dead-letter topic' })
    this.#dropped = meter.createCounter(Metric.DROPPED, { description: 'Records dropped on purpose' })
    this.#commitSeconds = seconds(Metric.COMMIT_SECONDS, 'Duration of an offset commit')
    this.#commits = meter.createCounter(Metric.COMMITS, { description: 'Offset commits by outcome' })
    this.#producerLatency = seconds(Metric.PRODUCER_LATENCY_SECONDS, 'Duration of a produce request')
    this.#postgresRows = meter.createCounter(Metric.POSTGRES_ROWS, { description: 'PostgreSQL rows by outcome' })
    this.#postgresBatch = seconds(Metric.POSTGRES_BATCH_SECONDS, 'Duration of a PostgreSQL batch transaction')
    this.#embedSeconds = seconds(Metric.EMBED_SECONDS, 'Duration of one embedder call')
    this.#embeddedTexts = meter.createCounter(Metric.EMBEDDED_TEXTS, { description: 'Texts embedded' })
    this.#vectorUpserts = meter.createCounter(Metric.VECTOR_UPSERTS, {
      description: 'Points written to a vector store, by operation (upsert, delete)'
    })
    this.#vectorPoints = meter.createHistogram(Metric.VECTOR_POINTS_PER_REQUEST, {
      description: 'Points per vector store write request (Qdrant) or statement (pgvector)',
      advice: { explicitBucketBoundaries: POINTS_BUCKETS }
    })
    this.#observe(meter)
  }

  #observe(meter: Meter): void {
    meter
      .createObservableGauge(Metric.CONSUMER_LAG, { description: 'Messages between the committed and latest offset' })
      .addCallback((result) => {
        for (const [topic, partitions] of this.#lag) {
          partitions.forEach((lag, partition) => {
            // -1n: partition not assigned to this consumer; -2n: filtered out of the lag request.
            if (lag >= 0n) result.observe(Number(lag), this.#partitionAttrs(topic, partition))
          })
        }
      })
    meter
      .createObservableGauge(Metric.COMMITTED_OFFSET, { description: 'Last offset committed, per partition' })
      .addCallback((result) => {
        for (const { topic, partition, offset } of this.#committed.values()) {
          result.observe(Number(offset), this.#partitionAttrs(topic, partition))
        }
      })
    const inflight = (pick: (value: Inflight) => number) => (result: ObservableResult) => {
      if (this.#inflight !== undefined) result.observe(pick(this.#inflight()), this.#base)
    }
    meter
      .createObservableGauge(Metric.INFLIGHT_MESSAGES, { description: 'Records received and not yet settled' })
      .addCallback(inflight((value) => value.messages))
    meter
      .createObservableGauge(Metric.INFLIGHT_BYTES, {
        description: 'Wire bytes of records not yet settled',
        unit: 'By'
      })
      .addCallback(inflight((value) => value.bytes))
    meter
      .createObservableGauge(Metric.PARITY_DIFFERENCES, {
        description: 'Differences between the legacy store and the memories table at the last parity run, by class'
      })
      .addCallback((result) => {
        for (const [name, count] of this.#parity) result.observe(count, { ...this.#base, class: name })
      })
    meter
      .createObservableGauge(Metric.SINK_HELD_SECONDS, {
        description: 'How long a sink branch has retried the same error without settling an item (absent: writing)',
        unit: 's'
      })
      .addCallback((result) => {
        for (const [branch, seconds] of this.#held?.() ?? []) result.observe(seconds, { ...this.#base, branch })
      })
  }

  #partitionAttrs(topic: string, partition: number): Attributes {
    return { ...this.#base, topic, partition: String(partition) }
  }

  /** Serves the Prometheus exposition at `GET /metrics`; resolves with the bound address. */
  async listen(port: number, host: string = defaults.host): Promise<AddressInfo> {
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new FatalError(`metrics: port must be an integer between 0 and 65535, got ${port}`)
    }
    if (this.#server !== undefined) throw new FatalError('metrics: already listening')
    const server = createServer((request, response) => {
      const path = request.url?.split('?', 1)[0]
      if (request.method === 'GET' && path === '/metrics') {
        this.#exporter.getMetricsRequestHandler(request, response)
        return
      }
      response.statusCode = 404
      response.end()
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) =>
        reject(new FatalError(`metrics: cannot listen on ${host}:${port}`, { cause: error, details: { host, port } }))
      )
      server.listen(port, host, () => resolve())
    })
    this.#server = server
    return server.address() as AddressInfo
  }

  /** The address `/metrics` is served on, if listening. */
  get address(): AddressInfo | undefined {
    return (this.#server?.address() ?? undefined) as AddressInfo | undefined
  }

  consumed(topic: string, count = 1): void {
    if (!(count >= 0)) return
    const counter = this.#consumed.get(topic)
    if (counter === undefined) this.#consumed.set(topic, { count })
    else counter.count += count
  }

  /** Receipt → every sink acknowledged (or the DLQ holds it), for one record. */
  observeProcessing(seconds: number): void {
    this.#processing.record(seconds)
  }

  /** One sink batch write attempt: its size, bytes and duration. */
  sinkWrite(branch: string, sample: SinkWriteSample): void {
    const attributes = { ...this.#base, branch }
    this.#batchSize.record(sample.messages, attributes)
    this.#batchBytes.record(sample.bytes, attributes)
    this.#sinkWrite.record(sample.seconds, attributes)
  }

  sinkRetry(branch: string): void {
    this.#sinkRetries.add(1, { ...this.#base, branch })
  }

  /** A record dead-lettered by `stage`; the label is the error's class (see `errorClass`), never its message. */
  dlq(stage: string, error: unknown): void {
    this.#dlq.add(1, { ...this.#base, stage, error_class: errorClass(error) })
  }

  dropped(reason: DropReason, count = 1): void {
    this.#dropped.add(count, { ...this.#base, reason })
  }

  commit(outcome: CommitOutcome, seconds: number): void {
    this.#commits.add(1, { ...this.#base, outcome })
    this.#commitSeconds.record(seconds, { ...this.#base, outcome })
  }

  /** The offset last committed for a partition (the next offset to read, as Kafka stores it). */
  committedOffset(topic: string, partition: number, offset: bigint): void {
    this.#committed.set(`${topic}:${partition}`, { topic, partition, offset })
  }

  /** Stop reporting a partition's gauges (it was revoked). */
  forgetPartition(topic: string, partition: number): void {
    this.#committed.delete(`${topic}:${partition}`)
  }

  /** The latest `consumer:lag` event of @platformatic/kafka: topic → lag per partition index. */
  setLag(lag: ReadonlyMap<string, readonly bigint[]>): void {
    this.#lag = lag
  }

  /** The counts of the last parity comparison (`npm run parity -- --watch`), class → differences. */
  setParity(counts: Readonly<Record<string, number>>): void {
    this.#parity = new Map(Object.entries(counts))
  }

  /** Read when scraped. */
  setInflight(getter: () => Inflight): void {
    this.#inflight = getter
  }

  /** Read when scraped: branch → seconds it has retried its current error (Runtime.heldSeconds). */
  setHeld(getter: () => ReadonlyMap<string, number>): void {
    this.#held = getter
  }

  produced(topic: string, seconds: number): void {
    this.#producerLatency.record(seconds, { ...this.#base, topic })
  }

  postgresRows(outcome: RowOutcome, count: number): void {
    if (count > 0) this.#postgresRows.add(count, { ...this.#base, outcome })
  }

  observePostgresBatch(seconds: number): void {
    this.#postgresBatch.record(seconds, this.#base)
  }

  /** One embedder call: texts embedded and its duration. */
  embedded(embedder: string, texts: number, seconds: number): void {
    const attributes = { ...this.#base, embedder }
    this.#embedSeconds.record(seconds, attributes)
    if (texts > 0) this.#embeddedTexts.add(texts, attributes)
  }

  vectorWrites(store: string, op: VectorOp, count: number): void {
    if (count > 0) this.#vectorUpserts.add(count, { ...this.#base, store, op })
  }

  vectorRequest(store: string, points: number): void {
    this.#vectorPoints.record(points, { ...this.#base, store })
  }

  /** The Prometheus text exposition, as `/metrics` serves it. */
  async text(): Promise<string> {
    const { resourceMetrics } = await this.#exporter.collect()
    return this.#serializer.serialize(resourceMetrics)
  }

  /**
   * Current value of a metric summed over the series whose labels include `labels`; for a histogram, the number
   * of observations. `undefined` when no series matches. Meant for tests and health checks.
   */
  async value(name: MetricName, labels: Readonly<Record<string, string>> = {}): Promise<number | undefined> {
    const { resourceMetrics } = await this.#exporter.collect()
    let metric: MetricData | undefined
    for (const scope of resourceMetrics.scopeMetrics) {
      metric ??= scope.metrics.find((m) => m.descriptor.name === name)
    }
    if (metric === undefined) return undefined
    const matches = (attributes: Attributes) =>
      Object.entries(labels).every(([key, value]) => attributes[key] === value)
    let total: number | undefined
    if (metric.dataPointType === DataPointType.HISTOGRAM) {
      for (const point of metric.dataPoints) if (matches(point.attributes)) total = (total ?? 0) + point.value.count
    } else if (metric.dataPointType === DataPointType.SUM || metric.dataPointType === DataPointType.GAUGE) {
      for (const point of metric.dataPoints) if (matches(point.attributes)) total = (total ?? 0) + point.value
    }
    return total
  }

  async close(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve())
        // A scraper's keep-alive connection would otherwise hold close() open until it times out.
        server.closeAllConnections()
      })
    }
    await this.#provider.shutdown()
  }
}

/** Builds the metrics of a topology and, when `port` is given, serves them. */
export async function createMetrics(options: MetricsOptions): Promise<Metrics> {
  const metrics = new Metrics(options)
  if (options.port !== undefined) {
    try {
      await metrics.listen(options.port, options.host ?? defaults.host)
    } catch (error) {
      await metrics.close()
      throw error
    }
  }
  return metrics
}

/**
 * A bounded label for an error: the framework's error code, a library's or the system's error code (e.g.
 * `PLT_KFK_…`, `ECONNRESET`, a SQLSTATE), else the class name. Never the message, which may hold data.
 */
export function errorClass(error: unknown): string {
  let label: unknown
  if (error instanceof SfmError) label = error.code
  else if (typeof error === 'object' && error !== null) {
    const { code, name } = error as { code?: unknown; name?: unknown }
    label = typeof code === 'string' ? code : name
  }
  return typeof label === 'string' && /^[A-Za-z0-9_.:-]{1,64}$/.test(label) ? label : 'unknown'
}
