/**
 * The README's "same topology file runs unchanged against Kafka and PostgreSQL" path as a new user takes it
 * (issue 14, item 2): a folder with no `.sfm-data`, KAFKA_BROKERS and DATABASE_URL set, no vector variable. The vector
 * branch then uses pgvector in PGlite under `./.sfm-data/vectors`, whose folder nothing else creates.
 */
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { demoHistory } from '../../src/demo/events.ts'
import { spawnNode, tempDataDir } from '../helpers/embedded-log.ts'
import { brokers, NO_KAFKA, uniqueName } from '../helpers/kafka.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const cli = (name: string) => join(ROOT, 'src/cli', name)
const skip = brokers() && process.env.DATABASE_URL ? false : NO_KAFKA

/** Kafka and PostgreSQL from the environment, no vector store variable, no data folder: a fresh clone's shell. */
function serverEnv(prefix: string, table: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    SFM_TOPIC_PREFIX: prefix,
    SFM_MEMORY_TABLE: table,
    SFM_MEMORY_GROUP: `g-${prefix}`
  }
  for (const name of ['QDRANT_URL', 'VECTOR_DATABASE_URL', 'SFM_VECTORS', 'SFM_DATA_DIR', 'SFM_STACK_DIR']) {
    delete env[name]
  }
  return env
}

test('Kafka + DATABASE_URL with no vector variable: the vector folder is created and --until-idle returns', {
  skip,
  timeout: 180_000
}, async (t) => {
  const cwd = tempDataDir(t, 'sfm-fresh-clone-')
  const prefix = uniqueName('fresh')
  const table = `memories_${prefix.replaceAll(/[^a-z0-9]/gi, '_')}`
  t.after(async () => {
    const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 1 })
    await pool.query(`DROP TABLE IF EXISTS "${table}"`).catch(() => {})
    await pool.end()
  })
  const env = serverEnv(prefix, table)
  const run = async (args: string[]) => {
    const child = spawnNodeIn(cwd, args, env)
    const { code } = await child.exited
    return { code, stderr: child.stderr(), stdout: child.stdout() }
  }

  const topics = await run([cli('topics.ts'), 'apply', '--partitions', '1'])
  assert.equal(topics.code, 0, topics.stderr)
  const history = demoHistory(40)
  const file = join(cwd, 'events.jsonl')
  await writeFile(file, `${history.events.map((e) => JSON.stringify(e)).join('\n')}\n`)
  const produce = await run([
    cli('produce.ts'),
    '--topic',
    `${prefix}.memory.events`,
    '--file',
    file,
    '--key-field',
    'id'
  ])
  assert.equal(produce.code, 0, produce.stderr)

  const start = await run([
    cli('start.ts'),
    join(ROOT, 'topologies/memory.ts'),
    '--until-idle=2',
    '--status-interval',
    '0'
  ])
  assert.equal(start.code, 0, start.stderr)
  assert.doesNotMatch(start.stderr, /ENOENT|retrying/)
  assert.match(start.stderr, /stopped \(idle\)/)
  assert.ok(existsSync(join(cwd, '.sfm-data', 'vectors')), 'the vector folder was created under ./.sfm-data')
})

test('a vector folder that cannot be created stops the runner at once: exit 2, one line naming the way out', {
  skip,
  timeout: 60_000
}, async (t) => {
  const root = tempDataDir(t, 'sfm-unwritable-')
  // A data folder under a regular file: mkdir fails with ENOTDIR whoever runs the test (root included).
  await writeFile(join(root, 'file'), 'not a folder')
  const env = serverEnv(uniqueName('nodir'), 'memories')
  env.SFM_DATA_DIR = join(root, 'file', 'data')
  const child = spawnNodeIn(root, [cli('start.ts'), join(ROOT, 'topologies/memory.ts'), '--until-idle=2'], env)
  const { code } = await child.exited
  const stderr = child.stderr()
  assert.equal(code, 2, stderr)
  assert.match(
    stderr,
    /^error: PGlite vector folder .*cannot create its data folder: ENOTDIR.* \(or: QDRANT_URL \/ VECTOR_DATABASE_URL for a vector server, SFM_VECTORS=off for no vectors, SFM_DATA_DIR for another data folder\)$/m
  )
  assert.doesNotMatch(stderr, /retrying|\n\s+at /)
})

function spawnNodeIn(cwd: string, args: string[], env: NodeJS.ProcessEnv) {
  return spawnNode(args, { ...env, PWD: cwd }, cwd)
}
