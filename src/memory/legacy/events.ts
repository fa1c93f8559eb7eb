/**
 * Events in the legacy SomaFractalMemory shape on `memory.events`, and what the memory topology does with them
 * (`SFM_LEGACY_EVENTS`).
 *
 * The legacy producer wrote `{event_id, id, namespace, type: "created", timestamp, payload[, importance, embedding,
 * model_revision]}`: `id` a fresh uuid4 unrelated to the memory, no `op`, no `version`, the whole stored value as
 * `payload` (with `coordinate` and `memory_type`), the timestamp ISO 8601 with `+00:00` (an older producer: epoch
 * seconds as a number). Such an event is valid `memory.event` v1 when its timestamp is a string, so without this
 * step it would land under the uuid instead of the memory's id.
 *
 * - `reject` (default): a legacy-shaped event goes to the DLQ, with a reason that names SFM_LEGACY_EVENTS.
 * - `upcast`: it becomes a v1 upsert of the memory `legacyMemoryId(namespace, payload.coordinate)` at version 0,
 *   `type` from `payload.memory_type`, the timestamp as canonical UTC RFC 3339; its `event_id` is kept (the dedupe
 *   key). What cannot be upcast (no coordinate, no memory_type, a bad timestamp) goes to the DLQ with the reason.
 */
import type { OperatorFunction } from 'rxjs'
import { ErrorCodes, FatalError, PoisonError } from '../../errors.ts'
import { fromMicros, parseEventTime } from '../../event-time.ts'
import { describeOperator } from '../../streams/describe.ts'
import type { Envelope } from '../../streams/envelope.ts'
import { filterMap } from '../../streams/operators/filter-map.ts'
import type { MemoryEvent } from '../event.ts'
import { legacyMemoryId } from './memory-id.ts'

export const LegacyEventModes = { UPCAST: 'upcast', REJECT: 'reject' } as const
export type LegacyEventMode = (typeof LegacyEventModes)[keyof typeof LegacyEventModes]

export const LEGACY_EVENTS_VARIABLE = 'SFM_LEGACY_EVENTS'

/** `SFM_LEGACY_EVENTS`: `reject` when unset; anything but `upcast` or `reject` is a configuration error. */
export function legacyEventModeFromEnv(env: NodeJS.ProcessEnv = process.env): LegacyEventMode {
  const value = env[LEGACY_EVENTS_VARIABLE] || LegacyEventModes.REJECT
  if (value !== LegacyEventModes.UPCAST && value !== LegacyEventModes.REJECT) {
    throw new FatalError(`${LEGACY_EVENTS_VARIABLE} must be "upcast" or "reject", got ${JSON.stringify(value)}`, {
      code: ErrorCodes.CONFIG,
      details: { variable: LEGACY_EVENTS_VARIABLE }
    })
  }
  return value
}

/** The fields the legacy JSON Schema allowed (it had `additionalProperties: false`). */
const LEGACY_FIELDS = new Set([
  'event_id',
  'id',
  'namespace',
  'type',
  'timestamp',
  'payload',
  'importance',
  'embedding',
  'model_revision'
])

/** The legacy type of every legacy event: the old producer had no update or delete events. */
export const LEGACY_EVENT_TYPE = 'created'

/**
 * Whether a decoded value is a legacy event: an object whose `type` is `"created"`, without `op` and `version`,
 * and with no field the legacy schema did not allow. (`memory.event` v1 types are kinds of memory, never
 * `"created"`.)
 */
export function isLegacyEvent(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const record = value as Record<string, unknown>
  if (record.type !== LEGACY_EVENT_TYPE) return false
  for (const key in record) if (!LEGACY_FIELDS.has(key)) return false
  return true
}

function poison(message: string): PoisonError {
  return new PoisonError(message, { code: ErrorCodes.VALIDATION })
}

/** A legacy timestamp as canonical UTC RFC 3339: an ISO 8601 string with an offset, or epoch seconds. */
export function normalizeLegacyTimestamp(value: unknown): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw poison('legacy event timestamp is not a finite number of epoch seconds')
    const time = fromMicros(BigInt(Math.round(value * 1_000_000)))
    if (typeof time === 'string') throw poison(`legacy event ${time}`)
    return time.text
  }
  const time = parseEventTime(value)
  if (typeof time === 'string') {
    throw poison(`legacy event ${time} (expected ISO 8601 with an offset, e.g. 2025-10-13T10:00:00.123456+00:00)`)
  }
  return time.text
}

/** The `memory.event` v1 upsert a legacy event stands for. Throws a PoisonError saying what is missing. */
export function upcastLegacyEvent(legacy: Record<string, unknown>): MemoryEvent {
  const { namespace, payload, event_id: eventId } = legacy
  if (typeof namespace !== 'string' || namespace === '') throw poison('legacy event without a namespace')
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
    throw poison('legacy event without an object payload')
  }
  const value = payload as Record<string, unknown>
  if (!Array.isArray(value.coordinate)) throw poison('legacy event without payload.coordinate (an array of numbers)')
  const type = value.memory_type
  if (typeof type !== 'string' || type === '') throw poison('legacy event without payload.memory_type')
  let id: string
  try {
    id = legacyMemoryId(namespace, value.coordinate)
  } catch (error) {
    throw poison(`legacy event payload.coordinate: ${(error as Error).message}`)
  }
  const event: Record<string, unknown> = {
    event_id: eventId,
    id,
    namespace,
    op: 'upsert',
    type,
    timestamp: normalizeLegacyTimestamp(legacy.timestamp),
    version: 0,
    payload
  }
  for (const field of ['importance', 'embedding', 'model_revision']) {
    if (legacy[field] !== undefined) event[field] = legacy[field]
  }
  return event as MemoryEvent
}

export interface LegacyEventsOptions {
  mode: LegacyEventMode
  /** Stage name in dead letters. */
  stage?: string
}

/**
 * The memory topology's legacy step, between decoding and validation: other values pass untouched; legacy events
 * are upcast or dead-lettered (`mode`). Nothing is dropped.
 */
export function legacyEvents(options: LegacyEventsOptions): OperatorFunction<Envelope<unknown>, Envelope<unknown>> {
  const stage = options.stage ?? 'legacy-events'
  const upcast = options.mode === LegacyEventModes.UPCAST
  const operator = filterMap((envelope: Envelope<unknown>) => {
    const value = envelope.value
    if (!isLegacyEvent(value)) return envelope
    if (!upcast) {
      envelope.reject(
        poison(
          `legacy SomaFractalMemory event (type "created", no op or version): set ${LEGACY_EVENTS_VARIABLE}=upcast to apply it under its memory id (${LEGACY_EVENTS_VARIABLE}=reject, the default, dead-letters it)`
        ),
        stage
      )
      return undefined
    }
    try {
      return envelope.withValue<unknown>(upcastLegacyEvent(value))
    } catch (error) {
      envelope.reject(error, stage)
      return undefined
    }
  })
  return describeOperator(operator, { name: 'legacyEvents', stage, deadLetters: true, detail: options.mode })
}
