import { once } from 'node:events'
import { finished, type Readable } from 'node:stream'
import { Consumer, type Message, type MessagesStream } from '@platformatic/kafka'
import type { OperatorFunction } from 'rxjs'
import { ErrorCodes, FatalError, RetriableError } from '../../errors.ts'
import { explainKafkaError, probeKafka } from '../../kafka/connection.ts'
import { decodeRegistered } from '../../schemas/wire/decode.ts'
import { backoffDelay, sleep } from '../../streams/backoff.ts'
import type { Envelope, Origin } from '../../streams/envelope.ts'
import { type DecodeJsonOptions, decodeJson } from '../../streams/operators/decode-json.ts'
import {
  type CommitRequest,
  type ShadowGroup,
  type Source,
  type SourceListener,
  type SourceMessage,
  shadowGroupId,
  type TopicPartition
} from '../types.ts'
import { parseBoolean, type ResolvedKafkaSourceOptions, resolveKafkaSourceOptions } from './options.ts'
import type { KafkaSourceOptions } from './types.ts'

export { defaultKafkaSourceOptions, parseBrokers, resolveKafkaSourceOptions } from './options.ts'
export type { KafkaSourceOptions } from './types.ts'

type RawMessage = Message<Buffer, Buffer, Buffer, Buffer>
type Stream = MessagesStream<Buffer, Buffer, Buffer, Buffer>

/** Shared by every message without headers (most of them): one Map less per message. Never mutated. */
const NO_HEADERS: ReadonlyMap<string, Buffer> = new Map()
/** The value of a tombstone (no value). Zero bytes: nothing in it to mutate. */
const EMPTY = Buffer.alloc(0)

/**
 * A consumer-group source on @platformatic/kafka. Autocommit is off: the library's default commits each fetched
 * batch as it is pushed, before anything is processed. The runtime's commit coordinator commits instead, per
 * partition, only past messages every sink has made durable.
 *
 * Broker restarts, leader moves and coordinator changes: the library's messages stream gives up after the client's
 * `retries` (a fetch, or the metadata round before it, failing 4 times) and is destroyed; the consumer itself stays
 * usable. The source then holds (`next` waits, the runtime's in-flight work goes on) and reconnects with backoff:
 * a metadata round trip to the brokers, then a new stream, which rejoins the group and reads on from the committed
 * offsets (messages still in flight are delivered again; the runtime's offset tracking and the idempotent sinks are
 * built for that, as after a rebalance). It gives up only on what waiting cannot heal: refused authentication, an
 * untrusted certificate or denied access (see `explainKafkaError`), or a topic the brokers keep saying is gone.
 */
export class KafkaSource implements Source {
  readonly kind = 'kafka'
  readonly options: KafkaSourceOptions
  #resolved: ResolvedKafkaSourceOptions | undefined
  #consumer: Consumer<Buffer, Buffer, Buffer, Buffer> | undefined
  /** The stream being read; undefined while reconnecting. */
  #stream: Stream | undefined
  /** The source was closed: `next` returns undefined. */
  #ended = false
  /** What stopped the source for good (fatal): `next` throws it. */
  #failure: unknown
  #listener: SourceListener | undefined
  /** Aborted by `close`: ends a reconnection under way. */
  #closing = new AbortController()
  #reconnecting: Promise<void> | undefined
  /** When the brokers first answered that a topic does not exist, during the current outage. */
  #missingSince: number | undefined
  /** `next` calls waiting for the stream (data, end or error); the runtime has at most one. */
  #waiting: Array<() => void> = []

  #realGroupId: string | undefined

  constructor(options: KafkaSourceOptions) {
    this.options = options
  }

  get description(): string {
    const o = this.#resolved ?? { ...this.options, brokers: this.options.brokers ?? ['$KAFKA_BROKERS'] }
    return `kafka ${o.topics.join(',')} (group ${o.groupId}) at ${o.brokers.join(',')}`
  }

  /** The underlying consumer, for lag queries and tests. */
  get consumer(): Consumer<Buffer, Buffer, Buffer, Buffer> | undefined {
    return this.#consumer
  }

  /**
   * The first pipeline stage for this source's values: Confluent-framed and validated by schema id when `registry`
   * is set, plain JSON otherwise.
   */
  decoder(options: DecodeJsonOptions = {}): OperatorFunction<Envelope<Buffer>, Envelope<unknown>> {
    const registry = this.options.registry
    return registry === undefined ? decodeJson(options) : decodeRegistered({ ...options, registry })
  }

