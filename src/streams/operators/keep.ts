import type { OperatorFunction } from 'rxjs'
import { describeOperator } from '../describe.ts'
import { DropReasons, type Envelope } from '../envelope.ts'
import { filterMap } from './filter-map.ts'

/**
 * The topology's `filter`: passes envelopes the predicate accepts and drops (acks) the others, so their offsets can
 * be committed. A plain RxJS `filter` would lose them from the books and stall the partition's commits.
 */
export function keep<T>(
  predicate: (envelope: Envelope<T>) => boolean,
  options: { stage?: string } = {}
): OperatorFunction<Envelope<T>, Envelope<T>> {
  const stage = options.stage ?? 'keep'
  const operator = filterMap((envelope: Envelope<T>) => {
    if (predicate(envelope)) return envelope
    envelope.drop(DropReasons.FILTERED, stage)
    return undefined
  })
  return describeOperator(operator, { name: 'keep', stage })
}
