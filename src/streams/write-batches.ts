import { mergeMap, type OperatorFunction } from 'rxjs'
import { ErrorKinds, kindOf } from '../errors.ts'
import type { Sink, SinkContext } from '../sinks/types.ts'
import { AbandonedError, type BackoffOptions, defaultBackoff, RetryLater, retryWithBackoff } from './backoff.ts'
import type { Envelope } from './envelope.ts'
import { KeyedSerialQueue } from './keyed-serial-queue.ts'
import type { WriterCounter } from './node-counters.ts'
import type { WriteGate } from './write-gate.ts'

export interface WriteObserver {
  /** One `sink.write` call finished (successfully or with item failures). */
  written?(branch: string, count: number, bytes: number, seconds: number): void
  /** A `sink.write` call settled at least one item (acked or dead-lettered): the branch is not held. */
  progressed?(branch: string): void
  /** A write (or some of its items) will be retried after `delayMs`. */
  retrying?(branch: string, error: unknown, attempt: number, delayMs: number): void
  /** The sink threw a fatal error: the runtime must stop. The batch stays open (uncommitted). */
  fatal(branch: string, error: unknown): void
}

export interface WriteBatchesOptions {
  /** Batches written at once across partitions (a partition's batches are written in order). */
  maxInFlightBatches: number
  /** Delays between attempts. Writes retry until they succeed or the runtime stops (`maxAttempts` is ignored). */
  backoff?: BackoffOptions
  /** Told of every batch received and finished, for a `when-idle` batch operator in front (see write-gate.ts). */
  gate?: WriteGate
  /** Counts items received, settled and in a `sink.write` call (the console's in-flight figure of the sink). */
  counter?: WriterCounter
}

/** Outcome of one batch, for observers and tests. */
export interface BatchReport {
  readonly branch: string
  readonly written: number
  readonly deadLettered: number
  readonly abandoned: number
}

/**
 * The end of a branch: writes each batch with `sink.write`, acks what the sink made durable, dead-letters the items
 * it rejected as poison, and retries with backoff what failed for retriable reasons — the whole batch when `write`
 * throws, the named items when it reports them. Retrying holds the partition (its later batches wait), which the
 * in-flight window turns into backpressure.
 */
export function writeBatches<T>(
  sink: Sink<T>,
  context: SinkContext,
  options: WriteBatchesOptions,
  observer: WriteObserver
): OperatorFunction<Envelope<T>[], BatchReport> {
  const queue = new KeyedSerialQueue(options.maxInFlightBatches)
  const backoff = options.backoff ?? defaultBackoff
  const branch = context.branch
  const gate = options.gate
  const counter = options.counter

  const policy = { ...backoff, maxAttempts: Number.POSITIVE_INFINITY }
  const hooks = {
    signal: context.signal,
    onRetry: (error: unknown, attempt: number, delayMs: number) => observer.retrying?.(branch, error, attempt, delayMs)
  }

  /** `sink.write`, its items counted as being written while it runs. */
  const countedWrite = async (c: WriterCounter, items: Envelope<T>[]) => {
    c.writing += items.length
    try {
      return await sink.write(items, context)
    } finally {
      c.writing -= items.length
    }
  }

  const writeOne = async (batch: Envelope<T>[]): Promise<BatchReport> => {
    let items = batch
    let deadLettered = 0

    /** One `sink.write` of what is still open: a report when the batch is finished, RetryLater to wait and retry. */
    const attempt = async (): Promise<BatchReport | RetryLater> => {
      const started = performance.now()
      let retry: Envelope<T>[] = []
      let failure: unknown
      for (const item of items) item.delivery.countAttempt()
      try {
        const result = await (counter ? countedWrite(counter, items) : sink.write(items, context))
        const failures = result?.failures
        // The usual outcome, everything written, needs no lookup (nor an entry pair per item).
        const failed = failures && failures.length > 0 ? new Map<number, unknown>() : undefined
        if (failed && failures) for (const f of failures) failed.set(f.index, f.error)
        let bytes = 0
        for (let index = 0; index < items.length; index++) {
          const item = items[index]!
          bytes += item.size
          if (failed === undefined || !failed.has(index)) {
            item.ack()
            continue
          }
          const error = failed.get(index)
          const kind = kindOf(error)
          if (kind === ErrorKinds.RETRIABLE) retry.push(item)
          else if (kind === ErrorKinds.POISON) {
            deadLettered++
            item.reject(error, branch)
          } else {
            failure = error
            retry.push(item)
          }
        }
        observer.written?.(branch, items.length, bytes, (performance.now() - started) / 1000)
        if (retry.length < items.length) observer.progressed?.(branch)
        if (failure !== undefined) {
          observer.fatal(branch, failure)
          return { branch, written: batch.length - retry.length - deadLettered, deadLettered, abandoned: retry.length }
        }
        if (retry.length === 0) return { branch, written: batch.length - deadLettered, deadLettered, abandoned: 0 }
        failure = result?.failures?.find((f) => kindOf(f.error) === ErrorKinds.RETRIABLE)?.error
      } catch (error) {
        const kind = kindOf(error)
        if (kind === ErrorKinds.FATAL) {
          observer.fatal(branch, error)
          return { branch, written: batch.length - items.length - deadLettered, deadLettered, abandoned: items.length }
        }
        if (kind === ErrorKinds.POISON) {
          // The sink refused the whole batch for record-level reasons without naming items: each one is poison.
          for (const item of items) item.reject(error, branch)
          return {
            branch,
            written: batch.length - items.length - deadLettered,
            deadLettered: deadLettered + items.length,
            abandoned: 0
          }
        }
        retry = items
        failure = error
      }
      items = retry
      return new RetryLater(failure)
    }

    try {
      return await retryWithBackoff(attempt, policy, hooks)
    } catch (error) {
      if (!(error instanceof AbandonedError)) throw error
      // Shutdown: leave the items open. Their offsets are not committed, so the partition's next owner gets them
      // again. Retriable failures are never dead-lettered: the record is fine, the world is not.
      return { branch, written: batch.length - items.length - deadLettered, deadLettered, abandoned: items.length }
    }
  }

  return mergeMap((batch: Envelope<T>[]) => {
    let report: BatchReport | undefined
    const key = batch[0]?.partitionKey ?? ''
    // Counted before anything is awaited: the batch operator that just emitted it asks right after.
    gate?.begin(key)
    if (counter) counter.received += batch.length
    const written = queue
      .run(key, async () => {
        report = await writeOne(batch)
        if (counter) counter.settled += batch.length
      })
      .then(() => report!)
    return gate ? written.finally(() => gate.end(key)) : written
  })
}
