import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import pg from 'pg'
import { demoHistory } from '../../src/demo/events.ts'
import { fold } from '../../src/memory/fold.ts'
import { acquirePglite } from '../../src/pglite/shared.ts'
import { pglitePool } from '../../src/sinks/postgres/pglite-pool.ts'
import { brokers, createTopics, NO_KAFKA, uniqueName } from '../helpers/kafka.ts'
import { readMemories } from '../sinks/postgres/helpers.ts'

const ROOT = new URL('../../', import.meta.url)
const N = 300
const skip = brokers() && process.env.DATABASE_URL ? false : `${NO_KAFKA}; DATABASE_URL too`

async function demo(env: NodeJS.ProcessEnv): Promise<string> {
  const args = ['src/cli/start.ts', 'topologies/memory.ts', '--demo', String(N), '--status-interval', '0']
  const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: ROOT, env })
  return stdout
}

/** The recall lines of a report, scores only: equal-score hits may come in either order. */
function recallScores(report: string): string[] {
  return report
    .split('\n')
    .filter((l) => /^ {2}\d\.\d{3} {2}/.test(l))
    .map((l) => l.trim().split(/\s+/)[0]!)
}

test('the same demo history through the embedded stack and through Kafka + PostgreSQL', { skip }, async (t) => {
  const base: NodeJS.ProcessEnv = { ...process.env }
  for (const name of ['QDRANT_URL', 'VECTOR_DATABASE_URL', 'SFM_TOPIC_PREFIX', 'SFM_MEMORY_TABLE']) delete base[name]

  const embeddedDir = await mkdtemp(join(tmpdir(), 'sfm-diff-embedded-'))
  const kafkaDir = await mkdtemp(join(tmpdir(), 'sfm-diff-kafka-'))
  t.after(() => Promise.all([embeddedDir, kafkaDir].map((d) => rm(d, { recursive: true, force: true }))))

  const embeddedEnv: NodeJS.ProcessEnv = {
    ...base,
    SFM_DATA_DIR: embeddedDir,
    SFM_STACK_DIR: join(embeddedDir, 'no-stack')
  }
  delete embeddedEnv.KAFKA_BROKERS
  delete embeddedEnv.DATABASE_URL
  const embeddedReport = await demo(embeddedEnv)

  const prefix = `${uniqueName('diff')}.`
  await createTopics(
    t,
    ['memory.events', 'memory.latest', 'memory.audit', 'memory.dlq'].map((n) => prefix + n),
    3
  )
  const table = `mem_${randomBytes(5).toString('hex')}`
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
  t.after(async () => {
    await pool.query(`DROP TABLE IF EXISTS "${table}", "${table}_events_processed" CASCADE`).catch(() => {})
    await pool.query('DELETE FROM schema_migrations WHERE target = $1', [`public.${table}`]).catch(() => {})
    await pool.end()
  })
  const kafkaReport = await demo({
    ...base,
    SFM_DATA_DIR: kafkaDir,
    SFM_TOPIC_PREFIX: prefix,
    SFM_MEMORY_TABLE: table,
    SFM_MEMORY_GROUP: uniqueName('diff')
  })

  const shared = await acquirePglite(embeddedDir)
  let embedded: Awaited<ReturnType<typeof readMemories>>
  try {
    embedded = await readMemories(pglitePool(shared.db), 'public.memories')
  } finally {
    await shared.release()
  }
  const server = await readMemories(pool, `"${table}"`)
  assert.equal(server.size, embedded.size)
  assert.deepEqual(server, embedded)
  assert.deepEqual(embedded, fold(demoHistory(N).events))
  const line = (report: string, label: string) => report.split('\n').find((l) => l.startsWith(label))
  for (const label of ['rows in memories', 'vectors indexed', 'dead letters']) {
    assert.equal(line(kafkaReport, label), line(embeddedReport, label))
  }
  assert.deepEqual(recallScores(kafkaReport), recallScores(embeddedReport))
  assert.equal(recallScores(embeddedReport).length, 3)
})
