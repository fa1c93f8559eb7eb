import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import pg from 'pg'
import { REPO_ROOT } from '../../scripts/stack/config.ts'
import { Runtime } from '../../src/streams/runtime.ts'
import { memoryTopology } from '../../topologies/memory.ts'
import { createTopics, uniqueName } from './kafka.ts'

const python = spawnSync('python3', ['--version'], { encoding: 'utf8' })
/** The skip reason when python3 is not there (the legacy fixtures are written by real Python). */
export const NO_PYTHON =
  python.status === 0 ? undefined : 'python3 is not installed: the legacy fixture is written by real Python'

const SCRIPT = join(REPO_ROOT, 'test', 'fixtures', 'legacy_sfm.py')

function run(args: readonly string[]): string[] {
  const result = spawnSync('python3', [SCRIPT, ...args], { encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 })
  if (result.status !== 0) throw new Error(`legacy_sfm.py ${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout.split('\n').filter((line) => line !== '')
}

/** kv_store rows as the legacy store wrote them: `{key, value}` with the value as Python's JSON text. */
export function legacyKvRows(
  seed: number,
  count: number,
  namespaces: readonly string[]
): { key: string; value: string }[] {
  return run(['kv', String(seed), String(count), ...namespaces]).map((line) => JSON.parse(line))
}

/** Legacy memory.events records (JSON text, as produced) with the memory id Python gives their coordinate. */
export function legacyEventRecords(seed: number, count: number, namespace: string): { id: string; record: string }[] {
  return run(['events', String(seed), String(count), namespace]).map((line) => JSON.parse(line))
}

/** A connection string with `search_path` set to one schema (how a test points the legacy URL at its own kv_store). */
export function withSearchPath(databaseUrl: string, schema: string): string {
  const url = new URL(databaseUrl)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return url.toString()
}

/**
 * A legacy store of the test's own: a schema with `kv_store` exactly as SomaFractalMemory created it, loaded with
 * the rows Python wrote. Dropped afterwards.
 */
export async function legacyStore(
  t: TestContext,
  rows: readonly { key: string; value: string }[],
  columns = 'key TEXT PRIMARY KEY, value JSONB NOT NULL'
): Promise<{ url: string; pool: pg.Pool; schema: string }> {
  const schema = `legacy_${randomBytes(6).toString('hex')}`
  const databaseUrl = process.env.DATABASE_URL!
  const pool = new pg.Pool({ connectionString: withSearchPath(databaseUrl, schema), max: 2 })
  pool.on('error', () => {})
  await pool.query(`CREATE SCHEMA "${schema}"`)
  t.after(async () => {
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {})
    await pool.end()
  })
  await pool.query(`CREATE TABLE kv_store (${columns})`)
  await loadKvRows(pool, rows)
  return { url: withSearchPath(databaseUrl, schema), pool, schema }
}

/** INSERT … ON CONFLICT (key) DO UPDATE, as the legacy store wrote, a few thousand rows a statement. */
export async function loadKvRows(pool: pg.Pool, rows: readonly { key: string; value: string }[]): Promise<void> {
  // One statement cannot update a row twice: the last write of a key wins, as in the legacy store (uuid5 keys do
  // not carry the namespace, so one coordinate in two namespaces writes one such row twice).
  const last = [...new Map(rows.map((r) => [r.key, r])).values()]
  for (let i = 0; i < last.length; i += 5_000) {
    const chunk = last.slice(i, i + 5_000)
    await pool.query(
      `INSERT INTO kv_store (key, value) SELECT k, v::jsonb FROM unnest($1::text[], $2::text[]) AS t(k, v)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
      [chunk.map((r) => r.key), chunk.map((r) => r.value)]
    )
  }
}

const MEMORY_TOPICS = ['memory.events', 'memory.latest', 'memory.audit', 'memory.dlq'] as const

/**
 * An isolated memory stack: prefixed topics, a `memories` table and a data folder of the test's own, the vector
 * branch off. process.env carries the settings (the topology and the CLIs read it) and is restored afterwards.
 */
export async function isolatedMemoryStack(t: TestContext, partitions = 2) {
  const prefix = `${uniqueName('legacy')}.`
  const table = `mem_${randomBytes(5).toString('hex')}`
  await createTopics(
    t,
    MEMORY_TOPICS.map((name) => prefix + name),
    partitions
  )
  const saved = { ...process.env }
  const dataDir = await mkdtemp(join(tmpdir(), 'sfm-legacy-test-'))
  Object.assign(process.env, {
    SFM_DATA_DIR: dataDir,
    SFM_TOPIC_PREFIX: prefix,
    SFM_MEMORY_TABLE: table,
    SFM_VECTORS: 'off'
  })
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 })
  pool.on('error', () => {})
  t.after(async () => {
    process.env = saved
    await pool
      .query(`DROP TABLE IF EXISTS "${table}", "${table}_events_processed", schema_migrations_${table} CASCADE`)
      .catch(() => {})
    await pool.end()
    await rm(dataDir, { recursive: true, force: true })
  })
  return { prefix, table, pool, dataDir, topic: (name: (typeof MEMORY_TOPICS)[number]) => prefix + name }
}

/** Runs the memory topology (a new consumer group unless `group` is given) until it is idle. */
export async function runMemoryUntilIdle(options: { legacyEvents?: string; group?: string } = {}) {
  if (options.legacyEvents === undefined) delete process.env.SFM_LEGACY_EVENTS
  else process.env.SFM_LEGACY_EVENTS = options.legacyEvents
  process.env.SFM_MEMORY_GROUP = options.group ?? uniqueName('memory')
  const topology = await memoryTopology()
  return new Runtime(topology, { untilIdleMs: 2_000 }).run()
}

/** What `kv_store` rows should become in `memories`: id → payload (jsonb has no -0: JSON.stringify writes 0). */
export function expectedMemories(rows: readonly { key: string; value: string }[]): Map<string, unknown> {
  const out = new Map<string, unknown>()
  for (const { key, value } of rows) {
    if (key.endsWith(':data')) out.set(key.slice(0, -':data'.length), JSON.parse(JSON.stringify(JSON.parse(value))))
  }
  return out
}
