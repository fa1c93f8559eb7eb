import {
  type ConnectSchema,
  ConnectTypes,
  connectJsonEncoder,
  DebeziumSemanticTypes,
  jsonbField
} from './json-envelope.ts'

/** One `memory.audit` record (schemas/memory.audit v1) as src/memory/materialize.ts makes it. */
export interface AuditRecord {
  readonly event_id: string
  /** The memory id (also the Kafka key). */
  readonly id: string
  readonly namespace: string
  readonly op: 'upsert' | 'delete'
  readonly version: number
  /** The event's own time, as the producer sent it (RFC 3339). Kept only inside `record`. */
  readonly timestamp: string
  /** applied | fenced | duplicate */
  readonly outcome: string | undefined
  readonly topology: string
  /** ISO 8601 in UTC, set by the sink when the batch was written. */
  readonly processed_at: string
  readonly [extra: string]: unknown
}

/**
 * The Connect schema of an audit row for the JDBC sink (deploy/connect/memory-audit-jdbc-sink.json): a few typed
 * columns to filter and index on, and `record`, the whole audit record as jsonb, so fields added later reach the
 * table without a schema change. The row key is the record's Kafka coordinates (`primary.key.mode=kafka`), so a
 * redelivered record upserts its own row and an append-only topic stays append-only in the table.
 *
 * Only values PostgreSQL always accepts go into typed columns: the Debezium JDBC sink does not report rows the
 * database refuses to Connect's dead-letter queue, it fails the task. So the event's `timestamp` (producer input)
 * stays in the jsonb; `processed_at` (our own `toISOString()`) becomes a timestamptz.
 */
export const AUDIT_CONNECT_SCHEMA = {
  type: ConnectTypes.STRUCT,
  name: 'sfm.memory.audit.Value',
  version: 1,
  optional: false,
  fields: [
    { field: 'event_id', type: ConnectTypes.STRING, optional: false },
    { field: 'memory_id', type: ConnectTypes.STRING, optional: false },
    { field: 'namespace', type: ConnectTypes.STRING, optional: false },
    { field: 'op', type: ConnectTypes.STRING, optional: false },
    { field: 'outcome', type: ConnectTypes.STRING, optional: true },
    { field: 'version', type: ConnectTypes.INT64, optional: false },
    { field: 'processed_at', type: ConnectTypes.STRING, optional: false, name: DebeziumSemanticTypes.ZONED_TIMESTAMP },
    jsonbField('record', 'The audit record as produced, as jsonb')
  ]
} as const satisfies ConnectSchema

const encodeAuditEnvelope = connectJsonEncoder(AUDIT_CONNECT_SCHEMA)

/**
 * The JsonConverter envelope of an audit record: what the JDBC sink reads from the audit topic, and what the memory
 * topology writes with `SFM_AUDIT_FORMAT=connect` (src/memory/audit-format.ts).
 */
export function auditEnvelope(record: AuditRecord): string {
  return encodeAuditEnvelope({
    event_id: record.event_id,
    memory_id: record.id,
    namespace: record.namespace,
    op: record.op,
    outcome: record.outcome ?? null,
    version: record.version,
    processed_at: record.processed_at,
    record: JSON.stringify(record)
  })
}
