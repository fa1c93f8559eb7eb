import { Admin, ConfigResourceTypes, type MessageToProduce, ProduceAcks, Producer } from '@platformatic/kafka'
import { describeError, ErrorCodes, FatalError, kindOf, SfmError } from '../errors.ts'
import { embeddedLogPath, type LogTarget, LogTargets, logTarget } from '../log/options.ts'
import { createEmbeddedProducer } from '../log/producer.ts'
import { reportSent } from '../telemetry/channels.ts'
import { explainKafkaError, type KafkaConnectionOptions, kafkaConnectionOptions, parseBrokers } from './connection.ts'
import type { HeaderValue, OutgoingMessage, SfmProducer } from './messages.ts'
import { kafkaPartitioner } from './murmur2.ts'
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  describeProtocolError,
  headerBytesBound,
  isTooLarge,
  planRequests,
  RECORD_BATCH_OVERHEAD,
  RecordsTooLargeError,
  type RejectedRecord,
  recordBytesBound,
  TopicRecordLimits,
  tooLargeRecord
} from './record-limit.ts'

export type { HeaderValue, OutgoingMessage, SfmProducer }

export interface CreateProducerOptions {
  /** Default: `KAFKA_BROKERS`. */
  brokers?: string[]
  /** TLS and SASL settings. Default: from `KAFKA_SASL_*` / `KAFKA_TLS*` (src/kafka/connection.ts). */
  connection?: KafkaConnectionOptions
  /**
   * Kafka, or the embedded log (docs/EMBEDDED-LOG.md). Default: Kafka when `brokers` is given or `KAFKA_BROKERS`
   * is set, else the embedded log.
   */
  target?: LogTarget
  /** The embedded log's data folder (default `SFM_DATA_DIR` or `./.sfm-data`). */
  dataDir?: string
  clientId?: string
  /** Called after each acknowledged send, per topic, with the request's latency. */
  onSent?: (topic: string, count: number, seconds: number) => void
}

/**
 * A send to a topic that does not exist, refused credentials, an untrusted certificate or a denied ACL are
 * configuration errors: say what to change, rather than let the runtime retry them forever.
 */
function explainSendError(error: unknown, messages: readonly OutgoingMessage[], brokers: readonly string[]): unknown {
  const topics = [...new Set(messages.map((m) => m.topic))].join(', ')
  const fatal = explainKafkaError(error, { brokers, doing: `producing to ${topics}` })
  if (fatal) return fatal
  if (/unknown topic/i.test(describeError(error))) {
    return new FatalError(`cannot produce to ${topics}: unknown topic — create it with \`npm run topics -- apply\``, {
      code: ErrorCodes.CONFIG,
      cause: error
    })
  }
  // The library's own message ("Producing messages failed.") says nothing: name the broker's answer.
  const kafka = describeProtocolError(error)
  if (kafka)
    return new SfmError(kindOf(error), ErrorCodes.UNAVAILABLE, `producing to ${topics}: ${kafka}`, { cause: error })
  return error
}

type Produced = MessageToProduce<Buffer, Buffer, Buffer, Buffer>

/**
 * The library's messages for `messages` (keys, values and headers as bytes), each one's bytes in a record batch
 * (upper bound), and the bytes per topic. Exported for the produce-send benchmark.
 */
export function prepareMessages(messages: readonly OutgoingMessage[]): {
  out: Produced[]
  sizes: Int32Array
  perTopic: Map<string, number>
} {
  const out = new Array<Produced>(messages.length)
  const sizes = new Int32Array(messages.length)
  // Bytes per topic: a topic's records may all land in one partition, so under the limit per topic is the fast
  // path (one request, as before); over it, requests are planned per partition.
  const perTopic = new Map<string, number>()
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!
    const o: Produced = { topic: m.topic }
    let keyBytes = 0
    let valueBytes = 0
    if (m.key !== undefined) {
      o.key = toBuffer(m.key)
      keyBytes = o.key.length
    }
    if (m.value !== null) {
      o.value = toBuffer(m.value)
      valueBytes = o.value.length
    }
    if (m.partition !== undefined) o.partition = m.partition
    let size = recordBytesBound(keyBytes, valueBytes, undefined)
    if (m.headers) {
      const headers = new Map<Buffer, Buffer>()
      const entries = m.headers instanceof Map ? m.headers.entries() : Object.entries(m.headers)
      for (const [k, v] of entries) {
        const key = Buffer.from(k)
        const value = toBuffer(v)
        headers.set(key, value)
        size += headerBytesBound(key.length, value.length)
      }
      o.headers = headers
    }
    out[i] = o
    sizes[i] = size
    perTopic.set(m.topic, (perTopic.get(m.topic) ?? 0) + size)
  }
  return { out, sizes, perTopic }
}

