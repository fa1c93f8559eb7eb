/**
 * Kafka Connect's JsonConverter envelope: with `value.converter.schemas.enable=true` every record value must be
 * `{"schema": <Connect schema>, "payload": <value>}`. Sinks that need typed columns — the Debezium JDBC sink refuses
 * schemaless records — read topics written this way. The schema notation is the one JsonConverter parses
 * (org.apache.kafka.connect.json.JsonConverter#asConnectSchema).
 */

export const ConnectTypes = {
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FLOAT32: 'float32',
  FLOAT64: 'float64',
  BOOLEAN: 'boolean',
  STRING: 'string',
  BYTES: 'bytes',
  ARRAY: 'array',
  MAP: 'map',
  STRUCT: 'struct'
} as const
export type ConnectType = (typeof ConnectTypes)[keyof typeof ConnectTypes]

/**
 * Semantic types (schema `name`s) the Debezium JDBC sink maps to PostgreSQL column types. A plain string would be
 * written as `text`; `io.debezium.data.Json` is bound with `cast(? as jsonb)` when the schema parameter
 * `__debezium.source.column.type` is `JSONB` (else `json`).
 */
export const DebeziumSemanticTypes = {
  JSON: 'io.debezium.data.Json',
  ZONED_TIMESTAMP: 'io.debezium.time.ZonedTimestamp'
} as const

/** Schema parameter the Debezium JDBC sink reads to pick the column type (`JSONB` rather than `json`). */
export const DEBEZIUM_COLUMN_TYPE_PARAMETER = '__debezium.source.column.type'

export interface ConnectSchema {
  readonly type: ConnectType
  readonly optional?: boolean
  /** Semantic type, e.g. `io.debezium.data.Json`. */
  readonly name?: string
  readonly version?: number
  readonly doc?: string
  readonly parameters?: Readonly<Record<string, string>>
  readonly fields?: readonly ConnectField[]
  readonly items?: ConnectSchema
  readonly keys?: ConnectSchema
  readonly values?: ConnectSchema
}

export interface ConnectField extends ConnectSchema {
  readonly field: string
}

export interface ConnectEnvelope<P> {
  readonly schema: ConnectSchema
  readonly payload: P
}

/** The record value as JsonConverter (schemas.enable=true) expects it. */
export function connectJsonEnvelope<P>(schema: ConnectSchema, payload: P): string {
  return JSON.stringify({ schema, payload } satisfies ConnectEnvelope<P>)
}

/**
 * `connectJsonEnvelope` for one fixed schema, serialised once: the schema is most of an envelope's bytes and the
 * same for every record of a topic. The text is identical to `connectJsonEnvelope(schema, payload)`.
 */
export function connectJsonEncoder<P extends object>(schema: ConnectSchema): (payload: P) => string {
  const head = `{"schema":${JSON.stringify(schema)},"payload":`
  return (payload) => `${head}${JSON.stringify(payload)}}`
}

/** A required jsonb column for the Debezium JDBC sink; its payload value is the JSON *text*. */
export function jsonbField(field: string, doc?: string): ConnectField {
  return {
    field,
    type: ConnectTypes.STRING,
    optional: false,
    name: DebeziumSemanticTypes.JSON,
    parameters: { [DEBEZIUM_COLUMN_TYPE_PARAMETER]: 'JSONB' },
    ...(doc === undefined ? {} : { doc })
  }
}
