import { type AuditFormat, AuditFormats } from '../../src/memory/audit-format.ts'

const JSON_CONVERTER = 'org.apache.kafka.connect.json.JsonConverter'
const STRING_CONVERTER = 'org.apache.kafka.connect.storage.StringConverter'

/**
 * The `SFM_AUDIT_FORMAT` the memory topology must run with for a Kafka Connect connector config to read its audit
 * records; undefined when the connector does not read `auditTopic`. JsonConverter's `schemas.enable` defaults to
 * true (it then needs `{schema, payload}` envelopes); a converter this does not know fails the deployment test.
 */
export function auditFormatForConnector(
  config: Readonly<Record<string, string>>,
  auditTopic = 'memory.audit'
): AuditFormat | undefined {
  const topics = (config.topics ?? '').split(',').map((topic) => topic.trim())
  if (!topics.includes(auditTopic)) return undefined
  const converter = config['value.converter']
  if (converter === JSON_CONVERTER) {
    return config['value.converter.schemas.enable'] === 'false' ? AuditFormats.JSON : AuditFormats.CONNECT
  }
  if (converter === STRING_CONVERTER) return AuditFormats.JSON
  throw new Error(`${config.name ?? 'connector'}: no SFM_AUDIT_FORMAT is known to match value.converter ${converter}`)
}
