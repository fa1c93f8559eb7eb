import { createReadStream } from 'node:fs'
import { Admin } from '@platformatic/kafka'
import { describeError, ErrorCodes, FatalError, kindOf, SfmError } from '../errors.ts'
import { LogTargets, logTarget } from '../log/options.ts'
import {
  explainKafkaError,
  type KafkaConnectionOptions,
  kafkaConnectionOptions,
  parseBrokers,
  probeKafka
} from './connection.ts'
import { createProducer, type OutgoingMessage, type SfmProducer } from './producer.ts'
import { RecordsTooLargeError } from './record-limit.ts'

/**
 * Loads JSON Lines into a topic with the framework's idempotent acks=all producer: one record per line, the line's
 * bytes as the value (not re-serialized), the key from a top-level field. Bad lines are rejected one by one (never
 * sent) and the good ones still go. Used by `npm run produce`, tests and benchmarks.
 */
export interface ProduceOptions {
  topic: string
  /** Top-level field whose value (string or number) becomes the record key. Lines without it are rejected. */
  keyField?: string
  /** Added to every record. Keys are strings, values UTF-8. */
  headers?: Readonly<Record<string, string>>
  /** Lines per send request. */
  batchSize?: number
  /**
   * A send request is closed once its keys and values reach this many bytes. The producer splits it further under
   * the topic's max.message.bytes; a line too large for the topic on its own is rejected (`onReject`).
   */
  batchBytes?: number
  /**
   * Send requests awaiting acknowledgement at once (reading and encoding overlap with the broker's work). The
   * idempotent producer still writes one request at a time per broker connection (it forces maxInflights=1), so
   * per-key order holds; only when a request fails and is retried could a later one overtake it. Use 1 when strict
   * per-key order under broker failures matters more than speed.
   */
  maxInFlight?: number
  /** Longer lines are rejected without being parsed. */
  maxLineBytes?: number
  /**
   * Reuse a producer (not closed here). Default: a new one from `brokers` / `KAFKA_BROKERS` — or, when neither is
   * set, on the embedded log under `dataDir` — closed at the end.
   */
  producer?: SfmProducer
  brokers?: string[]
  /** TLS and SASL settings. Default: from `KAFKA_SASL_*` / `KAFKA_TLS*` (src/kafka/connection.ts). */
  connection?: KafkaConnectionOptions
  /** The embedded log's data folder when no brokers are configured (default `SFM_DATA_DIR` or `./.sfm-data`). */
  dataDir?: string
  clientId?: string
  /**
   * Check that the topic exists before sending (default true). @platformatic/kafka's idempotent producer retries
   * "Unknown topic" forever (it sets retries=MAX_SAFE_INTEGER unless retries > 1), so without the check a typo in
   * the topic name hangs instead of failing.
   */
  checkTopic?: boolean
  /** Called for every rejected line, as soon as it is seen. */
  onReject?: (rejection: LineRejection) => void
}

export interface ProduceFileOptions extends ProduceOptions {
  /** A path, or `-` for stdin. */
  file: string
}

export const defaultProduceOptions = {
  batchSize: 500,
  batchBytes: 1024 * 1024,
  maxInFlight: 4,
  maxLineBytes: 1024 * 1024,
  clientId: 'sfm-produce'
} satisfies Partial<ProduceOptions>

export interface LineRejection {
  /** 1-based, counting blank lines too, as an editor does. */
  readonly line: number
  readonly reason: string
}

export interface ProduceReport {
  readonly topic: string
  readonly sent: number
  readonly rejected: number
  readonly blank: number
  /** Bytes of keys and values sent. */
  readonly bytes: number
  /** Send requests made. */
  readonly sends: number
  readonly seconds: number
  /** Messages per second, from the first line read to the last acknowledgement. */
  readonly rate: number
  /** Per send request (one batch), from send to acks=all acknowledgement. */
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number }
  /** The first 100 rejections (all are passed to `onReject`). */
  readonly rejections: readonly LineRejection[]
}

/** One line of input: its bytes, or only its length when it was too long to keep. */
export type InputLine =
  | { readonly line: number; readonly bytes: Buffer }
  | { readonly line: number; readonly tooLong: number }

const MAX_KEPT_REJECTIONS = 100
const CR = 0x0d
const LF = 0x0a

/**
 * Splits a byte stream on `\n` (dropping a `\r` before it) without ever holding more than `maxLineBytes` of one line:
 * the bytes of an over-long line are counted and dropped until its end, so a file without newlines cannot exhaust
 * memory.
 */
