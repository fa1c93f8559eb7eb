import { filter, mergeMap, type OperatorFunction, pipe } from 'rxjs'
import { ErrorKinds, kindOf } from '../../errors.ts'
import { AbandonedError, type BackoffOptions, defaultBackoff, retrying } from '../backoff.ts'
import type { Envelope } from '../envelope.ts'
import { KeyedSerialQueue } from '../keyed-serial-queue.ts'

export interface RetryStepOptions extends Partial<BackoffOptions> {
  /** Messages of different partitions processed at once; a partition is always processed in order. */
  concurrency?: number
  /** Stage name in dead letters. */
  stage?: string
  /** Stops the waiting on shutdown; the message is then left open (not committed, redelivered later). */
  signal?: AbortSignal
}

/**
 * Applies an async step to each message with backoff for retriable errors (see `kindOf`): a database or service
 * call that may be briefly unavailable. Poison errors dead-letter the message; fatal errors fail the topology.
 * Retrying holds the partition, and the in-flight window turns that into backpressure on the source.
 * (Named `retryStep`, not `retry`, so it does not shadow RxJS's `retry` in a topology that imports both.)
 */
export function retryStep<A, B>(
  step: (envelope: Envelope<A>) => Promise<B>,
  options: RetryStepOptions = {}
): OperatorFunction<Envelope<A>, Envelope<B>> {
  const { concurrency = 16, stage = 'retry', signal, ...backoff } = options
  const policy = { ...defaultBackoff, ...backoff }
  const queue = new KeyedSerialQueue(concurrency)
  return pipe(
    mergeMap(async (envelope: Envelope<A>) => {
      let result: Envelope<B> | undefined
      await queue.run(envelope.partitionKey, async () => {
        try {
          const value = await retrying(
            () => step(envelope),
            (error) => kindOf(error) === ErrorKinds.RETRIABLE,
            policy,
            { signal }
          )
          result = envelope.withValue(value)
        } catch (error) {
          if (error instanceof AbandonedError) return
          if (kindOf(error) === ErrorKinds.FATAL) throw error
          envelope.reject(error, stage)
        }
      })
      return result
    }),
    filter((envelope): envelope is Envelope<B> => envelope !== undefined)
  )
}
