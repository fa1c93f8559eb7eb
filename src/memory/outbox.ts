/**
 * The memory side of the transactional outbox relay (topologies/outbox-relay.ts): an outbox row's key must be the id
 * of the event it holds, because the relay publishes it keyed by that key and the memory topology's order per id
 * rests on it.
 */
import type { OperatorFunction } from 'rxjs'
import { ErrorCodes, PoisonError } from '../errors.ts'
import { describeOperator } from '../streams/describe.ts'
import type { Envelope } from '../streams/envelope.ts'
import { filterMap } from '../streams/operators/filter-map.ts'
import type { MemoryEvent } from './event.ts'

/** Passes events whose message key equals their `id`; the others go to the DLQ (stage `outbox-key`). */
export function keyIsMemoryId(): OperatorFunction<Envelope<MemoryEvent>, Envelope<MemoryEvent>> {
  const operator = filterMap((envelope: Envelope<MemoryEvent>) => {
    const key = envelope.key?.toString('utf8')
    if (key === envelope.value.id) return envelope
    envelope.reject(
      new PoisonError(
        `outbox row key ${JSON.stringify(key ?? null)} is not the event's id ${JSON.stringify(envelope.value.id)}`,
        { code: ErrorCodes.VALIDATION }
      ),
      'outbox-key'
    )
    return undefined
  })
  return describeOperator(operator, { name: 'keyIsMemoryId', stage: 'outbox-key', deadLetters: true })
}
