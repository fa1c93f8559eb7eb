import { ErrorCodes, FatalError } from '../errors.ts'
import type { HeaderValue, OutgoingMessage, SfmProducer } from '../kafka/messages.ts'
import { reportSent } from '../telemetry/channels.ts'
import { type AppendRecord, type EmbeddedLog, embeddedLogExists, openEmbeddedLog } from './embedded-log.ts'
import { embeddedLogPath } from './options.ts'
import { knownTopicConfig } from './topics.ts'

export interface EmbeddedProducerOptions {
  /** The data folder (default `SFM_DATA_DIR` or `./.sfm-data`); the log is `<dataDir>/log.sqlite`. */
  dataDir?: string
  /** The log file itself, overriding `dataDir`. */
  path?: string
  /** Called after each append, per topic, with its latency (as the Kafka producer's `onSent`). */
  onSent?: (topic: string, count: number, seconds: number) => void
  env?: NodeJS.ProcessEnv
}

export interface EmbeddedProducer extends SfmProducer {
  readonly path: string
}

const toBuffer = (v: HeaderValue): Buffer => (typeof v === 'string' ? Buffer.from(v) : v)

function toRecord(m: OutgoingMessage): AppendRecord {
  let headers: Map<string, Buffer> | undefined
  if (m.headers) {
    headers = new Map()
    const entries = m.headers instanceof Map ? m.headers.entries() : Object.entries(m.headers)
    for (const [k, v] of entries) headers.set(k, toBuffer(v))
  }
  return {
    topic: m.topic,
    partition: m.partition,
    key: m.key === undefined ? undefined : toBuffer(m.key),
    value: m.value === null ? null : toBuffer(m.value),
    headers
  }
}

/**
 * The embedded log's producer, with the Kafka producer's shape: `send` resolves once the records are committed to
 * the SQLite file (synchronous=FULL: on disk), all of one `send` in one transaction — so a send is all-or-nothing,
 * which is stronger than a Kafka produce request across partitions. Keys pick partitions as Kafka's partitioner
 * does (see partitioner.ts).
 */
export function createEmbeddedProducer(options: EmbeddedProducerOptions = {}): EmbeddedProducer {
  const env = options.env ?? process.env
  const path = options.path ?? embeddedLogPath({ dataDir: options.dataDir }, env)
  let log: EmbeddedLog | undefined
  let closed = false
  const open = (messages: readonly OutgoingMessage[]): EmbeddedLog => {
    if (log) return log
    // Do not create a log file just to report that a mistyped topic does not exist in it.
    if (!embeddedLogExists(path) && !messages.some((m) => knownTopicConfig(m.topic, env))) {
      const topics = [...new Set(messages.map((m) => m.topic))].join(', ')
      throw new FatalError(
        `cannot produce to ${topics}: KAFKA_BROKERS is not set and there is no embedded log at ${path} with that ` +
          'topic (only the topics of src/kafka/topics.ts are created on first use)',
        { code: ErrorCodes.CONFIG }
      )
    }
    log = openEmbeddedLog({ path, env })
    return log
  }
  return {
    path,
    async send(messages) {
      if (closed) throw new FatalError(`embedded producer for ${path} is closed`, { code: ErrorCodes.INTERNAL })
      if (messages.length === 0) return
      const started = performance.now()
      open(messages).append(messages.map(toRecord))
      reportSent(messages, started, options.onSent)
    },
    async close() {
      closed = true
      log?.close()
      log = undefined
    }
  }
}
