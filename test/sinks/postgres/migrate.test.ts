import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import pg from 'pg'
import { kindOf } from '../../../src/errors.ts'
import { loadMigrations, migrate, renderMigration, tableNames } from '../../../src/memory/memories.ts'
import type { Migration } from '../../../src/sinks/postgres/migrate.ts'
import { databaseUrl, testSchema } from './helpers.ts'

function migration(version: number, name: string, template: string): Migration {
  const checksum = createHash('sha256').update(template).digest('hex')
  return { version, name: `${String(version).padStart(4, '0')}_${name}`, checksum, template }
}

async function tables(pool: pg.Pool, schema: string): Promise<string[]> {
  const { rows } = await pool.query<{ t: string }>(
    'SELECT tablename AS t FROM pg_tables WHERE schemaname = $1 ORDER BY 1',
    [schema]
  )
  return rows.map((r) => r.t)
}

test('migrations apply once; a second run applies nothing and keeps the data', async (t) => {
  const { schema, pool } = await testSchema(t)
  const names = tableNames(`${schema}.memories`)
  const first = await migrate(pool, names)
  assert.deepEqual(first.applied, ['0001_create_memories'])
  assert.deepEqual(await tables(pool, schema), ['memories', 'memory_events_processed', 'schema_migrations'])
  await pool.query(
    `INSERT INTO ${schema}.memories (id, namespace, version, event_id, event_ts) VALUES ('x', 'n', 1, gen_random_uuid(), now())`
  )
  const second = await migrate(pool, names)
  assert.deepEqual(second.applied, [])
  const { rows } = await pool.query(`SELECT target, version, name FROM ${schema}.schema_migrations`)
  assert.deepEqual(rows, [{ target: `${schema}.memories`, version: 1, name: '0001_create_memories' }])
  assert.equal((await pool.query(`SELECT 1 FROM ${schema}.memories`)).rowCount, 1)
})

test('concurrent runners (separate pools) on the same and on other tables do not race', async (t) => {
  const { schema, pool } = await testSchema(t)
  const pools = Array.from({ length: 4 }, () => new pg.Pool({ connectionString: databaseUrl(), max: 1 }))
  t.after(() => Promise.all(pools.map((p) => p.end())))
  // A fresh schema too: CREATE SCHEMA runs under the lock.
  const fresh = `${schema}_new`
  try {
    const runs = await Promise.all([
      migrate(pools[0]!, tableNames(`${fresh}.memories`)),
      migrate(pools[1]!, tableNames(`${fresh}.memories`)),
      migrate(pools[2]!, tableNames(`${fresh}.other`)),
      migrate(pools[3]!, tableNames(`${fresh}.memories`))
    ])
    assert.equal(runs.filter((r) => r.applied.length === 1 && r.names.memories.name === 'memories').length, 1)
    assert.deepEqual(runs[2]!.applied, ['0001_create_memories'])
    assert.deepEqual(await tables(pool, fresh), [
      'memories',
      'memory_events_processed',
      'other',
      'other_events_processed',
      'schema_migrations'
    ])
  } finally {
    await pool.query(`DROP SCHEMA IF EXISTS "${fresh}" CASCADE`)
  }
})

test('a later migration is applied alone; an edited applied migration is refused', async (t) => {
  const { schema, pool } = await testSchema(t)
  const names = tableNames(`${schema}.memories`)
  const [base] = await loadMigrations()
  await migrate(pool, names, [base!])
  const addColumn = migration(2, 'add_source', 'ALTER TABLE {{memories}} ADD COLUMN IF NOT EXISTS source text;')
  assert.deepEqual((await migrate(pool, names, [base!, addColumn])).applied, ['0002_add_source'])
  await pool.query(`SELECT source FROM ${schema}.memories`)

  const edited = { ...addColumn, template: `${addColumn.template}\n`, checksum: 'different' }
  await assert.rejects(migrate(pool, names, [base!, edited]), (error: unknown) => {
    assert.equal(kindOf(error), 'fatal')
    assert.match((error as Error).message, /0002_add_source changed after it was applied/)
    return true
  })
})

test('a failing migration rolls back the whole run and is fatal', async (t) => {
  const { schema, pool } = await testSchema(t)
  const [base] = await loadMigrations()
  const broken = migration(2, 'broken', 'ALTER TABLE {{memories}} ADD COLUMN oops no_such_type;')
  await assert.rejects(migrate(pool, tableNames(`${schema}.memories`), [base!, broken]), (error: unknown) => {
    assert.equal(kindOf(error), 'fatal')
    assert.match((error as Error).message, /0002_broken failed/)
    return true
  })
  assert.deepEqual(await tables(pool, schema), [])
})

test('a schema_migrations table of another tool is refused', async (t) => {
  const { schema, pool } = await testSchema(t)
  await pool.query(`CREATE TABLE ${schema}.schema_migrations (version bigint PRIMARY KEY, dirty boolean)`)
  await assert.rejects(migrate(pool, tableNames(`${schema}.memories`)), /is not ours/)
})

test('renderMigration quotes names and keeps derived names within 63 bytes', () => {
  const names = tableNames(`s"x.${'m'.repeat(60)}`)
  const sql = renderMigration('{{memories}} {{processed}} {{memories_name:namespace_idx}}', names)
  const [memories, processed, index] = sql.split(' ')
  assert.equal(memories, `"s""x"."${'m'.repeat(60)}"`)
  for (const derived of [processed!, index!]) {
    assert.ok(Buffer.byteLength(derived) <= `"s""x".`.length + 63 + 2, derived)
  }
  assert.match(processed!, /^"s""x"\."m+_[0-9a-f]{8}_events_processed"$/)
  assert.match(index!, /^"m+_[0-9a-f]{8}_namespace_idx"$/)
})
