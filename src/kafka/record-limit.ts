import { ErrorCodes, PoisonError } from '../errors.ts'

/**
 * A Kafka broker refuses a produce request whose record batch for one partition is larger than the topic's
 * `max.message.bytes` (MESSAGE_TOO_LARGE) or than a log segment (RECORD_LIST_TOO_LARGE). Neither heals by waiting:
 * the producer splits its requests so that each partition's batch stays under the topic's limit, and a record that
 * is too large on its own is reported per record (RecordsTooLargeError), never retried.
 */

/** A v2 record batch's header: base offset, length, epoch, magic, CRC, attributes, deltas, ids, count. */
export const RECORD_BATCH_OVERHEAD = 61

/** Kafka's default `message.max.bytes`, used only while a topic's own limit cannot be read. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_048_588

/** The Kafka errors that mean "this batch or record is too large": not retriable. */
export const TOO_LARGE_ERRORS: ReadonlySet<string> = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE'])

/**
 * An upper bound of one record's bytes in a v2 record batch (uncompressed): its length, attributes, timestamp and
 * offset deltas, key, value and headers with their varint lengths at their widest.
 */
export function recordBytesBound(
  keyBytes: number,
  valueBytes: number,
  headers: Iterable<readonly [Buffer, Buffer]> | undefined
): number {
  // length 5 + attributes 1 + timestamp delta 10 + offset delta 5 + key length 5 + value length 5 + header count 5
  let n = 36 + keyBytes + valueBytes
  if (headers) for (const [k, v] of headers) n += headerBytesBound(k.length, v.length)
  return n
}

/** An upper bound of one header's bytes in a record: its key and value with their varint lengths. */
export const headerBytesBound = (keyBytes: number, valueBytes: number): number => 10 + keyBytes + valueBytes

/**
 * The requests to make, in order, as lists of message indices: each keeps every group's (topic-partition's) bytes
 * within `budgetOf(index)`; a message over its budget on its own goes alone. Order is kept, so records of one key
 * stay in order when the requests are sent one after the other.
 */
export function planRequests(
  sizes: ArrayLike<number>,
  groupOf: (index: number) => string,
  budgetOf: (index: number) => number
): number[][] {
  const requests: number[][] = []
  let current: number[] = []
  let groups = new Map<string, number>()
  const close = () => {
    if (current.length > 0) requests.push(current)
    current = []
    groups = new Map()
  }
  for (let i = 0; i < sizes.length; i++) {
    const size = sizes[i]!
    const budget = budgetOf(i)
    if (size > budget) {
      close()
      requests.push([i])
      continue
    }
    const group = groupOf(i)
    const used = groups.get(group) ?? 0
    if (used + size > budget) {
      close()
      groups.set(group, size)
    } else {
      groups.set(group, used + size)
    }
    current.push(i)
  }
  close()
  return requests
}

interface ChainError {
  code?: unknown
  apiId?: unknown
  apiCode?: unknown
  message?: unknown
  serverErrorMessage?: unknown
  errors?: unknown
  cause?: unknown
}

/** The first Kafka protocol error (the broker's answer) in a @platformatic/kafka error's `errors`/`cause` chain. */
export function findProtocolError(
  error: unknown,
  match: (apiId: string) => boolean = () => true
): { apiId: string; apiCode: number | undefined; message: string; serverMessage: string | undefined } | undefined {
  const queue: unknown[] = [error]
  const seen = new Set<unknown>()
  while (queue.length > 0 && seen.size < 64) {
    const next = queue.shift()
    if (!next || typeof next !== 'object' || seen.has(next)) continue
    seen.add(next)
    const e = next as ChainError
    if (typeof e.apiId === 'string' && match(e.apiId)) {
      return {
        apiId: e.apiId,
        apiCode: typeof e.apiCode === 'number' ? e.apiCode : undefined,
        message: typeof e.message === 'string' ? e.message : '',
        serverMessage:
          typeof e.serverErrorMessage === 'string' && e.serverErrorMessage ? e.serverErrorMessage : undefined
      }
    }
    if (Array.isArray(e.errors)) queue.push(...e.errors)
    queue.push(e.cause)
  }
  return undefined
}

/** `MESSAGE_TOO_LARGE (Kafka error 10): The request included …`, or undefined when no broker error is in the chain. */
export function describeProtocolError(error: unknown, match?: (apiId: string) => boolean): string | undefined {
  const found = findProtocolError(error, match)
  if (!found) return undefined
  const code = found.apiCode === undefined ? '' : ` (Kafka error ${found.apiCode})`
  return `${found.apiId}${code}: ${found.message}${found.serverMessage ? ` ${found.serverMessage}` : ''}`
}

