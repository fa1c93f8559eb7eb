import type { Source, SourceMessage } from '../sources/types.ts'
import type { InFlightWindow } from './in-flight-window.ts'

/**
 * Pulls from the source while the in-flight window has room: one permit per message, taken before the message is
 * asked for, so what is pulled and not yet done never exceeds the window (backpressure on the source).
 */
export class PullLoop {
  readonly #source: Source
  readonly #window: InFlightWindow
  #reserved = 0

  constructor(source: Source, window: InFlightWindow) {
    this.#source = source
    this.#window = window
  }

  /** 1 while the loop holds a permit waiting for the next message: that permit is not a message in flight. */
  get reserved(): number {
    return this.#reserved
  }

  /**
   * Pulls until `signal` aborts or the source ends; throws what the source throws. `accept` takes each pulled message
   * (its permit already taken) into the topology.
   */
  async run(signal: AbortSignal, accept: (message: SourceMessage) => void): Promise<void> {
    const source = this.#source
    const window = this.#window
    while (!signal.aborted) {
      if (!window.tryAcquire() && !(await window.acquire(signal))) return
      this.#reserved = 1
      let message: SourceMessage | undefined
      try {
        message = await source.next(signal)
      } catch (error) {
        window.release(0)
        throw error
      } finally {
        this.#reserved = 0
      }
      if (!message) {
        window.release(0)
        return
      }
      accept(message)
      if (source.tryNext === undefined) continue
      // Take what the source already buffered (e.g. the rest of a fetch response) in one synchronous loop, a permit
      // each, without awaiting per message. This yields no more than awaiting did: a buffered message resolved
      // `next` in a microtask, so timers and I/O waited for the buffer either way.
      while (!signal.aborted && window.tryAcquire()) {
        const buffered = source.tryNext()
        if (buffered === undefined) {
          window.release(0)
          break
        }
        accept(buffered)
      }
    }
  }
}