/** Each topic's `max.message.bytes` (the effective value: the topic's own, else the broker's default). */
async function readRecordLimits(
  topics: readonly string[],
  brokers: string[],
  connection: KafkaConnectionOptions,
  clientId: string | undefined
): Promise<Map<string, number>> {
  const admin = new Admin({
    ...connection,
    clientId: `${clientId ?? 'sfm-streams-producer'}-limits`,
    bootstrapBrokers: brokers,
    retries: 1
  })
  try {
    const described = await admin.describeConfigs({
      resources: topics.map((t) => ({
        resourceType: ConfigResourceTypes.TOPIC,
        resourceName: t,
        configurationKeys: ['max.message.bytes']
      }))
    })
    const limits = new Map<string, number>()
    for (const resource of described) {
      const value = resource.configs.find((c) => c.name === 'max.message.bytes')?.value
      if (value) limits.set(resource.resourceName, Number(value))
    }
    return limits
  } finally {
    await admin.close().catch(() => {})
  }
}

/**
 * Per message, the target partition as the library will pick it (Kafka's partitioner on the key, modulo the topic's
 * partitions). A topic with unkeyed records (spread round-robin) or unknown partitions counts as one group.
 */
async function partitionGroups(
  producer: Producer<Buffer, Buffer, Buffer, Buffer>,
  topics: readonly string[],
  out: readonly Produced[]
): Promise<(index: number) => string> {
  let counts = new Map<string, number>()
  try {
    const metadata = await producer.metadata({ topics: [...topics] })
    counts = new Map([...metadata.topics].map(([name, t]) => [name, t.partitionsCount]))
  } catch {
    // Grouped by topic below: more requests than needed, never too large ones.
  }
  const wholeTopic = new Set(topics.filter((t) => !counts.has(t)))
  for (const o of out) if (o.partition === undefined && o.key === undefined) wholeTopic.add(o.topic)
  return (index) => {
    const o = out[index]!
    if (wholeTopic.has(o.topic)) return o.topic
    const partition = o.partition ?? kafkaPartitioner(o, o.key) % counts.get(o.topic)!
    return `${o.topic}\u0000${partition}`
  }
}

const toBuffer = (v: HeaderValue): Buffer => (typeof v === 'string' ? Buffer.from(v) : v)

/** Where a producer made with these options writes, for start banners: `kafka` or `embedded log at <path>`. */
export function producerTarget(options: Pick<CreateProducerOptions, 'brokers' | 'target' | 'dataDir'> = {}): string {
  return logTarget(options) === LogTargets.KAFKA
    ? 'kafka'
    : `embedded log at ${embeddedLogPath({ dataDir: options.dataDir })}`
}

/**
 * An idempotent producer with acks=all on @platformatic/kafka, keys/values/headers as bytes. Used by the Kafka
 * sink, the DLQ and `npm run produce`; one instance may serve several topics. With no brokers configured it is the
 * embedded log's producer instead (same interface; src/log/producer.ts).
 */
