/** What a memory event does: `upsert` (the default when `op` is absent) or `delete`. */
export const MemoryOps = {
  UPSERT: 'upsert',
  DELETE: 'delete'
} as const
export type MemoryOp = (typeof MemoryOps)[keyof typeof MemoryOps]

/** Any JSON value, as carried in `payload`. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue }

/**
 * One event of subject `memory.event` v1 (schemas/memory.event/v1.json), after decoding and validation. The schema
 * allows unknown fields, so consumers must ignore what they do not know.
 */
export interface MemoryEvent {
  /** UUID of this event; the same on every redelivery, so it is the deduplication key. */
  readonly event_id: string
  /** Memory id, 1..256 characters; also the Kafka message key. */
  readonly id: string
  readonly namespace: string
  /** Absent means `upsert`. */
  readonly op?: MemoryOp
  /** Required for upserts. */
  readonly type?: string
  /** RFC 3339 date-time with a time zone. */
  readonly timestamp: string
  /** Integer in 0..2^53-1; absent means 0. */
  readonly version?: number
  /** Required for upserts; `payload.text` is what gets embedded. */
  readonly payload?: JsonValue
  readonly importance?: number
  readonly embedding?: readonly number[]
  readonly model_revision?: string
  readonly [extra: string]: unknown
}

export const MEMORY_EVENT_SUBJECT = 'memory.event'

export function isDelete(event: Pick<MemoryEvent, 'op'>): boolean {
  return event.op === MemoryOps.DELETE
}
