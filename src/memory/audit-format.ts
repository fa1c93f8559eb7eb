import { type AuditRecord, auditEnvelope } from '../connect/audit-envelope.ts'
import { ErrorCodes, FatalError } from '../errors.ts'

/**
 * How the memory topology writes `memory.audit` records (`SFM_AUDIT_FORMAT`):
 *
 * - `json` (default): the memory.audit v1 record (schemas/memory.audit) as plain JSON.
 * - `connect`: the same record inside Kafka Connect's JsonConverter envelope (`schemas.enable=true`,
 *   src/connect/audit-envelope.ts), which the Debezium JDBC sink of deploy/connect/ needs: it refuses schemaless
 *   records. The v1 record is the envelope's `payload.record` (JSON text); consumers read `.payload`.
 *
 * Neither format is registry-framed: the memory topology does not use `SCHEMA_REGISTRY_URL` for what it produces.
 */
export const AuditFormats = {
  JSON: 'json',
  CONNECT: 'connect'
} as const
export type AuditFormat = (typeof AuditFormats)[keyof typeof AuditFormats]

export const AUDIT_FORMAT_VARIABLE = 'SFM_AUDIT_FORMAT'

const FORMATS: readonly string[] = Object.values(AuditFormats)

export function isAuditFormat(value: unknown): value is AuditFormat {
  return typeof value === 'string' && FORMATS.includes(value)
}

/** Checks a format given in code or in the environment; `source` names where it came from in the error. */
export function resolveAuditFormat(value: unknown, source = AUDIT_FORMAT_VARIABLE): AuditFormat {
  if (value === undefined || value === '') return AuditFormats.JSON
  if (isAuditFormat(value)) return value
  throw new FatalError(
    `${source} must be ${FORMATS.map((f) => `"${f}"`).join(' or ')}, got ${JSON.stringify(value)} ("connect" for the Kafka Connect JDBC sink of deploy/connect/)`,
    { code: ErrorCodes.CONFIG, details: { variable: source } }
  )
}

/** The audit format the environment asks for (`SFM_AUDIT_FORMAT`, default `json`). */
export function auditFormatFromEnv(env: NodeJS.ProcessEnv = process.env): AuditFormat {
  return resolveAuditFormat(env[AUDIT_FORMAT_VARIABLE]?.trim())
}

/** The choice for the start banner, with what a configured registry means for it. */
export function describeAuditFormat(format: AuditFormat, env: NodeJS.ProcessEnv = process.env): string {
  const registry = Boolean(env.SCHEMA_REGISTRY_URL)
  if (format === AuditFormats.CONNECT) {
    const text =
      'memory.audit as Kafka Connect JsonConverter envelopes (schemas.enable=true; payload.record is the memory.audit v1 record)'
    // Both are configured: say which one wins, so nobody expects registry-framed audit records.
    return registry
      ? `${text}; SCHEMA_REGISTRY_URL is set but not used for it: the JDBC sink's JsonConverter reads the envelope's own schema, and a registry frame would make every record poison to it`
      : text
  }
  const text = `memory.audit as plain JSON (the memory.audit v1 record; ${AUDIT_FORMAT_VARIABLE}=connect for the Kafka Connect JDBC sink)`
  return registry ? `${text}; not registry-framed (SCHEMA_REGISTRY_URL is not used for it)` : text
}

/** Serialises one audit record in the chosen format. */
export function auditEncoder(format: AuditFormat): (record: AuditRecord) => string {
  return format === AuditFormats.CONNECT ? auditEnvelope : (record) => JSON.stringify(record)
}