export function createProducer(options: CreateProducerOptions = {}): SfmProducer {
  if (logTarget(options) === LogTargets.EMBEDDED) {
    return createEmbeddedProducer({
      ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
      ...(options.onSent === undefined ? {} : { onSent: options.onSent })
    })
  }
  const brokers = options.brokers ?? parseBrokers(process.env.KAFKA_BROKERS)
  if (brokers.length === 0) {
    throw new FatalError('no Kafka brokers: set KAFKA_BROKERS=host:port[,host:port]', { code: ErrorCodes.CONFIG })
  }
  const connection = options.connection ?? kafkaConnectionOptions()
  const producer = new Producer<Buffer, Buffer, Buffer, Buffer>({
    ...connection,
    clientId: options.clientId ?? 'sfm-streams-producer',
    bootstrapBrokers: brokers,
    idempotent: true,
    acks: ProduceAcks.ALL,
    autocreateTopics: false,
    // Kafka's own partitioner (toPositive(murmur2(key)) % n), as the Java client, kafka-python and the embedded log
    // use: the library's default (murmur2 >>> 0) puts every key with a negative hash on another partition
    // (platformatic/kafka#121), which would break co-partitioning with producers in other languages. Ours rather
    // than the library's compatibilityPartitioner: same values without BigInt arithmetic (src/kafka/murmur2.ts).
    partitioner: kafkaPartitioner,
    // An idempotent producer otherwise retries forever (retries ≤ 1 becomes MAX_SAFE_INTEGER in 2.12), even for
    // an unknown topic: a send would hang with no word. A few quick retries here, then the runtime's own backoff,
    // which logs and counts each failure.
    retries: 5,
    retryDelay: 200
  })
  const limits = new TopicRecordLimits((topics) => readRecordLimits(topics, brokers, connection, options.clientId))

  /** One produce request; a refusal other than "too large" is explained and thrown. */
  const request = async (messages: readonly OutgoingMessage[], out: readonly Produced[]) => {
    await producer.send({ messages: out as Produced[] }).catch((error: unknown) => {
      throw isTooLarge(error) ? error : explainSendError(error, messages, brokers)
    })
  }

  /**
   * Sends `indices` in one request; if the broker says it is too large, splits it in halves until the records that
   * are too large stand alone, which are rejected.
   */
  const sendSplitting = async (
    messages: readonly OutgoingMessage[],
    out: readonly Produced[],
    sizes: Int32Array,
    indices: readonly number[],
    rejected: RejectedRecord[]
  ): Promise<void> => {
    try {
      await request(
        indices.map((i) => messages[i]!),
        indices.map((i) => out[i]!)
      )
    } catch (error) {
      if (!isTooLarge(error)) throw error
      if (indices.length === 1) {
        const index = indices[0]!
        const topic = messages[index]!.topic
        rejected.push(tooLargeRecord(index, topic, sizes[index]!, await limits.get(topic), error))
        return
      }
      const half = indices.length >>> 1
      await sendSplitting(messages, out, sizes, indices.slice(0, half), rejected)
      await sendSplitting(messages, out, sizes, indices.slice(half), rejected)
    }
  }

  /** The slow path: requests planned per target partition under each topic's limit, sent one after the other. */
  const sendPlanned = async (
    messages: readonly OutgoingMessage[],
    out: readonly Produced[],
    sizes: Int32Array
  ): Promise<RejectedRecord[]> => {
    const topics = [...new Set(messages.map((m) => m.topic))]
    await limits.load(topics)
    const groups = await partitionGroups(producer, topics, out)
    const budgets = new Map(
      topics.map((t) => [t, (limits.cached(t) ?? DEFAULT_MAX_MESSAGE_BYTES) - RECORD_BATCH_OVERHEAD])
    )
    const rejected: RejectedRecord[] = []
    const plan = planRequests(sizes, groups, (i) => budgets.get(messages[i]!.topic)!)
    for (const indices of plan) await sendSplitting(messages, out, sizes, indices, rejected)
    return rejected
  }

  // A send split into several requests sends them one after the other: later sends wait, so records of one key
  // stay in order across concurrent sends.
  let splitting: Promise<unknown> | undefined
  const planned = async (messages: readonly OutgoingMessage[], out: readonly Produced[], sizes: Int32Array) => {
    const sending = sendPlanned(messages, out, sizes)
    const current = sending.catch(() => {})
    splitting = current
    try {
      return await sending
    } finally {
      if (splitting === current) splitting = undefined
    }
  }

  return {
    async send(messages) {
      if (messages.length === 0) return
      while (splitting) await splitting
      const started = performance.now()
      const { out, sizes, perTopic } = prepareMessages(messages)
      let fits = true
      for (const [topic, bytes] of perTopic) {
        const limit = limits.cached(topic) ?? (await limits.get(topic))
        if (bytes + RECORD_BATCH_OVERHEAD > limit) fits = false
      }
      // Reading a limit awaited: a split send may have started meanwhile.
      while (splitting) await splitting
      let rejected: RejectedRecord[] = []
      if (fits) {
        try {
          await request(messages, out)
        } catch (error) {
          if (!isTooLarge(error)) throw error
          // The limit was lowered since it was read, or the estimate missed: read it again and plan.
          for (const topic of perTopic.keys()) limits.forget(topic)
          rejected = await planned(messages, out, sizes)
        }
      } else {
        rejected = await planned(messages, out, sizes)
      }
      if (rejected.length === 0) {
        reportSent(messages, started, options.onSent)
        return
      }
      const skip = new Set(rejected.map((r) => r.index))
      reportSent(
        messages.filter((_, i) => !skip.has(i)),
        started,
        options.onSent
      )
      throw new RecordsTooLargeError(rejected)
    },
    recordLimit(topic) {
      return limits.get(topic)
    },
    async close() {
      await producer.close()
    }
  }
}