  /** Caps the stream buffer (the runtime passes its in-flight window so buffered + in-flight stays bounded). */
  limitBuffer(messages: number): void {
    const current = this.options.highWaterMark
    if (current === undefined || current > messages) this.options.highWaterMark = Math.max(1, messages)
  }

  /** Shadow mode: the derived group (src/sources/types.ts, `shadow`). Idempotent; before `open`. */
  shadow(): ShadowGroup {
    const real = this.#realGroupId ?? this.options.groupId
    this.#realGroupId = real
    this.options.groupId = shadowGroupId(real)
    const drainOldEvents =
      this.options.drainOldEvents ?? parseBoolean(process.env.DRAIN_OLD_EVENTS, 'DRAIN_OLD_EVENTS', true)
    return { groupId: this.options.groupId, realGroupId: real, topics: [...this.options.topics], drainOldEvents }
  }

  async open(listener: SourceListener): Promise<void> {
    const o = resolveKafkaSourceOptions(this.options)
    this.#resolved = o
    this.#listener = listener
    this.#closing = new AbortController()
    this.#ended = false
    this.#failure = undefined
    const consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      ...o.connection,
      clientId: o.clientId,
      bootstrapBrokers: o.brokers,
      groupId: o.groupId,
      autocommit: false,
      sessionTimeout: o.sessionTimeout,
      heartbeatInterval: o.heartbeatInterval,
      rebalanceTimeout: o.rebalanceTimeout,
      maxBytes: o.maxBytes,
      maxBytesPerPartition: o.maxBytesPerPartition,
      maxWaitTime: o.maxWaitTime,
      highWaterMark: o.highWaterMark
    })
    // Refused credentials or an untrusted certificate stop here at once, not after the client's nested retries.
    await probeKafka(consumer, o.topics, openContext(o)).catch(async (error: unknown) => {
      await consumer.close().catch(() => {})
      throw error
    })
    this.#consumer = consumer
    consumer.on('consumer:group:rebalance', () => listener.rebalancing())
    consumer.on('consumer:group:join', (payload) => {
      const assigned: TopicPartition[] = []
      for (const a of payload.assignments ?? [])
        for (const partition of a.partitions) assigned.push({ topic: a.topic, partition })
      listener.assigned(assigned)
    })
    // The consumer emits 'error' when a rejoin its heartbeat started fails (e.g. the coordinator moved and is not
    // ready yet); it then stops heartbeating. Unheard, the event would crash the process; heard, it is an outage
    // like a failed fetch: a new stream rejoins the group.
    consumer.on('error', (error: unknown) => {
      if (this.#stream) this.#lost(this.#stream, error)
    })
    if (listener.lag && o.lagIntervalMs > 0) {
      const report = listener.lag.bind(listener)
      consumer.on('consumer:lag', (offsets) => report(offsets))
      // Lag errors (e.g. during a rebalance) are transient; the next interval measures again.
      consumer.on('consumer:lag:error', () => {})
      consumer.startLagMonitoring({ topics: o.topics }, o.lagIntervalMs)
    }
    const stream = await this.#consume().catch((error: unknown) => {
      throw explainOpenError(error, o)
    })
    this.#stream = stream
    this.#watch(stream)
  }

  /** A new messages stream from the committed offsets (a first one joins the group, a later one rejoins it). */
  #consume(): Promise<Stream> {
    const o = this.#resolved!
    return this.#consumer!.consume({
      topics: o.topics,
      mode: 'committed',
      fallbackMode: o.drainOldEvents ? 'earliest' : 'latest',
      autocommit: false,
      highWaterMark: o.highWaterMark,
      maxBytes: o.maxBytes,
      maxBytesPerPartition: o.maxBytesPerPartition,
      maxWaitTime: o.maxWaitTime
    })
  }

  /**
   * Reads the stream in paused mode with `read()`, as its async iterator does, but without a promise (and an abort
   * race) per message. The 'readable' listener stays attached for the stream's life: it keeps the stream out of
   * flowing mode when @platformatic/kafka calls `resume()` after a rebalance (flowing with no 'data' listener would
   * drop messages), and its fetch loop only runs while `readableFlowing` is not null (messages-stream.js #fetch).
   */
  #watch(stream: Stream): void {
    stream.on('readable', () => this.#wake())
    // Like the async iterator: an error, or a close before the end (ERR_STREAM_PREMATURE_CLOSE), ends the stream.
    // (The upcast: its typed async iterator yields messages, which NodeJS.ReadableStream's types reserve for bytes.)
    finished(stream as Readable, { writable: false }, (error) => {
      if (stream !== this.#stream) return
      if (error) this.#lost(stream, error)
      else this.#ended = true
      this.#wake()
    })
  }

  /** The stream failed (or the consumer's group membership did): stop for good if fatal, else reconnect. */
  #lost(stream: Stream | undefined, error: unknown): void {
    if (this.#closing.signal.aborted || this.#failure !== undefined || this.#reconnecting) return
    const fatal = this.#fatalError(error)
    if (fatal) {
      this.#failure = fatal
      this.#wake()
      return
    }
    this.#reconnecting = this.#reconnect(stream, error).finally(() => {
      this.#reconnecting = undefined
      this.#wake()
    })
  }

  async #reconnect(lost: Stream | undefined, first: unknown): Promise<void> {
    const o = this.#resolved!
    const signal = this.#closing.signal
    const started = performance.now()
    this.#stream = undefined
    this.#missingSince = undefined
    // The lost stream must be closed before a new one: its close untracks the topics, so the new stream rejoins.
    if (lost) await closeStream(lost)
    const backoff = {
      initialDelayMs: o.reconnectBackoffMs,
      maxDelayMs: o.reconnectBackoffMaxMs,
      multiplier: 2,
      maxAttempts: Number.POSITIVE_INFINITY
    }
    let error = first
    for (let attempt = 1; ; attempt++) {
      const delay = backoffDelay(backoff, attempt)
      this.#listener?.reconnecting?.(error, attempt, delay)
      if (!(await sleep(delay, signal))) return
      try {
        await this.#checkTopics()
        const stream = await this.#consume()
        if (signal.aborted) {
          await stream.close().catch(() => {})
          return
        }
        this.#stream = stream
        this.#watch(stream)
        this.#listener?.reconnected?.(performance.now() - started, attempt)
        return
      } catch (caught) {
        if (signal.aborted) return
        error = caught
        const fatal = this.#fatalError(caught)
        if (fatal) {
          this.#failure = fatal
          return
        }
      }
    }
  }

  /**
   * One metadata round trip without the client's retries: throws while the brokers cannot be reached, and a
   * FatalError once they have said for `topicGoneMs` that a topic does not exist (a broker that just started may not
   * know every topic yet; one that keeps saying so means the topic was deleted).
   */
  async #checkTopics(): Promise<void> {
    const o = this.#resolved!
    try {
      await this.#consumer!.metadata({ topics: o.topics, forceUpdate: true, retries: 0 })
      this.#missingSince = undefined
    } catch (error) {
      const missing = unknownTopic(error)
      if (missing === undefined) throw error
      const now = performance.now()
      this.#missingSince ??= now
      if (now - this.#missingSince >= o.topicGoneMs) {
        throw new FatalError(
          `topic ${missing} is gone from ${o.brokers.join(',')} (the brokers have answered that it does not exist ` +
            `for ${Math.round((now - this.#missingSince) / 1000)} s): recreate it with \`npm run topics -- apply\`, ` +
            'then start again (the group resumes from its committed offsets)',
          { code: ErrorCodes.CONFIG, cause: error }
        )
      }
      throw error
    }
  }

  #fatalError(error: unknown): FatalError | undefined {
    if (error instanceof FatalError) return error
    return explainKafkaError(error, openContext(this.#resolved!))
  }

  #wake(): void {
    if (this.#waiting.length === 0) return
    const waiting = this.#waiting
    this.#waiting = []
    for (const wake of waiting) wake()
  }

  async next(signal: AbortSignal): Promise<SourceMessage | undefined> {
    for (;;) {
      if (signal.aborted || this.#consumer === undefined) return undefined
      const message = this.tryNext()
      if (message !== undefined) return message
      if (this.#failure !== undefined) throw this.#failure
      if (this.#ended) return undefined
      // Nothing buffered: read() has set needReadable, so the next push emits 'readable'; a reconnection wakes us
      // when it ends. Race the abort only here.
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal.removeEventListener('abort', wake)
          const i = this.#waiting.indexOf(wake)
          if (i >= 0) this.#waiting.splice(i, 1)
          resolve()
        }
        this.#waiting.push(wake)
        signal.addEventListener('abort', wake, { once: true })
      })
    }
  }

  tryNext(): SourceMessage | undefined {
    const stream = this.#stream
    if (!stream || stream.destroyed) return undefined
    const message = stream.read() as RawMessage | null
    return message === null ? undefined : toSourceMessage(message)
  }

  async commit(offsets: readonly CommitRequest[]): Promise<void> {
    if (!this.#consumer || offsets.length === 0) return
    await this.#consumer.commit({
      offsets: offsets.map((o) => ({
        topic: o.topic,
        partition: o.partition,
        offset: o.offset,
        leaderEpoch: o.leaderEpoch
      }))
    })
  }

  async close(): Promise<void> {
    this.#closing.abort()
    const consumer = this.#consumer
    this.#consumer = undefined
    this.#ended = true
    this.#wake()
    if (!consumer) return
    consumer.stopLagMonitoring()
    try {
      await this.#stream?.close()
    } finally {
      await consumer.close()
      await this.#reconnecting
    }
  }
}

