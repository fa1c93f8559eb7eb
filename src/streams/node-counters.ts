import { Observable, type OperatorFunction, Subscriber } from 'rxjs'
import { pipelineOperators } from './describe.ts'

/**
 * What the runtime counts per node of the topology graph (the node ids of graph.ts), for the console: how many items
 * each operator passed on, and per branch what its batching and its writer hold. Plain numbers bumped on the hot
 * path: no allocation per item. Rates and in-flight counts are differences of these, taken by the reader.
 */
export interface NodeCounts {
  /** Items each pipeline operator passed on, by graph node id (`op:<i>`, `branch:<name>:op:<i>`). */
  readonly passed: Record<string, number>
  /** Per branch name. */
  readonly branches: Record<string, BranchCounts>
}

export interface BranchCounts {
  /** Items that reached the branch's batching (after its own operators). */
  readonly batched: number
  /** Items handed to its writer in batches (waiting behind a partition's earlier batch, or being written). */
  readonly received: number
  /** Items the writer finished: acked, dead-lettered, or abandoned at shutdown. */
  readonly settled: number
  /** Items in a `sink.write` call right now. */
  readonly writing: number
}

/** An operator node's count. */
export class PassCounter {
  passed = 0
}

/** A branch writer's counts (see BranchCounts). */
export class WriterCounter {
  received = 0
  settled = 0
  writing = 0
}

/** Passes every value on and counts it: a Subscriber subclass, so rxjs adds no wrapper per subscription or value. */
class CountingSubscriber<T> extends Subscriber<T> {
  readonly #counter: PassCounter
  constructor(destination: Subscriber<T>, counter: PassCounter) {
    super(destination)
    this.#counter = counter
  }
  protected override _next(value: T): void {
    this.#counter.passed++
    this.destination.next(value)
  }
}

/** An operator that counts what passes through it into `counter`. */
export function counting<T>(counter: PassCounter): OperatorFunction<T, T> {
  return (source) => new Observable<T>((subscriber) => source.subscribe(new CountingSubscriber(subscriber, counter)))
}

/**
 * `operator` with a count after each of its operators (one counter per node the graph draws for it: a
 * `pipeline(...)`'s operators, or the whole function as one node). `counterOf(i)` gives the i-th node's counter.
 */
export function countedPipeline<A, B>(
  operator: OperatorFunction<A, B>,
  counterOf: (index: number) => PassCounter
): OperatorFunction<A, B> {
  const operators = pipelineOperators(operator) ?? [operator]
  return (source) => {
    let stream: Observable<unknown> = source
    operators.forEach((op, i) => {
      stream = counting(counterOf(i))((op as OperatorFunction<unknown, unknown>)(stream))
    })
    return stream as Observable<B>
  }
}
