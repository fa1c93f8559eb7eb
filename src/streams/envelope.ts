import type { Context } from '@opentelemetry/api'
import { ROOT_CONTEXT } from '@opentelemetry/api'

/** Where a message came from: enough to commit past it and to name it in a dead letter. */
export interface Origin {
  readonly topic: string
  readonly partition: number
  readonly offset: bigint
  readonly leaderEpoch: number
  /** Broker/producer timestamp, milliseconds since the epoch. */
  readonly timestamp: bigint
}

/** How a message left the topology without being written by every sink. */
export const DropReasons = {
  FILTERED: 'filtered',
  DUPLICATE: 'duplicate'
} as const
export type DropReason = (typeof DropReasons)[keyof typeof DropReasons]

/**
 * The settle handle of one source message, shared by every envelope derived from it. It counts the obligations
 * still open on the message (one per sink branch after fan-out); when the count reaches zero the message is done
 * and its offset may be committed. The runtime implements `DeliveryHost`; operators only call `drop`/`reject` on
 * envelopes.
 */
export interface DeliveryHost {
  /** Every obligation of the delivery is settled: release its window permit and mark its offset done. */
  done(delivery: Delivery): void
  /** The delivery failed in `stage`: write it to the DLQ, then call `delivery.settle()`. */
  deadLetter(delivery: Delivery, error: unknown, stage: string): void
  /** A delivery was dropped on purpose (filter, dedupe): for metrics only. */
  dropped?(delivery: Delivery, reason: DropReason, stage: string): void
}

export class Delivery {
  readonly host: DeliveryHost
  readonly origin: Origin
  readonly key: Buffer | undefined
  readonly raw: Buffer
  readonly headers: ReadonlyMap<string, Buffer>
  readonly size: number
  readonly receivedAt: number
  readonly context: Context
  /** Number of open obligations; starts at one (the shared pipeline). */
  #pending = 1
  #deadLettered = false
  #attempts = 0
  #onDone: Array<() => void> | undefined
  /** The value decodeJson made of this message and the JSON text of one of its members (`rawMember`). */
  #decoded: unknown
  #rawMember: Buffer | undefined

  constructor(
    host: DeliveryHost,
    init: {
      origin: Origin
      key: Buffer | undefined
      raw: Buffer
      headers: ReadonlyMap<string, Buffer>
      context?: Context
      receivedAt?: number
    }
  ) {
    this.host = host
    this.origin = init.origin
    this.key = init.key
    this.raw = init.raw
    this.headers = init.headers
    this.context = init.context ?? ROOT_CONTEXT
    this.receivedAt = init.receivedAt ?? performance.now()
    let size = init.raw.length + (init.key?.length ?? 0)
    if (init.headers.size > 0) for (const [k, v] of init.headers) size += k.length + v.length
    this.size = size
  }

  get pending(): number {
    return this.#pending
  }

  /** Records `value` as decoded from this message, with the bytes of one of its members' JSON text (decodeJson). */
  setRawMember(value: unknown, bytes: Buffer): void {
    this.#decoded = value
    this.#rawMember = bytes
  }

  /**
   * The JSON text, as received, of the member decodeJson's `rawMember` names, if `value` is the very value it decoded
   * from this message (a stage that replaced it, e.g. an upcaster, gets undefined: serialise the new value instead).
   * The bytes are a view of the message: valid while the delivery is.
   */
  rawMemberOf(value: unknown): Buffer | undefined {
    return value === this.#decoded ? this.#rawMember : undefined
  }

  get deadLettered(): boolean {
    return this.#deadLettered
  }

  /** Attempts the sinks made for this message (for the DLQ's `attempts` header). */
  get attempts(): number {
    return this.#attempts
  }

  countAttempt(): void {
    this.#attempts++
  }

  /** Fan-out: the one shared obligation becomes `branches` obligations. */
  fork(branches: number): void {
    if (branches < 1) throw new RangeError('a topology needs at least one sink branch')
    this.#pending += branches - 1
  }

  /** Calls `callback` once every obligation is settled (for stores that may only remember durable work). */
  whenDone(callback: () => void): void {
    if (this.#pending === 0) callback()
    else {
      this.#onDone ??= []
      this.#onDone.push(callback)
    }
  }

  /** Closes one obligation. */
  settle(): void {
    if (this.#pending <= 0) return
    this.#pending--
    if (this.#pending > 0) return
    if (this.#onDone) for (const callback of this.#onDone) callback()
    this.host.done(this)
  }

  /** Closes one obligation by dead-lettering the message; a message is dead-lettered at most once. */
  reject(error: unknown, stage: string): void {
    if (this.#pending <= 0) return
    if (this.#deadLettered) {
      this.settle()
      return
    }
    this.#deadLettered = true
    this.host.deadLetter(this, error, stage)
  }
}

/**
 * One message as it flows through a topology: an immutable value plus the delivery it belongs to. Operators derive
 * new envelopes with `withValue`, and must end every envelope they do not pass on with `drop` or `reject`, or the
 * partition cannot be committed past it.
 */
export class Envelope<T> {
  readonly value: T
  readonly delivery: Delivery

  constructor(delivery: Delivery, value: T) {
    this.delivery = delivery
    this.value = value
  }

  get key(): Buffer | undefined {
    return this.delivery.key
  }

  get headers(): ReadonlyMap<string, Buffer> {
    return this.delivery.headers
  }

  get origin(): Origin {
    return this.delivery.origin
  }

  /** Wire size of the source message in bytes (key + value + headers). */
  get size(): number {
    return this.delivery.size
  }

  /** `topic:partition`, the unit of ordering. */
  get partitionKey(): string {
    return `${this.delivery.origin.topic}:${this.delivery.origin.partition}`
  }

  withValue<U>(value: U): Envelope<U> {
    return new Envelope(this.delivery, value)
  }

  /** This branch's work on the message is durable (a sink wrote it). Called by the runtime's writer. */
  ack(): void {
    this.delivery.settle()
  }

  /** The message is intentionally not passed on (filtered, duplicate). Its offset can be committed. */
  drop(reason: DropReason, stage: string): void {
    this.delivery.host.dropped?.(this.delivery, reason, stage)
    this.delivery.settle()
  }

  /** The message is poison for `stage`: it goes to the DLQ with the error, and the partition moves on. */
  reject(error: unknown, stage: string): void {
    this.delivery.reject(error, stage)
  }
}
