import type { Sink, WriteResult } from '../../src/sinks/types.ts'
import type { Envelope } from '../../src/streams/envelope.ts'

/**
 * An in-process sink for runtime tests: it keeps what it was given (by `topic:partition@offset`), and can be held
 * shut (a stalled database) or told to fail. Real brokers are used everywhere else in these tests.
 */
export class RecordingSink<T> implements Sink<T> {
  readonly kind = 'recording'
  readonly written = new Map<string, T>()
  readonly batches: number[] = []
  writes = 0
  #gate: Promise<void> | undefined
  #open: (() => void) | undefined
  /** Throw this (once per call) while it returns an error. */
  failWith: ((batch: readonly Envelope<T>[], call: number) => unknown) | undefined
  /** Report these items as failed. */
  failItems: ((envelope: Envelope<T>) => unknown) | undefined

  hold(): void {
    this.#gate = new Promise((resolve) => {
      this.#open = resolve
    })
  }

  release(): void {
    this.#open?.()
    this.#gate = undefined
  }

  async write(batch: readonly Envelope<T>[]): Promise<WriteResult | undefined> {
    this.writes++
    if (this.#gate) await this.#gate
    const error = this.failWith?.(batch, this.writes)
    if (error) throw error
    const failures: { index: number; error: unknown }[] = []
    batch.forEach((envelope, index) => {
      const itemError = this.failItems?.(envelope)
      if (itemError) failures.push({ index, error: itemError })
      else
        this.written.set(
          `${envelope.origin.topic}:${envelope.origin.partition}@${envelope.origin.offset}`,
          envelope.value
        )
    })
    this.batches.push(batch.length)
    return failures.length > 0 ? { failures } : undefined
  }
}