export const isTooLarge = (error: unknown): boolean =>
  findProtocolError(error, (id) => TOO_LARGE_ERRORS.has(id)) !== undefined

/** One record the broker would not take however often it is sent, with why (a PoisonError, for the DLQ). */
export interface RejectedRecord {
  /** Its position in the messages passed to `send`. */
  readonly index: number
  readonly topic: string
  /** Its bytes in a record batch (upper bound). */
  readonly bytes: number
  /** The topic's `max.message.bytes` as read. */
  readonly limit: number
  readonly error: PoisonError
}

/**
 * Thrown by `SfmProducer.send` after every other record of the call was acknowledged: the records in `rejected` are
 * too large for their topic. Poison: the caller dead-letters what they came from (or, for the DLQ, truncates them).
 */
export class RecordsTooLargeError extends PoisonError {
  readonly rejected: readonly RejectedRecord[]
  constructor(rejected: readonly RejectedRecord[]) {
    const first = rejected[0]
    super(
      `${rejected.length} record(s) too large for Kafka${first ? `, e.g. ${first.error.message}` : ''}; the others were sent`,
      { code: ErrorCodes.SINK_REJECTED, details: { rejected: rejected.length } }
    )
    this.rejected = rejected
  }
}

export function tooLargeRecord(
  index: number,
  topic: string,
  bytes: number,
  limit: number,
  cause: unknown
): RejectedRecord {
  const kafka = describeProtocolError(cause, (id) => TOO_LARGE_ERRORS.has(id)) ?? 'refused by the broker'
  const error = new PoisonError(
    `record of ${bytes} bytes for ${topic} is over the topic's limit (max.message.bytes ${limit}): ${kafka}`,
    { code: ErrorCodes.SINK_REJECTED, cause, details: { topic, bytes, limit } }
  )
  return { index, topic, bytes, limit, error }
}

/**
 * The record-size limit of each topic, read once (`max.message.bytes`: the topic's own or the broker's
 * `message.max.bytes`) and kept. A topic whose limit cannot be read uses Kafka's default for a minute, then is read
 * again; a refusal by the broker makes the producer read it again at once (`forget`).
 */
export class TopicRecordLimits {
  readonly #read: (topics: readonly string[]) => Promise<ReadonlyMap<string, number>>
  readonly #known = new Map<string, { limit: number; until: number }>()
  readonly #loading = new Map<string, Promise<void>>()
  readonly #retryMs: number

  constructor(read: (topics: readonly string[]) => Promise<ReadonlyMap<string, number>>, retryMs = 60_000) {
    this.#read = read
    this.#retryMs = retryMs
  }

  /** The limit when known (no I/O): the send path's check. */
  cached(topic: string): number | undefined {
    const entry = this.#known.get(topic)
    if (entry === undefined || performance.now() > entry.until) return undefined
    return entry.limit
  }

  /**
   * Reads the limits not known yet. Concurrent callers share one read per topic, and resume in the order they
   * called (sends waiting for the first read keep their order).
   */
  async load(topics: Iterable<string>): Promise<void> {
    const missing = [...new Set(topics)].filter((t) => this.cached(t) === undefined)
    if (missing.length === 0) return
    const reading = missing.filter((t) => !this.#loading.has(t))
    if (reading.length > 0) {
      const done = this.#readInto(reading).finally(() => {
        for (const t of reading) this.#loading.delete(t)
      })
      for (const t of reading) this.#loading.set(t, done)
    }
    for (const t of missing) await this.#loading.get(t)
  }

  async #readInto(missing: readonly string[]): Promise<void> {
    let read: ReadonlyMap<string, number> = new Map()
    try {
      read = await this.#read(missing)
    } catch {
      // Unreadable (no DescribeConfigs permission, broker away): the default, and the broker's answer as backstop.
    }
    for (const topic of missing) {
      const limit = read.get(topic)
      this.#known.set(
        topic,
        limit !== undefined && Number.isInteger(limit) && limit > 0
          ? { limit, until: Number.POSITIVE_INFINITY }
          : { limit: DEFAULT_MAX_MESSAGE_BYTES, until: performance.now() + this.#retryMs }
      )
    }
  }

  async get(topic: string): Promise<number> {
    await this.load([topic])
    return this.cached(topic) ?? DEFAULT_MAX_MESSAGE_BYTES
  }

  forget(topic: string): void {
    this.#known.delete(topic)
  }
}