/** Destroys a stream that has not ended yet and waits (a bounded time) for its 'close'. */
async function closeStream(stream: Stream): Promise<void> {
  if (stream.closed) return
  const closed = once(stream, 'close', { signal: AbortSignal.timeout(5_000) }).catch(() => {})
  if (!stream.destroyed) stream.destroy()
  await closed
}

/** The topic a metadata answer says does not exist (@platformatic/kafka: UserError "Unknown topic NAME."). */
function unknownTopic(error: unknown): string | undefined {
  const e = error as { code?: unknown; message?: unknown }
  if (e?.code !== 'PLT_KFK_USER' || typeof e.message !== 'string') return undefined
  return /^Unknown topic (.+?)\.?$/.exec(e.message)?.[1]
}

const openContext = (o: ResolvedKafkaSourceOptions) => ({
  brokers: o.brokers,
  doing: `consuming ${o.topics.join(', ')}`
})

/** Turns the client's terse errors at start into ones that say what to do. */
function explainOpenError(error: unknown, o: ResolvedKafkaSourceOptions): unknown {
  const fatal = explainKafkaError(error, openContext(o))
  if (fatal) return fatal
  const text = error instanceof Error ? `${error.message} ${collectMessages(error)}` : String(error)
  if (/unknown topic/i.test(text)) {
    return new FatalError(
      `topic ${o.topics.join(', ')} does not exist on ${o.brokers.join(',')}: create it with \`npm run topics -- apply\``,
      { code: ErrorCodes.CONFIG, cause: error }
    )
  }
  if (/ECONNREFUSED|connect/i.test(text)) {
    return new RetriableError(`cannot reach Kafka at ${o.brokers.join(',')}: ${text.trim()}`, { cause: error })
  }
  return error
}

