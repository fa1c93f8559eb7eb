import type { TestContext } from 'node:test'
import type { AuditFormat } from '../../src/memory/audit-format.ts'
import { materializeMemories } from '../../src/memory/materialize.ts'
import { testSchema } from '../sinks/postgres/helpers.ts'
import { brokers, createTopics, uniqueName } from './kafka.ts'

/**
 * The memory topology's KV sink on the real broker and PostgreSQL, opened: a fresh schema (`prefix_…`), fresh
 * memory.latest and memory.audit topics of one partition, closed after the test.
 */
export async function openMaterializer(t: TestContext, prefix: string, auditFormat?: AuditFormat) {
  const { schema, pool } = await testSchema(t, prefix)
  const latestTopic = uniqueName('latest')
  const auditTopic = uniqueName('audit')
  await createTopics(t, [latestTopic, auditTopic], 1)
  const sink = materializeMemories({
    connectionString: process.env.DATABASE_URL,
    table: `${schema}.memories`,
    latestTopic,
    auditTopic,
    brokers: brokers()!,
    ...(auditFormat === undefined ? {} : { auditFormat })
  })
  t.after(() => sink.close?.())
  const context = { topology: 'memory', branch: 'kv', signal: new AbortController().signal }
  await sink.open?.(context)
  return { schema, pool, sink, context, latestTopic, auditTopic }
}