export async function* readLines(
  source: AsyncIterable<Buffer | string>,
  maxLineBytes: number = defaultProduceOptions.maxLineBytes
): AsyncGenerator<InputLine> {
  let parts: Buffer[] = []
  let size = 0
  let overflow = false
  let line = 0
  const finish = (): InputLine => {
    line++
    let bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, overflow ? 0 : size)
    parts = []
    const total = size
    size = 0
    if (overflow) {
      overflow = false
      return { line, tooLong: total }
    }
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, bytes.length - 1)
    return bytes.length > maxLineBytes ? { line, tooLong: bytes.length } : { line, bytes }
  }
  for await (const chunk of source) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    let start = 0
    while (start < buffer.length) {
      const newline = buffer.indexOf(LF, start)
      const end = newline === -1 ? buffer.length : newline
      if (!overflow) {
        // +1: a trailing \r is not part of the line.
        if (size + (end - start) > maxLineBytes + 1) {
          overflow = true
          parts = []
        } else if (end > start) {
          parts.push(buffer.subarray(start, end))
        }
      }
      size += end - start
      if (newline === -1) break
      yield finish()
      start = newline + 1
    }
  }
  if (size > 0) yield finish()
}

const decoder = new TextDecoder('utf-8', { fatal: true })

/** Why a line cannot be sent, or its key (`undefined` when no key field is asked for). */
function checkLine(
  bytes: Buffer,
  keyField: string | undefined
): { ok: true; key: string | undefined } | { ok: false; reason: string } {
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    return { ok: false, reason: 'not valid UTF-8' }
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    // V8's message quotes the input; report only where it broke (no message bodies in logs).
    const where = /position \d+/.exec(String((error as Error).message))?.[0]
    return { ok: false, reason: `not valid JSON${where ? ` (at ${where})` : ''}` }
  }
  if (keyField === undefined) return { ok: true, key: undefined }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, reason: `not a JSON object, so no key field "${keyField}"` }
  }
  if (!Object.hasOwn(value, keyField)) return { ok: false, reason: `lacks the key field "${keyField}"` }
  const key = (value as Record<string, unknown>)[keyField]
  if (typeof key === 'string' && key.length > 0) return { ok: true, key }
  if (typeof key === 'number' && Number.isFinite(key)) return { ok: true, key: String(key) }
  return { ok: false, reason: `key field "${keyField}" is not a non-empty string or a number` }
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits

function validate(options: ProduceOptions) {
  if (!options.topic) throw new FatalError('produce: topic is required', { code: ErrorCodes.CONFIG })
  if (options.keyField === '') throw new FatalError('produce: key field must not be empty', { code: ErrorCodes.CONFIG })
  const resolved = { ...defaultProduceOptions, ...options }
  for (const name of ['batchSize', 'batchBytes', 'maxInFlight', 'maxLineBytes'] as const) {
    const value = resolved[name]
    if (!Number.isInteger(value) || value < 1) {
      throw new FatalError(`produce: ${name} must be a positive integer, got ${value}`, { code: ErrorCodes.CONFIG })
    }
  }
  return resolved
}

async function assertTopicExists(
  topic: string,
  brokers: string[],
  clientId: string,
  connection: KafkaConnectionOptions
): Promise<void> {
  if (brokers.length === 0) {
    throw new FatalError('no Kafka brokers: set KAFKA_BROKERS=host:port[,host:port]', { code: ErrorCodes.CONFIG })
  }
  const admin = new Admin({ ...connection, clientId, bootstrapBrokers: brokers })
  try {
    const context = { brokers, doing: `looking up topic ${topic}` }
    await probeKafka(admin, [], context)
    const topics = await admin.listTopics().catch((error: unknown) => {
      throw explainKafkaError(error, context) ?? error
    })
    if (!topics.includes(topic)) {
      throw new FatalError(`topic ${topic} does not exist: create it first (npm run topics -- apply)`, {
        code: ErrorCodes.CONFIG
      })
    }
  } finally {
    await admin.close().catch(() => {})
  }
}

