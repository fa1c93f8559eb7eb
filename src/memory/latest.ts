import type { OperatorFunction } from 'rxjs'
import { ErrorCodes, PoisonError } from '../errors.ts'
import type { Envelope } from '../streams/envelope.ts'
import { type DecodeJsonOptions, decodeJsonValue, defaultDecodeJsonOptions } from '../streams/operators/decode-json.ts'
import { filterMap } from '../streams/operators/filter-map.ts'
import type { JsonValue } from './event.ts'

/**
 * One value of `memory.latest`: the state of a memory as the `memories` table holds it after a write (written by
 * src/memory/materialize.ts, keyed by memory id). A deleted memory's record is a tombstone (null value) instead.
 * Its fields are the memory.event ones the state keeps, so a state can be handled like the upsert that made it.
 */
export interface LatestMemory {
  readonly id: string
  readonly namespace: string
  readonly type: string | null
  readonly importance: number | null
  readonly version: number
  /** The event that made this state. */
  readonly event_id: string
  /** RFC 3339, UTC. Records of older versions may carry milliseconds only (the fence keeps microseconds). */
  readonly timestamp: string
  readonly payload: JsonValue
}

/** A record of `memory.latest` after decoding: the memory id (the key) and its state, null for a tombstone. */
export interface LatestRecord {
  readonly id: string
  readonly state: LatestMemory | null
}

/**
 * Bytes of `memory.latest` → LatestRecord. A tombstone (no value) passes on with `state: null` — a JSON decoder
 * would dead-letter it, yet it is how the topic says "deleted". Values are size- and depth-checked before
 * parsing; a value that is not a JSON object, or a record without a key, is dead-lettered with the reason. The
 * fields themselves are checked where they are used (prepareEvent).
 */
export function decodeLatest(
  options: DecodeJsonOptions = {}
): OperatorFunction<Envelope<Buffer>, Envelope<LatestRecord>> {
  const settings = { ...defaultDecodeJsonOptions, stage: 'decode-latest', ...options }
  return filterMap((envelope) => {
    try {
      const key = envelope.key
      if (key === undefined || key.length === 0) {
        throw new PoisonError('memory.latest record without a key (the memory id)', { code: ErrorCodes.DECODE })
      }
      const id = key.toString('utf8')
      if (envelope.value.length === 0) return envelope.withValue<LatestRecord>({ id, state: null })
      const value = decodeJsonValue(envelope.value, settings)
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new PoisonError('memory.latest value is not a JSON object', { code: ErrorCodes.DECODE })
      }
      return envelope.withValue<LatestRecord>({ id, state: value as LatestMemory })
    } catch (error) {
      envelope.reject(error, settings.stage)
      return undefined
    }
  })
}
