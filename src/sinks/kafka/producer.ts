import { compatibilityPartitioner, type MessageToProduce, ProduceAcks, Producer } from '@platformatic/kafka'
import { describeError, ErrorCodes, FatalError } from '../../errors.ts'
import {
  explainKafkaError,
  type KafkaConnectionOptions,
  kafkaConnectionOptions,
  parseBrokers
} from '../../kafka/connection.ts'
import type { HeaderValue, OutgoingMessage, SfmProducer } from '../../kafka/messages.ts'
import { embeddedLogPath, type LogTarget, LogTargets, logTarget } from '../../log/options.ts'
import { createEmbeddedProducer } from '../../log/producer.ts'
import { reportSent } from '../../telemetry/channels.ts'

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
  return error
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
    // (platformatic/kafka#121), which would break co-partitioning with producers in other languages.
    partitioner: compatibilityPartitioner,
    // An idempotent producer otherwise retries forever (retries ≤ 1 becomes MAX_SAFE_INTEGER in 2.12), even for
    // an unknown topic: a send would hang with no word. A few quick retries here, then the runtime's own backoff,
    // which logs and counts each failure.
    retries: 5,
    retryDelay: 200
  })
  return {
    async send(messages) {
      if (messages.length === 0) return
      const started = performance.now()
      await producer
        .send({
          messages: messages.map((m) => {
            const out: MessageToProduce<Buffer, Buffer, Buffer, Buffer> = { topic: m.topic }
            if (m.key !== undefined) out.key = toBuffer(m.key)
            if (m.value !== null) out.value = toBuffer(m.value)
            if (m.partition !== undefined) out.partition = m.partition
            if (m.headers) {
              const headers = new Map<Buffer, Buffer>()
              const entries = m.headers instanceof Map ? m.headers.entries() : Object.entries(m.headers)
              for (const [k, v] of entries) headers.set(Buffer.from(k), toBuffer(v))
              out.headers = headers
            }
            return out
          })
        })
        .catch((error: unknown) => {
          throw explainSendError(error, messages, brokers)
        })
      reportSent(messages, started, options.onSent)
    },
    async close() {
      await producer.close()
    }
  }
}
