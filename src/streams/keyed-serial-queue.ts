import PQueue from 'p-queue'

/**
 * Runs async tasks in order per key (a partition: Kafka's unit of ordering) and in parallel across keys, at most
 * `concurrency` at once (p-queue). Memory is bounded by the caller: the runtime's in-flight window caps how many
 * messages, and so how many tasks, can be queued.
 */
export class KeyedSerialQueue {
  #queue: PQueue
  #tails = new Map<string, Promise<void>>()

  constructor(concurrency: number) {
    this.#queue = new PQueue({ concurrency })
  }

  run(key: string, task: () => Promise<void>): Promise<void> {
    const previous = this.#tails.get(key) ?? Promise.resolve()
    const next = previous.then(() => this.#queue.add(task))
    // A failed task must not poison the chain of its key: the caller handles the error of its own task.
    const tail = next.catch(() => {})
    this.#tails.set(key, tail)
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    return next
  }

  /** Resolves when every queued task has finished. */
  async idle(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all([...this.#tails.values()])
  }
}