/** Sends lines (already split: strings or bytes, or `InputLine`s from `readLines`). */
export async function produceLines(
  lines: AsyncIterable<string | Buffer | InputLine> | Iterable<string | Buffer | InputLine>,
  options: ProduceOptions
): Promise<ProduceReport> {
  const o = validate(options)
  // The embedded log's producer refuses an unknown topic by itself (it cannot hang the way the Kafka one can).
  const kafka = logTarget({ brokers: o.brokers }) === LogTargets.KAFKA
  // Resolved once for the topic check and the producer (a config error stops here, before any line is read).
  const connection = kafka ? (o.connection ?? kafkaConnectionOptions()) : undefined
  if (o.checkTopic !== false && connection) {
    await assertTopicExists(o.topic, o.brokers ?? parseBrokers(process.env.KAFKA_BROKERS), o.clientId, connection)
  }
  const producer =
    options.producer ??
    createProducer({
      clientId: o.clientId,
      ...(o.brokers ? { brokers: o.brokers } : {}),
      ...(connection ? { connection } : {}),
      ...(o.dataDir ? { dataDir: o.dataDir } : {})
    })
  const started = performance.now()
  const latencies: number[] = []
  const rejections: LineRejection[] = []
  const inFlight = new Set<Promise<void>>()
  let sent = 0
  let rejected = 0
  let blank = 0
  let bytes = 0
  let failure: { error: unknown } | undefined
  let batch: OutgoingMessage[] = []
  // The input line of each message in `batch`, to report one too large for the topic.
  let batchLines: number[] = []
  let batchBytes = 0
  let lineNumber = 0

  const reject = (line: number, reason: string) => {
    rejected++
    const rejection = { line, reason }
    if (rejections.length < MAX_KEPT_REJECTIONS) rejections.push(rejection)
    o.onReject?.(rejection)
  }
  const dispatch = async () => {
    const messages = batch
    const messageLines = batchLines
    const size = batchBytes
    batch = []
    batchLines = []
    batchBytes = 0
    if (messages.length === 0) return
    const sendStarted = performance.now()
    const request = producer.send(messages).then(
      () => {
        latencies.push(performance.now() - sendStarted)
        sent += messages.length
        bytes += size
      },
      (error: unknown) => {
        if (!(error instanceof RecordsTooLargeError)) {
          failure ??= { error }
          return
        }
        // The others were acknowledged: a line too large for the topic is rejected like any bad line.
        latencies.push(performance.now() - sendStarted)
        let rejectedBytes = 0
        for (const r of error.rejected) {
          const m = messages[r.index]!
          rejectedBytes += (m.value?.length ?? 0) + (m.key === undefined ? 0 : Buffer.byteLength(m.key))
          reject(messageLines[r.index]!, r.error.message)
        }
        sent += messages.length - error.rejected.length
        bytes += size - rejectedBytes
      }
    )
    inFlight.add(request)
    void request.finally(() => inFlight.delete(request))
    // Backpressure: stop reading input while the window is full.
    while (inFlight.size >= o.maxInFlight) await Promise.race(inFlight)
  }

  try {
    for await (const item of lines) {
      if (failure) break
      let input: InputLine
      if (typeof item === 'string') input = { line: ++lineNumber, bytes: Buffer.from(item) }
      else if (Buffer.isBuffer(item)) input = { line: ++lineNumber, bytes: item }
      else input = item
      if ('tooLong' in input) {
        reject(input.line, `line is ${input.tooLong} bytes, over the ${o.maxLineBytes}-byte limit`)
        continue
      }
      const line = input.bytes
      if (line.length > o.maxLineBytes) {
        reject(input.line, `line is ${line.length} bytes, over the ${o.maxLineBytes}-byte limit`)
        continue
      }
      if (line.every((b) => b === 0x20 || b === 0x09 || b === CR)) {
        blank++
        continue
      }
      const checked = checkLine(line, o.keyField)
      if (!checked.ok) {
        reject(input.line, checked.reason)
        continue
      }
      const size = line.length + (checked.key === undefined ? 0 : Buffer.byteLength(checked.key))
      if (batch.length > 0 && batchBytes + size > o.batchBytes) await dispatch()
      batchLines.push(input.line)
      batch.push({
        topic: o.topic,
        value: line,
        ...(checked.key === undefined ? {} : { key: checked.key }),
        ...(o.headers ? { headers: o.headers } : {})
      })
      batchBytes += size
      if (batch.length >= o.batchSize) await dispatch()
    }
    if (!failure) await dispatch()
    await Promise.all(inFlight)
  } finally {
    await Promise.allSettled(inFlight)
    if (!options.producer) await producer.close().catch(() => {})
  }
  if (failure) {
    const cause = failure.error
    throw new SfmError(
      kindOf(cause),
      ErrorCodes.UNAVAILABLE,
      `producing to ${o.topic} failed after ${sent} acknowledged messages: ${describeError(cause)}`,
      { cause, details: { topic: o.topic, sent, rejected } }
    )
  }
  const seconds = (performance.now() - started) / 1000
  const sorted = [...latencies].sort((a, b) => a - b)
  return {
    topic: o.topic,
    sent,
    rejected,
    blank,
    bytes,
    sends: latencies.length,
    seconds: round(seconds, 3),
    rate: round(seconds > 0 ? sent / seconds : 0, 1),
    latencyMs: {
      p50: round(percentile(sorted, 50)),
      p99: round(percentile(sorted, 99)),
      max: round(sorted.at(-1) ?? 0)
    },
    rejections
  }
}

/** Sends a JSONL file (or stdin for `-`), one record per line. */
export async function produceFile(options: ProduceFileOptions): Promise<ProduceReport> {
  const o = validate(options)
  const stream = options.file === '-' ? process.stdin : createReadStream(options.file, { highWaterMark: 256 * 1024 })
  try {
    return await produceLines(readLines(stream, o.maxLineBytes), options)
  } finally {
    if (options.file !== '-') stream.destroy()
  }
}
