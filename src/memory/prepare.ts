import { ErrorCodes, PoisonError } from '../errors.ts'
import { type PreparedRow, parseEventTime } from '../sinks/postgres/index.ts'
import type { Envelope } from '../streams/envelope.ts'
import { isDelete, type MemoryEvent } from './event.ts'

/** A memory event checked and converted for the memories table: what the reduce step and the statement need. */
export interface PreparedEvent extends PreparedRow {
  readonly namespace: string
  readonly type: string | null
  /**
   * JSON text of the payload, or its UTF-8 bytes as the message carried them (decodeJson's `rawMember`); null for
   * deletes.
   */
  readonly payload: string | Buffer | null
  readonly importance: number | null
  /** Canonical UTC timestamp text (see src/event-time.ts). */
  readonly timestamp: string
}

function reject(index: number, reason: string, cause?: unknown): PoisonError {
  return new PoisonError(`memory event cannot be stored: ${reason}`, {
    code: ErrorCodes.VALIDATION,
    details: { index },
    ...(cause === undefined ? {} : { cause })
  })
}

/**
 * Checks what the fence and the statement rely on and converts the event once: the timestamp to exact microseconds
 * and the payload to JSON text — the message's own bytes of it when the decoder kept them (`envelope`, see
 * decodeJson's `rawMember`), else serialised here, once: the statement receives its bytes as an element of a binary
 * jsonb[], unescaped, and memory.latest reuses them. Events reach the sink
 * validated against the schema, so a rejection here means a validator was skipped or the schema is looser than the
 * table; the item alone becomes poison instead of failing the batch.
 */
export function prepareEvent(
  event: MemoryEvent,
  index: number,
  envelope?: Envelope<MemoryEvent>
): PreparedEvent | PoisonError {
  if (typeof event !== 'object' || event === null) return reject(index, 'not an object')
  if (typeof event.id !== 'string' || event.id.length === 0) return reject(index, 'id must be a non-empty string')
  if (typeof event.event_id !== 'string') return reject(index, 'event_id must be a string')
  if (typeof event.namespace !== 'string') return reject(index, 'namespace must be a string')
  const version = event.version ?? 0
  if (!Number.isSafeInteger(version) || version < 0) {
    return reject(index, 'version must be an integer in 0..2^53-1')
  }
  const time = parseEventTime(event.timestamp)
  if (typeof time === 'string') return reject(index, time)
  if (event.type !== undefined && event.type !== null && typeof event.type !== 'string') {
    return reject(index, 'type must be a string')
  }
  const type = event.type ?? null
  const deleted = isDelete(event)
  if (!deleted && event.op !== undefined && event.op !== 'upsert') return reject(index, 'op must be upsert or delete')

  let payload: string | Buffer | null = null
  let importance: number | null = null
  if (!deleted) {
    if (type === null) return reject(index, 'an upsert needs a type')
    if (event.payload === undefined) return reject(index, 'an upsert needs a payload')
    const raw = envelope?.delivery.rawMemberOf(event)
    if (raw !== undefined) payload = raw
    else {
      let json: string | undefined
      try {
        json = JSON.stringify(event.payload)
      } catch (error) {
        return reject(index, 'payload is not serialisable as JSON', error)
      }
      // undefined for a function or a toJSON() returning undefined (values a decoder never makes): no JSON to store.
      if (typeof json !== 'string') return reject(index, 'payload is not serialisable as JSON')
      payload = json
    }
    if (event.importance !== undefined && event.importance !== null) {
      if (typeof event.importance !== 'number' || !Number.isFinite(event.importance)) {
        return reject(index, 'importance must be a finite number')
      }
      // -0 would reach PostgreSQL as "0" anyway (pg sends numbers with toString): say so here, for fold().
      importance = event.importance === 0 ? 0 : event.importance
    }
  }

  return {
    index,
    id: event.id,
    eventId: event.event_id,
    namespace: event.namespace,
    type,
    payload,
    importance,
    version,
    micros: time.micros,
    timestamp: time.text,
    deleted
  }
}
