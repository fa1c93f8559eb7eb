/** The value the runtime benchmarks produce: shaped like memory.event v1 (see schemas/memory.event/v1.json). */
export interface BenchEvent {
  event_id: string
  id: string
  namespace: string
  type: string
  timestamp: string
  version: number
  payload: { text: string }
}

/**
 * A small schema: types, required fields and length bounds, no formats. What we measure is the runtime, not ajv's
 * regexes; a real topology's schema (memory.event v1 has uuid and date-time formats) costs more.
 */
export const benchEventSchema = {
  type: 'object',
  required: ['event_id', 'id', 'namespace', 'type', 'timestamp', 'payload'],
  properties: {
    event_id: { type: 'string', minLength: 1, maxLength: 128 },
    id: { type: 'string', minLength: 1, maxLength: 256 },
    namespace: { type: 'string', minLength: 1, maxLength: 256 },
    type: { type: 'string', minLength: 1, maxLength: 256 },
    timestamp: { type: 'string', minLength: 1, maxLength: 64 },
    version: { type: 'integer', minimum: 0 },
    payload: { type: 'object', required: ['text'], properties: { text: { type: 'string' } } }
  }
}
