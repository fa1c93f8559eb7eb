import { Observable, type Subscriber } from 'rxjs'

/**
 * A minimal hot multicast for the runtime's per-message path: where the pull loop pushes into the pipeline, and where
 * the pipeline fans out to the sink branches. It does what an rxjs `Subject` (or `share()`) does there — every value
 * to every current subscriber, in subscription order; error and completion to all of them, and to late subscribers
 * — without its per-value cost: rxjs 7's CJS build (the one Node loads) allocates a closure and an iterator in every
 * `Subject.next`, and `share()` adds a SafeSubscriber hop (docs/BENCHMARKS.md, `runtime`).
 */
export class Feed<T> {
  /** Replaced, never mutated, on unsubscribe: `next` may be looping over it when a subscriber leaves. */
  #subscribers: Subscriber<T>[] = []
  #ended = false
  #failed = false
  #error: unknown

  readonly observable: Observable<T> = new Observable<T>((subscriber) => {
    if (this.#ended) {
      if (this.#failed) subscriber.error(this.#error)
      else subscriber.complete()
      return
    }
    this.#subscribers = [...this.#subscribers, subscriber]
    return () => {
      this.#subscribers = this.#subscribers.filter((s) => s !== subscriber)
    }
  })

  /** Subscribers right now (for tests). */
  get observed(): number {
    return this.#subscribers.length
  }

  next(value: T): void {
    if (this.#ended) return
    const subscribers = this.#subscribers
    for (let i = 0; i < subscribers.length; i++) subscribers[i]!.next(value)
  }

  error(error: unknown): void {
    if (this.#ended) return
    this.#ended = true
    this.#failed = true
    this.#error = error
    const subscribers = this.#subscribers
    this.#subscribers = []
    for (const s of subscribers) s.error(error)
  }

  complete(): void {
    if (this.#ended) return
    this.#ended = true
    const subscribers = this.#subscribers
    this.#subscribers = []
    for (const s of subscribers) s.complete()
  }
}
