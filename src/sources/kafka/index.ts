import { Consumer, type Message, type MessagesStream } from '@platformatic/kafka'
import type { OperatorFunction } from 'rxjs'
import { ErrorCodes, FatalError, RetriableError } from '../../errors.ts'
import { decodeRegistered } from '../../schemas/wire/decode.ts'
import type { Envelope } from '../../streams/envelope.ts'
import { type DecodeJsonOptions, decodeJson } from '../../streams/operators/decode-json.ts'
import type { CommitRequest, Source, SourceListener, SourceMessage, TopicPartition } from '../types.ts'
import { type ResolvedKafkaSourceOptions, resolveKafkaSourceOptions } from './options.ts'
import type { KafkaSourceOptions } from './types.ts'

export { defaultKafkaSourceOptions, parseBrokers, resolveKafkaSourceOptions } from './options.ts'
export type { KafkaSourceOptions } from './types.ts'

type RawMessage = Message<Buffer, Buffer, Buffer, Buffer>

const ABORTED = Symbol('aborted')

/**
 * A consumer-group source on @platformatic/kafka. Autocommit is off: the library's default commits each fetched
 * batch as it is pushed, before anything is processed. The runtime's commit coordinator commits instead, per
 * partition, only past messages every sink has made durable.
 */
export class KafkaSource implements Source {
  readonly kind = 'kafka'
  readonly options: KafkaSourceOptions
  #resolved: ResolvedKafkaSourceOptions | undefined
  #consumer: Consumer<Buffer, Buffer, Buffer, Buffer> | undefined
  #stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | undefined
  #iterator: AsyncIterator<RawMessage> | undefined

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

  async open(listener: SourceListener): Promise<void> {
    const o = resolveKafkaSourceOptions(this.options)
    this.#resolved = o
    const consumer = new Consumer<Buffer, Buffer, Buffer, Buffer>({
      clientId: o.clientId,
      bootstrapBrokers: o.brokers,
      groupId: o.groupId,
      autocommit: false,
      sessionTimeout: o.sessionTimeout,
      heartbeatInterval: o.heartbeatInterval,
      rebalanceTimeout: o.rebalanceTimeout,
      maxBytes: o.maxBytes,
      maxWaitTime: o.maxWaitTime,
      highWaterMark: o.highWaterMark
    })
    this.#consumer = consumer
    consumer.on('consumer:group:rebalance', () => listener.rebalancing())
    consumer.on('consumer:group:join', (payload) => {
      const assigned: TopicPartition[] = []
      for (const a of payload.assignments ?? [])
        for (const partition of a.partitions) assigned.push({ topic: a.topic, partition })
      listener.assigned(assigned)
    })
    if (listener.lag && o.lagIntervalMs > 0) {
      const report = listener.lag.bind(listener)
      consumer.on('consumer:lag', (offsets) => report(offsets))
      // Lag errors (e.g. during a rebalance) are transient; the next interval measures again.
      consumer.on('consumer:lag:error', () => {})
      consumer.startLagMonitoring({ topics: o.topics }, o.lagIntervalMs)
    }
    this.#stream = await consumer
      .consume({
        topics: o.topics,
        mode: 'committed',
        fallbackMode: o.drainOldEvents ? 'earliest' : 'latest',
        autocommit: false,
        highWaterMark: o.highWaterMark,
        maxBytes: o.maxBytes,
        maxWaitTime: o.maxWaitTime
      })
      .catch((error: unknown) => {
        throw explainOpenError(error, o)
      })
    this.#iterator = this.#stream[Symbol.asyncIterator]()
  }

  async next(signal: AbortSignal): Promise<SourceMessage | undefined> {
    const iterator = this.#iterator
    if (!iterator || signal.aborted) return undefined
    let onAbort: (() => void) | undefined
    const aborted = new Promise<typeof ABORTED>((resolve) => {
      onAbort = () => resolve(ABORTED)
      signal.addEventListener('abort', onAbort, { once: true })
    })
    try {
      const result = await Promise.race([iterator.next(), aborted])
      if (result === ABORTED || result.done) return undefined
      return toSourceMessage(result.value)
    } finally {
      if (onAbort) signal.removeEventListener('abort', onAbort)
    }
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
    const consumer = this.#consumer
    this.#consumer = undefined
    if (!consumer) return
    consumer.stopLagMonitoring()
    try {
      await this.#stream?.close()
    } finally {
      await consumer.close()
    }
  }
}

/** Turns the client's terse errors at start into ones that say what to do. */
function explainOpenError(error: unknown, o: ResolvedKafkaSourceOptions): unknown {
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
  const headers = new Map<string, Buffer>()
  for (const [key, value] of message.headers) headers.set(key.toString('utf8'), value)
  return {
    key: message.key ?? undefined,
    value: message.value ?? Buffer.alloc(0),
    headers,
    origin: {
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      leaderEpoch: message.leaderEpoch,
      timestamp: message.timestamp
    }
  }
}

/** A Kafka consumer-group source (see KafkaSource). */
export function kafkaSource(options: KafkaSourceOptions): KafkaSource {
  return new KafkaSource({ ...options })
}
