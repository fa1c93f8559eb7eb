import { ErrorKinds, errorMessage, kindOf } from '../errors.ts'
import type { Logger } from '../logger.ts'
import { AbandonedError, type BackoffOptions, retrying } from './backoff.ts'
import type { DeadLetter, DeadLetterTarget } from './dead-letter.ts'
import type { Delivery } from './envelope.ts'

export interface DeadLetterWriterHooks {
  /** The DLQ holds the letter of `delivery`: the message may be settled. */
  written(delivery: Delivery): void
  /** The DLQ refused letters for good (not retriable): they have nowhere else to go, the runtime must stop. */
  fatal(error: unknown): void
}

/** How many pending letters go in one `write`. */
const MAX_LETTERS_PER_WRITE = 500

/**
 * Writes the runtime's dead letters: queued as they come, written a request at a time by one flush, retried with
 * backoff until the DLQ takes them. A message is settled only once its letter is written; shutdown (the signal)
 * abandons what is still pending, so those messages stay uncommitted and come back on restart.
 */
export class DeadLetterWriter {
  readonly #target: DeadLetterTarget
  readonly #backoff: BackoffOptions
  readonly #signal: AbortSignal
  readonly #hooks: DeadLetterWriterHooks
  readonly #log: Logger
  #pending: Array<{ delivery: Delivery; letter: DeadLetter }> = []
  #flushing: Promise<void> | undefined

  constructor(
    target: DeadLetterTarget,
    backoff: BackoffOptions,
    signal: AbortSignal,
    hooks: DeadLetterWriterHooks,
    log: Logger
  ) {
    this.#target = target
    // Dead letters, like sink writes, retry until they are written or the runtime stops.
    this.#backoff = { ...backoff, maxAttempts: Number.POSITIVE_INFINITY }
    this.#signal = signal
    this.#hooks = hooks
    this.#log = log
  }

  write(delivery: Delivery, letter: DeadLetter): void {
    this.#pending.push({ delivery, letter })
    this.#flush()
  }

  #flush(): void {
    if (this.#flushing) return
    this.#flushing = (async () => {
      await Promise.resolve()
      while (this.#pending.length > 0) {
        const items = this.#pending.splice(0, MAX_LETTERS_PER_WRITE)
        const letters = items.map((i) => i.letter)
        try {
          // A letter the DLQ refuses for good (poison) has nowhere else to go: waiting cannot heal it, so stop.
          await retrying(
            () => this.#target.write(letters),
            (error) => kindOf(error) === ErrorKinds.RETRIABLE,
            this.#backoff,
            {
              signal: this.#signal,
              onRetry: (error, _attempt, delay) =>
                this.#log.warn(`dead-letter write failed, retrying in ${delay} ms: ${errorMessage(error)}`)
            }
          )
        } catch (error) {
          if (error instanceof AbandonedError) return
          return this.#hooks.fatal(error)
        }
        for (const { delivery } of items) this.#hooks.written(delivery)
      }
    })().finally(() => {
      this.#flushing = undefined
      if (this.#pending.length > 0 && !this.#signal.aborted) this.#flush()
    })
  }
}
