/**
 * A bounded window of messages (and bytes) in flight across a topology. RxJS has no backpressure: the source must
 * take a permit before it pulls the next message from Kafka and every message returns its permit when it is acked
 * or dead-lettered. While the window is full the source does not read, the consumer stream's buffer fills up to its
 * highWaterMark and @platformatic/kafka stops fetching (see its #260: fetching only while push() returns true).
 */
export interface InFlightWindowOptions {
  maxMessages: number
  maxBytes: number
}

export class InFlightWindow {
  readonly maxMessages: number
  readonly maxBytes: number
  #messages = 0
  #bytes = 0
  #waiters: Array<() => void> = []
  #emptyWaiters: Array<() => void> = []

  constructor(options: InFlightWindowOptions) {
    if (!Number.isInteger(options.maxMessages) || options.maxMessages < 1) {
      throw new RangeError(`maxInFlight must be a positive integer, got ${options.maxMessages}`)
    }
    if (!Number.isFinite(options.maxBytes) || options.maxBytes < 1) {
      throw new RangeError(`maxInFlightBytes must be positive, got ${options.maxBytes}`)
    }
    this.maxMessages = options.maxMessages
    this.maxBytes = options.maxBytes
  }

  get messages(): number {
    return this.#messages
  }

  get bytes(): number {
    return this.#bytes
  }

  get full(): boolean {
    // The byte bound is soft by one message: the size of a message is known only once it has been pulled.
    return this.#messages >= this.maxMessages || this.#bytes >= this.maxBytes
  }

  /** Takes room for one more message if there is some now; false, taking nothing, when the window is full. */
  tryAcquire(): boolean {
    if (this.full) return false
    this.#messages++
    return true
  }

  /**
   * Resolves true once there is room for one more message, and takes that room; resolves false, taking nothing,
   * if `signal` aborts first.
   */
  acquire(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false)
    if (!this.full) {
      this.#messages++
      return Promise.resolve(true)
    }
    return new Promise((resolve) => {
      const waiter = () => {
        signal?.removeEventListener('abort', onAbort)
        this.#messages++
        resolve(true)
      }
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter)
        if (i >= 0) this.#waiters.splice(i, 1)
        resolve(false)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiters.push(waiter)
    })
  }

  /** Records the size of a message whose permit was acquired. */
  addBytes(bytes: number): void {
    this.#bytes += bytes
  }

  /** Returns a permit (one message of `bytes`). */
  release(bytes: number): void {
    this.#messages--
    this.#bytes -= bytes
    while (this.#waiters.length > 0 && !this.full) this.#waiters.shift()!()
    if (this.#messages === 0) {
      const waiters = this.#emptyWaiters
      this.#emptyWaiters = []
      for (const w of waiters) w()
    }
  }

  /** Resolves when nothing is in flight. */
  drained(): Promise<void> {
    if (this.#messages === 0) return Promise.resolve()
    return new Promise((resolve) => this.#emptyWaiters.push(resolve))
  }
}
