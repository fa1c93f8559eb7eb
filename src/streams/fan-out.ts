import { identity, merge, type OperatorFunction } from 'rxjs'
import type { Envelope } from './envelope.ts'
import { Feed } from './feed.ts'
import { countedPipeline, type PassCounter } from './node-counters.ts'
import type { BranchContext, Topology } from './topology.ts'

/** A topology's operators wired up: push messages into `input`; `done` settles when every branch completed. */
export interface FanOut {
  readonly input: Feed<Envelope<Buffer>>
  /** Resolves when every branch completed; rejects with the first error of the pipeline or a branch. */
  readonly done: Promise<void>
  /** Detaches the shared pipeline from the branches (after the drain). */
  unsubscribe(): void
}

/**
 * Wires input → shared pipeline → fork → fan-out → every branch. Each message is forked into one share per branch
 * (the delivery is done when every share is), then handed to every branch. Feeds rather than a Subject and share():
 * the same multicast, without their allocations per message (see feed.ts). The branches subscribe first, so the
 * pipeline has somewhere to send its first message.
 */
export function fanOut(
  topology: Topology<unknown>,
  contextOf: (branch: string) => BranchContext,
  counterOf?: (operator: number) => PassCounter
): FanOut {
  const branches = Object.entries(topology.branches)
  const input = new Feed<Envelope<Buffer>>()
  const shared = new Feed<Envelope<unknown>>()
  const defined = topology.pipeline as OperatorFunction<Envelope<Buffer>, Envelope<unknown>> | undefined
  // Counted after each of its operators when asked (the console's per-node figures).
  const pipeline =
    defined === undefined
      ? (identity as OperatorFunction<Envelope<Buffer>, Envelope<unknown>>)
      : counterOf
        ? countedPipeline(defined, counterOf)
        : defined
  const done = new Promise<void>((resolve, reject) => {
    merge(...branches.map(([name, b]) => b.connect(shared.observable, contextOf(name)))).subscribe({
      error: reject,
      complete: resolve
    })
  })
  const feeding = input.observable.pipe(pipeline).subscribe({
    next: (envelope) => {
      try {
        envelope.delivery.fork(branches.length)
      } catch (error) {
        shared.error(error)
        return
      }
      shared.next(envelope)
    },
    error: (error) => shared.error(error),
    complete: () => shared.complete()
  })
  return { input, done, unsubscribe: () => feeding.unsubscribe() }
}