function collectMessages(error: Error): string {
  const inner = (error as Error & { errors?: unknown[] }).errors
  return Array.isArray(inner)
    ? inner.map((e) => (e instanceof Error ? `${e.message} ${collectMessages(e)}` : '')).join(' ')
    : ''
}

function toSourceMessage(message: RawMessage): SourceMessage {
  return new KafkaSourceMessage(message)
}

/**
 * A consumed record as the runtime takes it. It is its own `origin` (the Origin fields live on it): one object per
 * message instead of two on the per-message path, and the Delivery keeps key, value and headers alive anyway.
 */
class KafkaSourceMessage implements SourceMessage, Origin {
  readonly key: Buffer | undefined
  readonly value: Buffer
  readonly headers: ReadonlyMap<string, Buffer>
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly leaderEpoch: number
  readonly timestamp: bigint

  constructor(message: RawMessage) {
    this.key = message.key ?? undefined
    this.value = message.value ?? EMPTY
    let headers = NO_HEADERS
    if (message.headers.size > 0) {
      const decoded = new Map<string, Buffer>()
      for (const [key, value] of message.headers) decoded.set(key.toString('utf8'), value)
      headers = decoded
    }
    this.headers = headers
    this.topic = message.topic
    this.partition = message.partition
    this.offset = message.offset
    this.leaderEpoch = message.leaderEpoch
    this.timestamp = message.timestamp
  }

  get origin(): Origin {
    return this
  }
}

/** A Kafka consumer-group source (see KafkaSource). */
export function kafkaSource(options: KafkaSourceOptions): KafkaSource {
  return new KafkaSource({ ...options })
}
