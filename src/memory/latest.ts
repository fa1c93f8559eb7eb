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
  /**
   * A tombstone's fence pair, from its `sfm.fence.*` headers (the delete's version and timestamp as the memories
   * table stored them); undefined for a state (its value carries them) and for a tombstone written without them.
   */
  readonly fence?: { readonly version: number; readonly timestamp: string }
}

/**
 * The headers a `memory.latest` tombstone carries its fence pair in: a tombstone has no value, yet a consumer that
 * fences (the legacy mirror) must know whether it is newer than the state it holds.
 */
export const TombstoneFenceHeaders = {
  VERSION: 'sfm.fence.version',
  TIMESTAMP: 'sfm.fence.timestamp'
} as const

/** `headers` with a tombstone's fence pair added (decimal version, RFC 3339 timestamp). */
export function withTombstoneFence(
  headers: Map<string, Buffer>,
  version: number,
  timestamp: string
): Map<string, Buffer> {
  headers.set(TombstoneFenceHeaders.VERSION, Buffer.from(String(version)))
  headers.set(TombstoneFenceHeaders.TIMESTAMP, Buffer.from(timestamp))
  return headers
}

/** A tombstone's fence pair from its headers, or undefined when it has none (or they are not a number and a text). */
function tombstoneFence(headers: ReadonlyMap<string, Buffer>): LatestRecord['fence'] {
  const version = headers.get(TombstoneFenceHeaders.VERSION)
  const timestamp = headers.get(TombstoneFenceHeaders.TIMESTAMP)
  if (version === undefined || timestamp === undefined || version.length > 20 || timestamp.length > 64) return undefined
  const n = Number(version.toString('latin1'))
  if (!Number.isSafeInteger(n)) return undefined
  return { version: n, timestamp: timestamp.toString('utf8') }
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
      if (envelope.value.length === 0) {
        const fence = tombstoneFence(envelope.headers)
        return envelope.withValue<LatestRecord>(fence === undefined ? { id, state: null } : { id, state: null, fence })
      }
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
